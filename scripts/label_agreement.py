"""How far the 68-landmark labels disagree with themselves: the floor under any model's test NME on facial68.

    python scripts/label_agreement.py [--root ../shared/data/facial68] [--out benchmarks/label_agreement]

The set holds three consecutive frames of each YouTube video (`<Person>_<video><frame>.jpg`: `Ann_Lee_40.jpg`,
`_41`, `_42`), labelled one by one. For each pair of neighbouring frames the image motion is measured (OpenCV's ECC,
an affine map fitted to the grey face region, the convex hull of the second frame's landmarks), the first frame's
labels are carried through it, and their mean distance to the second frame's labels, over the outer-eye-corner
distance, is the pair's disagreement (NME, as kp evaluate's). A face that moves rigidly and slightly between two
frames looks the same in both: where the fit is near-perfect (correlation >= --min-correlation) and the motion small
(<= --max-motion of the eye distance) the disagreement is the labelling's own, not the face's. Two labels of one
point that each miss it by NME e disagree by about e × √2 when they miss independently, so the per-label floor is
about the pairs' disagreement / √2 (less where one label was copied from the other: some pairs disagree by 0).

Prints the figures; writes <out>/pairs.csv (every pair) and <out>/largest_disagreements.png (the near-identical pairs
that disagree most: the second frame with its labels and the first frame's carried over).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rich.progress import track

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.data.facial68 import Facial68  # noqa: E402
from kp.data.io import read_image  # noqa: E402
from kp.errors import user_errors_in_one_line  # noqa: E402

FRAME = re.compile(r"(?P<video>.+_\d)(?P<frame>\d)$")  # Ann_Lee_41 -> video Ann_Lee_4, frame 1


def neighbour_pairs(files: list[Path]) -> list[tuple[int, int]]:
    """(i, j): file j is the frame after file i in the same video."""
    index = {f.stem: i for i, f in enumerate(files)}
    pairs = []
    for i, file in enumerate(files):
        match = FRAME.match(file.stem)
        following = index.get(f"{match['video']}{int(match['frame']) + 1}") if match else None
        if following is not None:
            pairs.append((i, following))
    return pairs


def register(first: np.ndarray, second: np.ndarray, region: np.ndarray) -> tuple[float, np.ndarray]:
    """(correlation, 2×3 affine W): first(x) ≈ second(W x), fitted where `region` (a mask of second) is set;
    correlation NaN where the fit does not converge."""
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        correlation, warp = cv2.findTransformECC(
            first.astype(np.float32), second.astype(np.float32), warp, cv2.MOTION_AFFINE, criteria, region, 5
        )
    except cv2.error:
        return math.nan, warp
    return correlation, warp


def carry(data: Facial68, i: int, j: int) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(correlation, image i's labels carried into image j through the motion between them, which points both
    label); None where the two are not the same crop of the video (their sizes differ)."""
    first, second = (read_image(data.files[k], grey=True)[..., 0] for k in (i, j))
    if first.shape != second.shape:
        return None
    labelled = data.visible[i] & data.visible[j]
    region = np.zeros_like(second)
    cv2.fillConvexPoly(region, cv2.convexHull(data.keypoints[j][labelled].round().astype(np.int32)), 255)
    correlation, warp = register(first, second, region)
    return correlation, data.keypoints[i] @ warp[:, :2].T + warp[:, 2], labelled


def agreement(data: Facial68) -> pd.DataFrame:
    """One row per pair of neighbouring frames: first, second, correlation, motion and disagreement (both NME)."""
    left, right = data.meta.norm_pair
    rows = []
    for i, j in track(neighbour_pairs(data.files), description="registering neighbouring frames"):
        carried = carry(data, i, j)
        if carried is None:
            continue
        correlation, points, labelled = carried
        eyes = float(np.linalg.norm(data.keypoints[j][left] - data.keypoints[j][right]))
        distance = np.linalg.norm(points - data.keypoints[j], axis=1)[labelled]
        motion = np.linalg.norm(points - data.keypoints[i], axis=1)[labelled]
        rows.append(
            {
                "first": data.files[i].name,
                "second": data.files[j].name,
                "correlation": correlation,
                "motion_nme": motion.mean() / eyes,
                "disagreement_nme": distance.mean() / eyes,
            }
        )
    return pd.DataFrame(rows, columns=["first", "second", "correlation", "motion_nme", "disagreement_nme"])


def near_identical(pairs: pd.DataFrame, min_correlation: float, max_motion: float) -> pd.DataFrame:
    return pairs[(pairs.correlation >= min_correlation) & (pairs.motion_nme <= max_motion)]


def draw_largest(data: Facial68, pairs: pd.DataFrame, path: Path, count: int = 6) -> None:
    """The second frame of each of the `count` most disagreeing pairs, its labels (green) and the first frame's
    carried through the motion (red)."""
    index = {f.name: k for k, f in enumerate(data.files)}
    largest = pairs.nlargest(count, "disagreement_nme")
    figure, axes = plt.subplots(1, len(largest), figsize=(3 * len(largest), 3.4), squeeze=False)
    for axis, row in zip(axes[0], largest.itertuples()):
        i, j = index[row.first], index[row.second]
        _, carried, _ = carry(data, i, j)
        axis.imshow(read_image(data.files[j], grey=True)[..., 0], cmap="gray")
        axis.scatter(*data.keypoints[j].T, s=4, c="lime")
        axis.scatter(*carried.T, s=4, c="red")
        axis.set_title(f"{row.second}\nNME {row.disagreement_nme:.3f}", fontsize=8)
        axis.axis("off")
    figure.suptitle("near-identical frames: the second's labels (green), the first's carried over (red)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_dir = Path(os.environ.get("KP_DATA_DIR", ROOT.parent / "shared" / "data"))
    parser.add_argument("--root", type=Path, default=data_dir / "facial68", help="keypoints.csv and images/")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "label_agreement")
    parser.add_argument("--min-correlation", type=float, default=0.99, help="ECC fit of a near-identical pair")
    parser.add_argument("--max-motion", type=float, default=0.02, help="its largest motion, in eye distances")
    args = parser.parse_args(argv)
    with user_errors_in_one_line():
        data = Facial68("train", args.root, val_fraction=0.0, test_fraction=0.0)  # every image
        pairs = agreement(data)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(args.out / "pairs.csv", index=False)
    same = near_identical(pairs, args.min_correlation, args.max_motion)
    summary = {
        "pairs": len(pairs),
        "near_identical": len(same),
        "median": float(same.disagreement_nme.median()),
        "mean": float(same.disagreement_nme.mean()),
        "p90": float(same.disagreement_nme.quantile(0.9)),
    }
    summary["per_label"] = summary["median"] / math.sqrt(2)
    print(
        f"{summary['pairs']} pairs of neighbouring frames; {summary['near_identical']} near-identical (ECC correlation "
        f">= {args.min_correlation}, motion <= {args.max_motion} eye distances)."
    )
    if not len(same):
        print("No near-identical pair: nothing to measure the labels by (loosen --min-correlation or --max-motion).")
        print(f"written: {args.out / 'pairs.csv'}")
        return summary
    print(
        f"Their labels disagree by NME {summary['median']:.4f} (median), {summary['mean']:.4f} (mean), "
        f"{summary['p90']:.4f} (90th percentile): each label misses by about {summary['per_label']:.4f} "
        "(median / sqrt 2)."
    )
    draw_largest(data, same, args.out / "largest_disagreements.png")
    print(f"written: {args.out / 'pairs.csv'}, {args.out / 'largest_disagreements.png'}")
    return summary


if __name__ == "__main__":
    main()
