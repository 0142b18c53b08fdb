"""A look inside a trained network, for one image:

    kp features RUN_OR_CHECKPOINT IMAGE [--out features.png] [--maps 4]

One picture: the image with the predicted keypoints, the first layer's filters, the predicted heatmaps over the image
(heatmap models), and the most active channels at the end of each stage of the backbone (a stage: consecutive
convolutions at one resolution; an encoder-decoder has stages down and back up).
"""

from __future__ import annotations

from pathlib import Path

from kp.cli.common import count, parser, user_errors_in_one_line


def main(argv: list[str] | None = None) -> None:
    command = parser("kp features", __doc__)
    command.add_argument("model", type=Path, help="a run directory or a checkpoint")
    command.add_argument("image", type=Path)
    command.add_argument("--out", type=Path, default=Path("features.png"))
    command.add_argument("--maps", type=count, default=4, help="activation maps per stage")
    args = command.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        from kp.data.io import read_image
        from kp.inference.load import load
        from kp.viz.features import plot_features

        path = plot_features(load(args.model), read_image(args.image), args.out, args.maps)
    print(path)
