"""scripts/label_agreement.py: the motion between two frames is measured and taken out, so what remains is the labels'
own disagreement."""

import csv

import cv2
import numpy as np
import pandas as pd
import pytest

from scripts import label_agreement  # scripts/ is importable from the repository root, as tests/ is
from tests.helpers import ROOT

SHIFT = np.array([3.0, 2.0])  # the face moves by this between frames 0 and 1 (pixels)
NUDGE = 0.5  # and its second labels sit this much further right than the first's


@pytest.fixture
def video(tmp_path):
    """Two frames of one video (the second shifted by SHIFT, its labels by SHIFT + NUDGE in x), a third frame of
    another size, and a frame of another video."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (120, 140)).astype(np.float32), (0, 0), 2.5)
    frame = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    moved = cv2.warpAffine(frame, np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]]), (140, 120))
    points = rng.uniform([35, 30], [105, 90], (68, 2))
    points[36], points[45] = (50, 50), (90, 50)  # the outer eye corners, 40 px apart
    root = tmp_path / "facial68"
    (root / "images").mkdir(parents=True)
    labels = {
        "Ann_Lee_40.jpg": (frame, points),
        "Ann_Lee_41.jpg": (moved, points + SHIFT + [NUDGE, 0]),
        "Ann_Lee_42.jpg": (cv2.resize(moved, (100, 90)), points * 0.7),
        "Ann_Lee_50.jpg": (frame, points),
    }
    for name, (image, _) in labels.items():
        cv2.imwrite(str(root / "images" / name), image)
    with open(root / "keypoints.csv", "w", newline="") as file:
        rows = [[name, *p.reshape(-1).round(3)] for name, (_, p) in labels.items()]
        csv.writer(file).writerows([[""] + [str(i) for i in range(136)], *rows])
    return root


def test_neighbour_pairs_pair_consecutive_frames_of_one_video():
    files = [ROOT / f"{name}.jpg" for name in ("Ann_Lee_40", "Ann_Lee_41", "Ann_Lee_42", "Ann_Lee_50", "Bo_11", "x")]
    assert label_agreement.neighbour_pairs(files) == [(0, 1), (1, 2)]


def test_disagreement_is_what_remains_after_the_motion(video, tmp_path, capsys):
    summary = label_agreement.main(["--root", str(video), "--out", str(tmp_path / "out"), "--max-motion", "0.2"])
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    assert list(pairs["first"]) == ["Ann_Lee_40.jpg"]  # 41 -> 42 changes size: not the same crop
    row = pairs.iloc[0]
    eyes = 40.0
    assert row.correlation > 0.99
    assert row.disagreement_nme == pytest.approx(NUDGE / eyes, abs=0.003)  # the shift is taken out, the nudge not
    assert row.motion_nme == pytest.approx(np.linalg.norm(SHIFT) / eyes, abs=0.005)
    assert summary["near_identical"] == 1
    assert summary["per_label"] == pytest.approx(NUDGE / eyes / np.sqrt(2), abs=0.003)
    assert (tmp_path / "out" / "largest_disagreements.png").stat().st_size > 10_000
    assert "1 pairs of neighbouring frames; 1 near-identical" in capsys.readouterr().out

    summary = label_agreement.main(["--root", str(video), "--out", str(tmp_path / "strict")])  # motion 0.09 > 0.02
    assert summary["near_identical"] == 0 and not (tmp_path / "strict" / "largest_disagreements.png").exists()
    assert "No near-identical pair" in capsys.readouterr().out
