"""scripts/benchmark_training.py on a tiny setting: every phase of a step is measured, before (default memory layout)
and now (channels-last), and the table printed (no timing is asserted); and the face boxes it compares before and
after are kept on disk by content."""

from __future__ import annotations

import importlib
import math

import cv2
import numpy as np

from kp.data import faces


def _script():
    return importlib.import_module("scripts.benchmark_training")  # scripts/ is importable from the repository root


def test_a_short_fit_is_split_into_its_phases(capsys):
    overrides = ["data.dataset.sizes={train:96,val:16,test:16}", "data.batch_size=16", "data.num_workers=0"]
    before, row = _script().main(
        ["synthetic_coords", "--steps", "5", "--warmup", "1", "--images", "4", "--overrides", *overrides]
    )
    assert before["preset"].startswith("synthetic_coords, before") and row["preset"].startswith("synthetic_coords, now")
    assert row["batch_size"] == 16 and row["startup_s"] >= row["data_s"] >= 0
    for key in ("images_per_s", "loader_images_per_s", "load_s", "augment_s", "first_step_s"):
        value = row[key]
        assert math.isfinite(value) and value > 0
    assert set(row["phases"]) == {"wait", "forward", "backward", "optimizer", "rest"}
    assert row["phases"]["forward"] > 0 and row["phases"]["backward"] > 0 and row["phases"]["optimizer"] > 0
    out = capsys.readouterr().out
    startup = f"{row['startup_s']:.1f} ({row['data_s']:.1f})"
    assert f"| {row['preset']} | 16 | {startup} | {row['first_step_s']:.1f} | {row['images_per_s']:.1f} |" in out


def test_face_boxes_are_detected_once_per_image_content(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(faces.FaceDetector, "__call__", lambda self, image: calls.append(image.shape) or [(1, 2, 3, 4)])
    files = []
    for i in range(3):
        files.append(tmp_path / f"photo{i}.png")
        cv2.imwrite(str(files[-1]), np.full((8, 8), 40 * i, np.uint8))
    detector = faces.FaceDetector()
    assert detector.in_files(files, tmp_path / "cache") == [[(1, 2, 3, 4)]] * 3 and len(calls) == 3
    assert detector.in_files(files, tmp_path / "cache") == [[(1, 2, 3, 4)]] * 3 and len(calls) == 3  # from disk
    cv2.imwrite(str(files[0]), np.full((8, 8), 99, np.uint8))  # an edited photo is detected again
    detector.in_files(files, tmp_path / "cache")
    assert len(calls) == 4
    faces.FaceDetector(min_size=30).in_files(files, tmp_path / "cache")  # other settings: other boxes
    assert len(calls) == 7


def test_with_unlabelled_clips_the_row_counts_labelled_images_and_waits_on_both_loaders(tmp_path):
    """The coordinates codec's path too: its decode gives the unlabelled terms their keypoints."""
    from tests.test_unlabelled import write_video

    write_video(tmp_path / "v.mp4", 12, size=(32, 32))
    overrides = [
        "data.dataset.sizes={train:96,val:16,test:16}",
        "data.batch_size=16",
        "data.num_workers=0",
        "data.dataset.occlusion_prob=0",
        "loss=semi_supervised",
        f"data.unlabelled.videos=[{tmp_path / 'v.mp4'}]",
        "data.unlabelled.clip_length=4",
    ]
    (row,) = _script().main(
        ["synthetic_coords", "--now-only", "--steps", "4", "--warmup", "1", "--images", "2", "--overrides", *overrides]
    )
    assert row["batch_size"] == 16  # the labelled images, not the clips' frames
    assert math.isfinite(row["images_per_s"]) and math.isfinite(row["loader_images_per_s"])
    assert row["phases"]["forward"] > 0 and row["phases"]["wait"] >= 0
