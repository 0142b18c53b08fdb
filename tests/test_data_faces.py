"""The two face sets: Kaggle facial keypoints (data=facial) and the 68-landmark set (data=facial68), on small fixtures
written here and on the real files in ../shared/data."""

from __future__ import annotations

import csv
import logging

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate

from kp.data import facial, facial68
from kp.data.datamodule import KeypointDataModule
from kp.data.faces import face_crop_box
from kp.data.facial import FacialKeypoints, read_test_images, write_submission
from kp.data.facial68 import Facial68, person_of
from kp.errors import DataError
from kp.geometry import apply
from tests.helpers import compose_config, shared_data

COLUMNS = [f"{name}_{axis}" for name in facial.NAMES for axis in "xy"]


# ---------------------------------------------------------------- Kaggle facial keypoints


def pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, 96 * 96)


def kaggle_row(seed: int, complete: bool) -> list[str]:
    points = np.random.default_rng(seed).uniform(10, 86, 30).round(3)
    values = [str(v) if complete or i in (0, 1, 2, 3, 20, 21, 28, 29) else "" for i, v in enumerate(points)]
    return values + [" ".join(map(str, pixels(seed)))]


@pytest.fixture
def kaggle(tmp_path):
    """training.csv with 19 good rows and 5 bad ones (lines 5 to 8, and 11)."""
    rows = [kaggle_row(i, complete=i % 5 < 2) for i in range(20)]
    bad = [kaggle_row(100, True)[1:], kaggle_row(101, True), kaggle_row(102, True), kaggle_row(103, True)]
    bad[1][4] = "abc"
    bad[2][7] = "inf"
    bad[3][-1] = bad[3][-1].rsplit(" ", 1)[0]  # 9215 pixel values
    rows[5][-1] = rows[5][-1].replace(" ", " 1.5 ", 1)  # a non-integer pixel: a fifth bad row, line 11
    root = tmp_path / "kaggle"
    root.mkdir()
    with open(root / "training.csv", "w", newline="") as file:
        csv.writer(file).writerows([COLUMNS + ["Image"], *rows[:3], *bad, *rows[3:]])
    return root


def test_facial_rows_subsets_and_pixels(kaggle, tmp_path):
    def split(name, subset):
        return FacialKeypoints(name, kaggle, subset=subset, val_fraction=0.2, cache_dir=tmp_path / "cache")

    train, val, test = (split(name, "all") for name in ("train", "val", "test"))
    assert (len(train), len(val)) == (15, 4)
    assert sorted(test.rows) == sorted(val.rows)  # test_fraction=0: Kaggle's test.csv has no labels
    assert not set(train.rows) & set(val.rows)
    complete = split("train", "complete")
    assert len(complete) == sum(np.isfinite(train.keypoints[r]).all() for r in train.rows)
    assert all(complete[i]["visible"].all() for i in range(len(complete)))

    sample = train[0]
    line = train.lines[train.rows[0]]  # the row's CSV line: rows 0..2 on lines 2..4, rows 3.. after the bad lines
    seed = line - 2 if line <= 4 else line - 6
    expected = pixels(seed).reshape(96, 96) / 255.0
    np.testing.assert_allclose(sample["image"][0].numpy(), expected, atol=1e-6)  # row-major: x = column
    points = np.random.default_rng(seed).uniform(10, 86, 30).round(3).reshape(15, 2)
    visible = sample["visible"].numpy()
    np.testing.assert_allclose(sample["keypoints"].numpy()[visible], points[visible], atol=1e-4)
    assert visible.sum() in (4, 15)


def test_facial_bad_rows_are_skipped_counted_and_named(kaggle, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="kp.data.facial"):
        data = FacialKeypoints("train", kaggle, subset="all", val_fraction=0.0, cache_dir=tmp_path)
    assert len(data) == 19
    message = caplog.text
    assert "left out 5 bad sample(s) or point(s)" in message
    path = str(kaggle / "training.csv")
    assert f"{path}:5: 30 columns, expected 31" in message
    assert f"{path}:6: left_eye_inner_corner_x value 'abc' is not a number" in message
    assert f"{path}:7: left_eye_outer_corner_y value 'inf' is not finite" in message
    assert f"{path}:8: Image has 9215 values, expected 9216" in message
    assert f"{path}:11: Image has values that are not integers" in message


def test_facial_parse_is_cached_by_content(kaggle, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    FacialKeypoints("train", kaggle, cache_dir=cache)
    assert len(list((cache / "facial").glob("*.npz"))) == 1

    def no_parsing(path):
        raise AssertionError("parsed again")

    monkeypatch.setattr(facial, "_parse_training", no_parsing)
    facial._load_training.cache_clear()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "training.csv").write_bytes((kaggle / "training.csv").read_bytes())
    assert len(FacialKeypoints("train", copy, subset="all", cache_dir=cache)) > 0  # same content: from the cache
    with open(copy / "training.csv", "a", newline="") as file:
        csv.writer(file).writerow(kaggle_row(50, True))
    with pytest.raises(AssertionError, match="parsed again"):  # new content: a new parse
        FacialKeypoints("train", copy, cache_dir=cache)


def test_facial_wrong_header_is_an_error_at_start(tmp_path):
    (tmp_path / "training.csv").write_text(",".join(COLUMNS[:-2] + ["Image"]) + "\n")
    with pytest.raises(DataError, match=r"training.csv:1: header .* missing \['mouth_center_bottom_lip_x'"):
        FacialKeypoints("train", tmp_path, cache_dir=tmp_path)
    with pytest.raises(DataError, match="not found"):
        FacialKeypoints("train", tmp_path / "nowhere", cache_dir=tmp_path)


def test_facial_empty_split_is_an_error_at_start(kaggle, tmp_path):
    datamodule = KeypointDataModule(
        lambda split, transform, max_pixels: FacialKeypoints(split, kaggle, val_fraction=0.0, cache_dir=tmp_path)
    )
    with pytest.raises(ValueError, match="The val split of .*training.csv by similarity is empty"):
        datamodule.setup()


def test_kaggle_submission(tmp_path):
    with open(tmp_path / "test.csv", "w", newline="") as file:
        csv.writer(file).writerows(
            [["ImageId", "Image"], [7, " ".join(map(str, pixels(7)))], [9, " ".join(map(str, pixels(9)))]]
        )
    with open(tmp_path / "IdLookupTable.csv", "w", newline="") as file:
        csv.writer(file).writerows(
            [
                ["RowId", "ImageId", "FeatureName", "Location"],
                [1, 7, "left_eye_center_x", ""],
                [2, 7, "nose_tip_y", ""],
                [3, 9, "mouth_center_bottom_lip_x", ""],
            ]
        )
    image_ids, images = read_test_images(tmp_path)
    assert image_ids.tolist() == [7, 9] and images.shape == (2, 96, 96)
    np.testing.assert_array_equal(images[1], pixels(9).reshape(96, 96))
    predictions = np.full((2, 15, 2), 50.0)
    predictions[0, 0, 0], predictions[0, 10, 1], predictions[1, 14, 0] = -3.0, 40.25, 120.0
    out = write_submission(predictions, image_ids, tmp_path / "IdLookupTable.csv", tmp_path / "sub.csv")
    assert out.read_text().splitlines() == ["RowId,Location", "1,0.0000", "2,40.2500", "3,96.0000"]
    with pytest.raises(DataError, match="IdLookupTable.csv:4: ImageId 9 has no prediction"):
        write_submission(predictions[:1], [7], tmp_path / "IdLookupTable.csv", tmp_path / "sub.csv")


@pytest.fixture(scope="module")
def facial_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("facial_cache")


def test_real_facial_splits_and_left_right(facial_cache):
    root = shared_data("facial_kaggle_format")
    cfg = compose_config(
        "data=facial",
        "data.dataset.subset=all",
        f"data.dataset.root={root}",
        f"data.dataset.cache_dir={facial_cache}",
        "data.num_workers=0",
        "augment=none",
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    sizes = {split: len(data) for split, data in datamodule.splits.items()}
    assert sizes == {"train": 1966, "val": 219, "test": 219}  # 90/10 of 2185 rows in 2002 groups of look-alikes
    train = datamodule.splits["train"]
    eyes = train.keypoints[train.rows][:, :2]
    both = np.isfinite(eyes).all(axis=(1, 2))
    assert both.mean() > 0.95
    # "left" is the person's left, which appears on the image's right.
    assert (eyes[both, 0, 0] > eyes[both, 1, 0]).mean() > 0.95
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (32, 1, 96, 96)

    complete = FacialKeypoints("train", root, subset="complete", cache_dir=facial_cache)
    assert 0 < len(complete) < 0.5 * len(train)  # ~70 % of the rows carry only 4 points
    assert all(complete[i]["visible"].all() for i in range(0, len(complete), 50))


def test_real_kaggle_test_images():
    root = shared_data("facial_kaggle_format")
    image_ids, images = read_test_images(root)
    assert len(image_ids) == 437 and images.shape == (437, 96, 96)


# ---------------------------------------------------------------- facial68


def face_image(seed: int, channels: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (60 + seed, 50, channels), dtype=np.uint8)


@pytest.fixture
def faces68(tmp_path):
    """keypoints.csv for 3 people (PNG and RGBA bytes under .jpg names, as the original release) plus bad rows."""
    root = tmp_path / "facial68"
    (root / "images").mkdir(parents=True)
    names = ["Ann_Lee_00.jpg", "Ann_Lee_01.jpg", "Bob_10.jpg", "Bob_11.jpg", "Bob_12.jpg", "Cy_D_E_03.jpg"]
    rows = []
    for seed, name in enumerate(names):
        image = face_image(seed, 4 if seed % 2 else 3)
        (root / "images" / name).write_bytes(cv2.imencode(".png", image)[1].tobytes())
        rows.append([name, *np.random.default_rng(seed).uniform(0, 49, 136).round(1)])
    header = [""] + [str(i) for i in range(136)]
    bad = [["Gone_00.jpg", *rows[0][1:]], rows[1][:-1], [*rows[2][:-1], "x"]]
    with open(root / "keypoints.csv", "w", newline="") as file:
        csv.writer(file).writerows([header, *rows, *bad])
    return root


def test_facial68_split_by_person_and_read_by_content(faces68, caplog):
    with caplog.at_level(logging.WARNING, logger="kp.data.facial68"):
        splits = {
            s: Facial68(s, faces68, val_fraction=0.2, test_fraction=0.2, seed=1) for s in ("train", "val", "test")
        }
    people = {s: {person_of(f.name) for f in data.files} for s, data in splits.items()}
    assert sorted(set().union(*people.values())) == ["Ann_Lee", "Bob", "Cy_D_E"]
    assert all(people[a].isdisjoint(people[b]) for a, b in [("train", "val"), ("train", "test"), ("val", "test")])
    assert sum(len(d) for d in splits.values()) == 6

    data = next(d for d in splits.values() if any(f.name == "Ann_Lee_01.jpg" for f in d.files))
    index = [f.name for f in data.files].index("Ann_Lee_01.jpg")
    sample = data[index]  # RGBA PNG bytes named .jpg: decoded by content, alpha dropped, RGB order
    expected = face_image(1, 4)[:, :, [2, 1, 0]] / 255.0
    np.testing.assert_allclose(sample["image"].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(
        data.keypoints[index], np.random.default_rng(1).uniform(0, 49, 136).round(1).reshape(68, 2), atol=1e-4
    )

    csv_path = faces68 / "keypoints.csv"
    assert "left out 3 bad sample(s) or point(s)" in caplog.text
    assert f"{csv_path}:8: image {faces68 / 'images' / 'Gone_00.jpg'} is missing" in caplog.text
    assert f"{csv_path}:9: 136 columns, expected 137" in caplog.text
    assert f"{csv_path}:10: column 135 'x' is not a number" in caplog.text


def test_facial68_wrong_keypoint_count_and_corrupt_image(faces68):
    lines = (faces68 / "keypoints.csv").read_text().splitlines()
    (faces68 / "keypoints.csv").write_text("\n".join([",".join(lines[0].split(",")[:-2])] + lines[1:]))
    with pytest.raises(DataError, match="keypoints.csv:1: 134 coordinate columns, but .* 68 keypoints"):
        Facial68("train", faces68)

    (faces68 / "keypoints.csv").write_text("\n".join(lines))
    good = cv2.imencode(".jpg", face_image(0, 3))[1].tobytes()
    (faces68 / "images" / "Bob_10.jpg").write_bytes(good[: len(good) // 2])  # cut off mid-file
    data = Facial68("train", faces68, val_fraction=0.0, test_fraction=0.0)
    index = [f.name for f in data.files].index("Bob_10.jpg")
    with pytest.raises(DataError, match=r"Bob_10.jpg: corrupt or unsupported image"):
        data[index]


def test_facial68_face_crops_without_a_detected_face(faces68, caplog):
    """Noise has no face: training photos are cut around the box their landmarks imply, held-out photos around the
    box of a face filling the photo as usual (no label steers them); both counted in the log."""
    with caplog.at_level(logging.WARNING, logger="kp.data.facial68"):
        train = Facial68("train", faces68, val_fraction=0.0, test_fraction=0.0, crop="face")
        test = Facial68("test", faces68, val_fraction=0.0, test_fraction=1.0, crop="face")
    assert train.face_crop == test.face_crop == facial68.FACE_FRAMING
    assert "found no face holding the landmarks in 6 of 6 photos: cropped around their landmarks' box" in caplog.text
    assert "6 of 6 photos: cropped around the box of a face filling the photo as usual" in caplog.text

    points = train.keypoints[0]
    x0, y0, side, _ = train.boxes[0]
    # the stand-in crop is centred on the landmarks, and sized from their span as a Haar box would be
    centre = (points.min(0) + points.max(0)) / 2
    np.testing.assert_allclose((x0 + side / 2, y0 + side / 2), centre, atol=1.0)
    span = (points.max(0) - points.min(0)).max()
    assert side == pytest.approx(span / facial68.LANDMARKS_IN_BOX[0] * facial68.FACE_FRAMING[0], abs=1.0)
    sample = train.load(0)
    assert sample.image.shape[:2] == (side, side)
    np.testing.assert_allclose(sample.keypoints, points - (x0, y0), atol=1e-4)  # a crop: a shift, no scaling
    np.testing.assert_allclose(apply(sample.affine, points), sample.keypoints, atol=1e-4)

    height, width = face_image(0, 3).shape[:2]  # Ann_Lee_00: 60×50
    photo_box = face_crop_box(((width - 1) / 2 - 12.5, (height - 1) / 2 - 12.5, 25, 25), *facial68.FACE_FRAMING)
    assert test.boxes[[f.name for f in test.files].index("Ann_Lee_00.jpg")] == photo_box
    with pytest.raises(ValueError, match="crop must be one of"):
        Facial68("train", faces68, crop="faces")
    # through the datamodule (train.py, evaluate): a data error, which the commands print as one line
    cfg = compose_config("data=facial68", f"data.dataset.root={faces68}", "data.dataset.crop=faces")
    with pytest.raises(DataError, match=r"^data.dataset: crop must be one of \('photo', 'face'\), got 'faces'$"):
        instantiate(cfg.data).setup()


def test_real_facial68_face_crops_hold_the_face():
    """The facial68 preset on the real test split: the detector finds most faces, and after the preset's own test
    transforms (what is scored) the landmarks are still in the frame, filling it as FACE_FRAMING intends."""
    cfg = compose_config("experiment=facial68", f"data.dataset.root={shared_data('facial68')}", "data.num_workers=0")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    test = datamodule.splits["test"]
    assert test.face_crop == facial68.FACE_FRAMING
    visible, spans = [], []
    for i in range(len(test)):
        sample = test[i]
        visible.append(sample["visible"].numpy())
        points = sample["keypoints"][sample["visible"]].numpy()
        spans.append((points.max(0) - points.min(0)).max() / sample["image"].shape[-1])
    visible = np.array(visible)
    assert visible.mean() > 0.998 and visible.all(1).mean() > 0.97  # few landmarks left unscored
    assert 0.55 < np.median(spans) < 0.7  # the landmarks span 0.88 of 1.4 box widths


def test_real_facial68_seed_transforms_and_person_split():
    root = shared_data("facial68")
    cfg = compose_config("data=facial68", f"data.dataset.root={root}", "data.num_workers=0", "data.batch_size=4")
    datamodule = instantiate(cfg.data)
    assert datamodule.input_shape == (1, 224, 224)  # the seed: rescale 250, crop 224, grey
    people = {split: {person_of(f.name) for f in data.files} for split, data in datamodule.splits.items()}
    assert not people["train"] & people["val"] and not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    total = sum(len(d) for d in datamodule.splits.values())
    assert total == 2622 and abs(len(datamodule.splits["val"]) / total - 0.1) < 0.02
    val = datamodule.splits["val"]
    for i in range(0, len(val), 40):
        sample = val[i]  # val: no flip, so the person's left eye (42-47) is on the image's right of 36-41
        assert sample["image"].shape == (1, 224, 224) and 0 <= sample["image"].min() <= sample["image"].max() <= 1
        points = sample["keypoints"]
        assert points[42:48, 0].mean() > points[36:42, 0].mean()
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (4, 1, 224, 224)
