"""`kp preview`: split sizes on stdout and a PNG grid of samples with keypoints and target heatmaps."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import numpy as np

from kp.cli import preview
from tests.helpers import ROOT, shared_data

TINY = ["data=synthetic", "data.dataset.sizes={train:8,val:3,test:2}"]


def test_preview_writes_the_grid_and_prints_split_sizes(tmp_path, capsys):
    out = tmp_path / "grid.png"
    preview.main([*TINY, "--n", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "train: 8 images" in printed and "val: 3 images" in printed and "test: 2 images" in printed
    picture = matplotlib.image.imread(out)
    assert picture.shape[0] > picture.shape[1] > 300  # three rows of two panels
    assert np.ptp(picture[..., :3]) > 0.5  # not blank


def test_preview_draws_heatmaps_of_a_coords_target(tmp_path, capsys):
    out = tmp_path / "coords.png"
    preview.main([*TINY, "target=coords", "augment=default", "--split", "val", "--n", "2", "--out", str(out)])
    assert out.stat().st_size > 10_000


def test_preview_command_line_on_real_faces(tmp_path):
    root = shared_data("facial_kaggle_format")
    out = tmp_path / "facial.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kp",
            "preview",
            "data=facial",
            f"data.dataset.root={root}",
            f"data.dataset.cache_dir={tmp_path}",
            "--n",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "train: 611 images" in result.stdout and "val: 60 images" in result.stdout  # complete, by look-alikes
    assert out.exists()
