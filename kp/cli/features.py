"""A look inside a trained network, for one image:

    kp features RUN_OR_CHECKPOINT IMAGE [--out features.png] [--maps 4]

One picture: the image with the predicted keypoints, the first layer's filters, the predicted heatmaps over the image
(heatmap models), and the most active channels at the end of each stage of the backbone (a stage: consecutive
convolutions at one resolution; an encoder-decoder has stages down and back up).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kp.data.io import read_image
from kp.errors import user_errors_in_one_line
from kp.inference.load import load
from kp.viz.features import plot_features


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kp features", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a run directory or a checkpoint")
    parser.add_argument("image", type=Path)
    parser.add_argument("--out", type=Path, default=Path("features.png"))
    parser.add_argument("--maps", type=int, default=4, help="activation maps per stage")
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        path = plot_features(load(args.model), read_image(args.image), args.out, args.maps)
    print(path)
