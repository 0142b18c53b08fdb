"""Where a run's predictions sit against the labels, on each image and on its mirror: the test behind flip test.

    python scripts/flip_offsets.py RUN [--split val] [--batches 12]

For every labelled keypoint of the split (without augmentation, at most --batches batches of the run's batch size) the
mean signed error in x and y (input pixels) of three predictions: on the image; on its mirror, flipped back (the
heatmaps mirrored and the pairs swapped, as flip test does); and flip test's average of the two. A model trained with
mirror augmentation on mirror-consistent labels puts the first two in the same place: flip test then averages noise
away. Two cases break that, and tell apart here:
  - the two predictions disagree by a constant x (flip test then adds half of it to every point): the model can tell a
    mirrored image from a plain one and treats them differently, e.g. because the augmentation was not mirror-symmetric
    (kp's was not, before its steps drew independently: every mirrored image was also rotated and zoomed);
  - the two agree but both sit off the labels in x: the labels' x is not mirror-symmetric (drawn at x + c, which the
    mirror turns into x - c), and mirror augmentation cannot learn the c; train without it (`augment.hflip=null`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.errors import user_errors_in_one_line  # noqa: E402
from kp.evaluation.evaluate import _split_dataset, data_config  # noqa: E402
from kp.inference.load import load  # noqa: E402

KINDS = ("image", "mirror", "flip test")


@torch.no_grad()
def flip_offsets(run: Path, split: str = "val", batches: int = 12) -> dict[str, np.ndarray]:
    """kind -> K×2 mean signed error (x, y) per keypoint, input pixels (NaN where a keypoint is never labelled), and
    "overall" -> 3×2, one row per kind over all labelled points; "keypoints" -> the K names."""
    predictor = load(run)
    module = predictor.module.eval()
    datamodule = instantiate(data_config(run, []).data)
    datamodule.setup()
    loader = torch.utils.data.DataLoader(_split_dataset(datamodule, split), batch_size=datamodule.batch_size)
    permutation = predictor.meta.flip_permutation()
    errors = {kind: [] for kind in KINDS}
    visible = []
    for index, batch in enumerate(loader):
        if index >= batches:
            break
        images, target = batch["image"], batch["keypoints"]
        outputs, mirrored = module(images), module(images.flip(-1))
        back = module.codec.flip_back(mirrored, permutation)
        predictions = (module.codec.decode(outputs)[0], module.codec.decode(back)[0], module.locate(images, True)[0])
        for kind, prediction in zip(KINDS, predictions):
            errors[kind].append((prediction - target).numpy())
        visible.append(batch["visible"].bool().numpy())
    seen = np.concatenate(visible)[..., None]
    result = {}
    for kind in KINDS:
        signed = np.where(seen, np.concatenate(errors[kind]), np.nan)
        result[kind] = np.nanmean(signed, 0)
        result.setdefault("overall", []).append(np.nanmean(signed.reshape(-1, 2), 0))
    result["overall"] = np.array(result["overall"])
    result["keypoints"] = np.array(predictor.meta.names)
    return result


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a kp run directory")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--batches", type=int, default=12, help="at most this many batches of the split")
    args = parser.parse_args(argv)
    with user_errors_in_one_line():
        result = flip_offsets(args.run, args.split, args.batches)
    names = result["keypoints"]
    print(f"mean signed error (input px) on {args.split}, x / y:")
    print("| keypoint | " + " | ".join(KINDS) + " |\n|---|---|---|---|")
    rows = [(name, [result[kind][k] for kind in KINDS]) for k, name in enumerate(names)]
    for name, values in [("all", list(result["overall"])), *rows]:
        print(f"| {name} | " + " | ".join(f"{x:+.2f} / {y:+.2f}" for x, y in values) + " |")
    return result


if __name__ == "__main__":
    main()
