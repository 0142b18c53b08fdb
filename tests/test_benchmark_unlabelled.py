"""scripts/benchmark_unlabelled.py's figures: the frame-to-frame jumps of a predictions CSV and the groups' mean and
spread (the trainings and kp predict it drives are tested elsewhere)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kp.formats.predictions_csv import columns
from tests.helpers import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("benchmark_unlabelled", ROOT / "scripts" / "benchmark_unlabelled.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _predictions(path, frames, xy, score):
    """A one-keypoint predictions.csv of a video's frames."""
    lines = [",".join(columns(["nose"], faces=False))]
    lines += [f"v.mp4,{f},ok,{x},{y},{s}," for f, (x, y), s in zip(frames, xy, score)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jumps_are_distances_between_consecutive_frames_only(tmp_path):
    # frames 0,1,2 then a gap to 5,6: the step 2 -> 5 is not a jump; rows out of order are sorted by frame
    csv_path = _predictions(
        tmp_path / "p.csv",
        [1, 0, 2, 5, 6],
        [(3, 4), (0, 0), (3, 4), (100, 100), (100, 110)],
        [0.9, 0.9, 0.1, 0.9, 0.9],
    )
    jumps = _script().jumps
    assert sorted(jumps(csv_path)) == pytest.approx([0.0, 5.0, 10.0])
    assert sorted(jumps(csv_path, threshold=0.3)) == pytest.approx([5.0, 10.0])  # frame 2's score is 0.1


def test_summary_gives_each_group_mean_spread_and_values():
    module = _script()
    rows = [{"group": "a", **dict.fromkeys(module.FIGURES, value)} for value in (1.0, 3.0)]
    rows.append({"group": "b", **dict.fromkeys(module.FIGURES, 2.0)})
    a, b = module.summary(rows)
    assert (a["group"], a["runs"], a["test_rmse"]) == ("a", 2, f"2.00 ± {np.std([1, 3], ddof=1):.2f} (1.00 / 3.00)")
    assert (b["runs"], b["jump_p99"]) == (1, "2.00")
