"""Kaggle facial-keypoints submission from a trained model:

    kp submit RUN_OR_CHECKPOINT [--data-dir DIR] [--flip] [--out submission.csv]

Loads the model with kp.load (a run's best checkpoint, or a checkpoint file), predicts the images of DIR/test.csv and
writes `RowId,Location` for the rows DIR/IdLookupTable.csv asks for, clipped to [0, 96]. DIR defaults to the run's
data.dataset.root (from its .hydra/config.yaml).
"""

from __future__ import annotations

from pathlib import Path

from kp.cli.common import parser, user_errors_in_one_line


def main(argv: list[str] | None = None) -> None:
    command = parser("kp submit", __doc__)
    command.add_argument("model", type=Path, help="a run directory of `kp train data=facial ...` or a checkpoint")
    command.add_argument("--data-dir", type=Path, help="the Kaggle files (default: the run's data.dataset.root)")
    command.add_argument("--flip", action="store_true", help="test-time flip")
    command.add_argument("--out", type=Path, default=Path("submission.csv"))
    args = command.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        from kp.predict.submit import submit

        submit(args.model, args.out, args.data_dir, args.flip)
