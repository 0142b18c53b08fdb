"""Look at a dataset as the model will see it: `kp preview data=<name> [options] [overrides]`.

Composes kp/conf/train.yaml with the given Hydra overrides (so `augment=none`, `target=heatmap target.sigma=1`,
`data.dataset.subset=all` all apply), prints the size of each split and writes a PNG: one row per sample, the image
with its keypoints (coloured by index, named when there are few, skeleton between visible ones; invisible keypoints
are listed under the picture), and beside it the image under its target heatmaps (all keypoints' maximum), drawn by
the configured heatmap codec (a Gaussian one when the target is coordinates).

Options: --split train|val|test (default train, augmented as in training), --n samples (default 5, what the cat seed
shows), --out file (default preview_<data>.png).
"""

from __future__ import annotations

import argparse

from kp.config import compose_config
from kp.data.datamodule import SPLITS
from kp.errors import user_errors_in_one_line
from kp.viz.preview import preview


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kp preview", description=__doc__.split("\n\n")[0], epilog="Other arguments are Hydra overrides."
    )
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--out", default=None)
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    options, overrides = parser.parse_known_args(argv)
    with user_errors_in_one_line(options.verbose):
        preview(compose_config(overrides + ["data.num_workers=0"]), options.split, options.n, options.out)
