"""movement (the neuroinformatics-unit's analysis toolbox) loads kp's DeepLabCut-format predictions
(`--format dlc-poses`) with the same keypoint names and the same numbers as predictions.csv."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from kp.cli.predict import main as predict_main
from kp.data.synthetic import SyntheticKeypoints
from kp.predict.pose_files import write_dlc_poses
from tests.test_export import tiny_checkpoint

load_poses = pytest.importorskip(
    "movement.io.load_poses", reason='movement is not installed: pip install -e ".[formats]"'
)
NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]


def write_video(path, frames: int) -> None:
    faces = SyntheticKeypoints("test", sizes={"test": frames}, image_size=40)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (40, 40))
    for i in range(frames):
        writer.write(faces.load(i).image[:, :, ::-1])
    writer.release()


def test_movement_reads_kps_deeplabcut_pose_file_with_the_same_numbers(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    write_video(tmp_path / "session.mp4", 9)
    out = tmp_path / "out"
    predict_main(
        [str(checkpoint), str(tmp_path / "session.mp4"), "--out", str(out), "--format", "dlc-poses", "--every", "2"]
        + ["--no-overlays", "--workers", "0"]
    )
    with open(out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["frame"]) for row in rows] == [0, 2, 4, 6, 8]

    poses = load_poses.from_dlc_file(out / "sessionDLC_kp.csv")
    assert list(poses.coords["keypoints"].values) == NAMES
    assert poses.sizes["time"] == 9 and poses.sizes["individuals"] == 1  # row i is frame i
    position = poses["position"].transpose("time", "keypoints", "space", "individuals").values[..., 0]
    confidence = poses["confidence"].transpose("time", "keypoints", "individuals").values[..., 0]
    for row in rows:
        frame = int(row["frame"])
        expected = [[float(row[f"{name}_{c}"]) for c in "xy"] for name in NAMES]
        np.testing.assert_allclose(position[frame], expected, atol=1e-3)  # both files round to 3 decimals
        np.testing.assert_allclose(confidence[frame], [float(row[f"{name}_score"]) for name in NAMES], atol=1e-4)
    assert np.isnan(position[1::2]).all()  # the frames --every 2 passed over


def test_several_faces_become_individuals(tmp_path):
    points = np.arange(10, dtype=float).reshape(5, 2)
    rows = [
        {
            "file": "clip.mp4",
            "frame": frame,
            "face": face,
            "keypoints": points + 100 * face + frame,
            "scores": [0.5] * 5,
        }
        for frame in (0, 1)
        for face in (0, 1)
        if (frame, face) != (1, 1)  # frame 1 has one face
    ]
    [path] = write_dlc_poses(rows, NAMES, tmp_path)
    poses = load_poses.from_dlc_file(path)
    assert list(poses.coords["individuals"].values) == ["face0", "face1"] and poses.sizes["time"] == 2
    position = poses["position"].transpose("time", "individuals", "keypoints", "space").values
    np.testing.assert_allclose(position[0, 1], points + 100)
    np.testing.assert_allclose(position[1, 0], points + 1)
    assert np.isnan(position[1, 1]).all()
