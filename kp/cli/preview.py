"""Look at a dataset as the model will see it: `kp preview data=<name> [options] [overrides]`.

Composes conf/train.yaml with the given Hydra overrides (so `augment=none`, `target=heatmap target.sigma=1`,
`data.dataset.subset=all` all apply), prints the size of each split and writes a PNG: one row per sample, the image
with its keypoints (coloured by index, named when there are few, skeleton between visible ones; invisible keypoints
are listed under the picture), and beside it the image under its target heatmaps (all keypoints' maximum), drawn by
the configured heatmap codec (a Gaussian one when the target is coordinates).

Options: --split train|val|test (default train, augmented as in training), --n samples (default 5, what the cat seed
shows), --out file (default preview_<data>.png).
"""

from __future__ import annotations

from kp.cli.common import count, parser, user_errors_in_one_line


def main(argv: list[str] | None = None) -> None:
    command = parser("kp preview", __doc__, overrides=True)
    command.add_argument("--split", default="train", choices=("train", "val", "test"))
    command.add_argument("--n", type=count, default=5)
    command.add_argument("--out", default=None)
    options, overrides = command.parse_known_args(argv)
    with user_errors_in_one_line(options.verbose):
        from kp.config import check_types, compose_config

        cfg = compose_config([*overrides, "data.num_workers=0"], options.config_dir)
        check_types(cfg)
        from kp.viz.preview import preview  # torch: once the overrides are known to be right

        preview(cfg, options.split, options.n, options.out)
