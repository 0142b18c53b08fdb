"""kp predict --format slp / nwb: the predictions round-trip through sleap-io with kp's names, skeleton, points and
scores; an NWB target that exists, or still images in NWB, are refused in one line before predicting."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from kp.cli.predict import main as predict_main
from kp.data.synthetic import SyntheticKeypoints
from tests.test_export import tiny_checkpoint
from tests.test_movement import NAMES, write_video

sio = pytest.importorskip("sleap_io", reason='sleap-io is not installed: pip install -e ".[formats]"')


def predict(checkpoint, inputs, out, *formats: str) -> list[dict]:
    flags = [flag for fmt in formats for flag in ("--format", fmt)]
    predict_main([str(checkpoint), *map(str, inputs), "--out", str(out), *flags, "--no-overlays", "--workers", "0"])
    with open(out / "predictions.csv", newline="") as file:
        return list(csv.DictReader(file))


def points_of(row: dict) -> np.ndarray:
    return np.array([[float(row[f"{name}_{c}"]) for c in "xy"] for name in NAMES])


def scores_of(row: dict) -> np.ndarray:
    return np.array([float(row[f"{name}_score"]) for name in NAMES])


@pytest.fixture
def inputs(tmp_path):
    """A video of 4 synthetic faces and 2 still images."""
    write_video(tmp_path / "session.mp4", 4)
    faces = SyntheticKeypoints("val", sizes={"val": 2}, image_size=40)
    (tmp_path / "stills").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "stills" / f"face{i}.png"), faces.load(i).image[:, :, ::-1])
    return tmp_path / "session.mp4", tmp_path / "stills"


def test_slp_round_trips_through_sleap_io(tmp_path, inputs):
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    rows = predict(checkpoint, inputs, tmp_path / "out", "slp")
    labels = sio.load_slp(str(tmp_path / "out" / "predictions.slp"))
    skeleton = labels.skeletons[0]
    assert skeleton.node_names == NAMES and skeleton.symmetry_inds and skeleton.edge_inds
    assert len(labels.labeled_frames) == len(rows) == 6
    assert sorted(len(video.filename) if isinstance(video.filename, list) else 1 for video in labels.videos) == [1, 2]
    found = {}
    for frame in labels.labeled_frames:
        [instance] = frame.predicted_instances
        name = frame.video.filename if isinstance(frame.video.filename, str) else frame.video.filename[frame.frame_idx]
        found[(name, frame.frame_idx if isinstance(frame.video.filename, str) else "")] = instance
    for row in rows:
        instance = found[(row["file"], int(row["frame"]) if row["frame"] else "")]
        np.testing.assert_allclose(instance.numpy(), points_of(row), atol=1e-3)  # the CSV rounds to 3 decimals
        np.testing.assert_allclose(instance.points["score"], scores_of(row), atol=1e-4)
        assert instance.score == pytest.approx(scores_of(row).mean(), abs=1e-3)


def test_nwb_round_trips_and_is_never_overwritten(tmp_path, inputs):
    video, stills = inputs
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"--format nwb holds the predictions of videos, and 2 still image"):
        predict(checkpoint, [video, stills], out, "nwb")
    rows = predict(checkpoint, [video], out, "nwb")
    labels = sio.load_nwb(str(out / "predictions.nwb"))
    assert labels.skeletons[0].node_names == NAMES
    by_frame = {frame.frame_idx: frame.instances[0] for frame in labels.labeled_frames}
    assert sorted(by_frame) == [0, 1, 2, 3]
    for row in rows:
        instance = by_frame[int(row["frame"])]
        np.testing.assert_allclose(instance.numpy(), points_of(row), atol=1e-3)
        np.testing.assert_allclose(instance.points["score"], scores_of(row), atol=1e-4)
    before = (out / "predictions.nwb").read_bytes()
    with pytest.raises(SystemExit) as refused:
        predict(checkpoint, [video], out, "nwb")
    message = str(refused.value)
    assert "predictions.nwb exists: kp does not overwrite an NWB file" in message and "\n" not in message
    assert (out / "predictions.nwb").read_bytes() == before
