"""Kaggle facial-keypoints submission from a trained model:

    kp submit RUN_OR_CHECKPOINT [--data-dir DIR] [--flip] [--out submission.csv]

Loads the model with kp.load (a run's best checkpoint, or a checkpoint file), predicts the images of DIR/test.csv and
writes `RowId,Location` for the rows DIR/IdLookupTable.csv asks for, clipped to [0, 96]. DIR defaults to the run's
data.dataset.root (from its .hydra/config.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp.errors import user_errors_in_one_line
from kp.predict.submit import submit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kp submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a run directory of `python train.py data=facial ...` or a checkpoint")
    parser.add_argument("--data-dir", type=Path, help="the Kaggle files (default: the run's data.dataset.root)")
    parser.add_argument("--flip", action="store_true", help="test-time flip")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        submit(args.model, args.out, args.data_dir, args.flip)
