"""The SLEAP loader (kp.data.slp) on a .slp made with sleap-io from synthetic faces saved as PNGs: the points, names,
symmetries and split it reads, embedded frames, what it leaves out, `kp train data=slp` for an epoch, and several
instances on a frame ending in one line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kp import geometry
from kp.data.slp import SleapLabels
from kp.data.synthetic import SyntheticKeypoints
from kp.errors import ConfigError, DataError
from kp.geometry import letterbox
from kp.train.loop import train
from tests.helpers import compose_config


@pytest.fixture(autouse=True)
def back_to_the_working_directory(monkeypatch):
    monkeypatch.chdir(os.getcwd())  # write_slp moves it


sio = pytest.importorskip("sleap_io", reason='sleap-io is not installed: pip install -e ".[formats]"')

NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
FRAMES = 20
SIZE = 48
FIT = (64, 48)  # width, height the loader fits each frame into


def faces() -> SyntheticKeypoints:
    return SyntheticKeypoints("train", sizes={"train": FRAMES}, image_size=SIZE, occlusion_prob=0.0)


def write_slp(folder: Path, second_instance_on=None, predicted_only_on=None) -> tuple[Path, np.ndarray]:
    """folder/labels.slp over FRAMES synthetic faces saved as folder/images/NNN.png (an image-list video, named
    relative to the folder, as SLEAP keeps them when it ran there: the working directory then moves elsewhere, so the
    loader must look beside the .slp); the nose not visible on frame 0. Returns the path and the points written
    (N×5×2, NaN: not visible)."""
    (folder / "images").mkdir(parents=True)
    os.chdir(folder)
    files, points = [], []
    for i in range(FRAMES):
        sample = faces().load(i)
        cv2.imwrite(str(folder / "images" / f"{i:03d}.png"), sample.image[:, :, ::-1])
        files.append(f"images/{i:03d}.png")
        points.append(np.where(sample.visible[:, None], sample.keypoints, np.nan))
    points[0][2] = np.nan
    skeleton = sio.Skeleton(
        list(NAMES),  # sleap-io turns the names it is given into its Node objects
        edges=[("left_eye", "nose"), ("right_eye", "nose")],
        symmetries=[("left_eye", "right_eye"), ("mouth_left", "mouth_right")],
    )
    video = sio.Video.from_filename(files)
    frames = []
    for i, xy in enumerate(points):
        instances = [sio.Instance.from_numpy(xy, skeleton=skeleton)]
        if i == second_instance_on:
            instances.append(sio.Instance.from_numpy(xy + 3, skeleton=skeleton))
        if i == predicted_only_on:  # a model's guess, not a label
            instances = [sio.PredictedInstance.from_numpy(xy, skeleton=skeleton, point_scores=np.ones(5), score=1.0)]
        frames.append(sio.LabeledFrame(video=video, frame_idx=i, instances=instances))
    path = folder / "labels.slp"
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton]), str(path))
    os.chdir(folder.parent)
    return path, np.array(points)


def frame_of(sample_id: str) -> int:
    return int(Path(sample_id).stem)  # the image file's name: images/NNN.png


def every_split(path, **options) -> dict[str, SleapLabels]:
    return {split: SleapLabels(split, str(path), *FIT, **options) for split in ("train", "val", "test")}


def test_the_labelled_frames_come_back_with_their_points_names_and_symmetries(tmp_path):
    path, written = write_slp(tmp_path / "project")
    splits = every_split(path)
    assert [len(data) for data in splits.values()] == [16, 2, 2]  # 20 look-alike groups of one frame each
    meta = splits["train"].meta
    assert meta.names == NAMES and meta.flip_pairs == [(0, 1), (3, 4)] and meta.skeleton == [(0, 2), (1, 2)]
    seen = [frame_of(data.load(i).id) for data in splits.values() for i in range(len(data))]
    assert sorted(seen) == list(range(FRAMES))  # each frame in one split only
    for data in splits.values():
        for i in range(len(data)):
            raw = data.load(i)
            expected = written[frame_of(raw.id)]
            labelled = np.isfinite(expected).all(axis=1)
            assert raw.image.shape == (48, 64, 3) and (raw.visible == labelled).all()
            np.testing.assert_allclose(
                raw.keypoints[labelled], geometry.apply(raw.affine, expected[labelled]), atol=1e-4
            )
    nose = {frame_of(data.load(i).id): data.labelled()[i, 2] for data in splits.values() for i in range(len(data))}
    assert nose[0] is np.False_ and sum(nose.values()) == FRAMES - 1


def test_embedded_frames_need_no_image_file(tmp_path):
    path, written = write_slp(tmp_path)
    os.chdir(tmp_path)  # where the image names lead, for sleap-io to embed the frames
    sio.save_slp(sio.load_slp(str(path)), str(tmp_path / "package.slp"), embed="user")
    os.chdir(tmp_path.parent)
    for image in (tmp_path / "images").iterdir():
        image.unlink()
    data = SleapLabels("train", str(tmp_path / "package.slp"), *FIT)
    assert len(data) == 16 and data.issues == []
    for i in (0, 5):
        raw = data.load(i)
        frame = frame_of(raw.id)  # named after the images it was embedded from
        image, keypoints, _ = letterbox(faces().load(frame).image, np.nan_to_num(written[frame]), FIT)
        assert np.array_equal(raw.image, image)  # PNG in, PNG embedded: the same pixels
        assert np.isclose(raw.keypoints[raw.visible], keypoints[raw.visible]).all()
    assert all(isinstance(source, bytes) for _, source in data.image_sources())  # the leak check hashes the pixels


def test_predicted_frames_and_missing_images_are_left_out_and_counted(tmp_path):
    path, _ = write_slp(tmp_path, predicted_only_on=3)
    (tmp_path / "images" / "007.png").unlink()
    splits = every_split(path, split_by="frame")
    assert sum(len(data) for data in splits.values()) == FRAMES - 2
    assert len(splits["train"].issues) == 1 and "images/007.png is missing" in splits["train"].issues[0]


def test_a_video_found_nowhere_is_named(tmp_path):
    path, _ = write_slp(tmp_path / "project")
    moved = tmp_path / "elsewhere" / "labels.slp"  # the .slp alone: its images are not beside it
    moved.parent.mkdir()
    path.rename(moved)
    with pytest.raises(
        DataError,
        match=r"no usable labelled frame \(1 skipped; the first: .*video images/000.png "
        r"\(and 19 more images\) not found, nor beside the .slp",
    ):
        SleapLabels("train", str(moved), *FIT)


def test_several_instances_on_a_frame_end_in_one_line_or_the_first_is_taken(tmp_path):
    path, written = write_slp(tmp_path, second_instance_on=4)
    with pytest.raises(DataError) as refused:
        SleapLabels("train", str(path), *FIT)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ") and "images/004.png has 2 labelled instances" in message
    assert "data.dataset.instances=first" in message
    splits = every_split(path, instances="first", split_by="frame")
    data = next(data for data in splits.values() if 4 in [frame_of(data.load(i).id) for i in range(len(data))])
    raw = data.load([frame_of(data.load(i).id) for i in range(len(data))].index(4))
    np.testing.assert_allclose(raw.keypoints, geometry.apply(raw.affine, written[4]), atol=1e-4)  # not the +3 one


def test_without_sleap_io_the_error_names_the_extra(tmp_path, monkeypatch):
    path, _ = write_slp(tmp_path)
    monkeypatch.setitem(sys.modules, "sleap_io", None)
    with pytest.raises(ConfigError, match=r'sleap-io: pip install -e "\.\[formats\]"'):
        SleapLabels("train", str(path), *FIT)


def test_kp_train_data_slp_trains_an_epoch(tmp_path):
    path, _ = write_slp(tmp_path / "project")
    cfg = compose_config(
        "data=slp",
        f"data.dataset.path={path}",
        "data.dataset.width=48",
        "data.dataset.height=48",
        "data.batch_size=4",
        "model=simple_cnn",
        "trainer.max_epochs=1",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        output_dir=tmp_path / "run",
    )
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_images"] == 16 and metrics["epochs"] == 1
    assert np.isfinite(metrics["test/nme"]) and 0 <= metrics["test/pck_0.1"] <= 1
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
