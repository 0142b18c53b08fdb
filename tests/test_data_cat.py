"""The CAT dataset loader (data=cat) on CAT-layout fixtures built here from real face photos of ../shared/data/facial68
(or from the synthetic faces where that folder is absent), and the cat seed's heatmap style."""

from __future__ import annotations

import csv
import logging

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from kp.codecs.heatmap import HeatmapCodec
from kp.data.cat import ALL_NAMES, FOLDERS, CatHeads, seed_crop
from kp.data.datamodule import KeypointDataModule
from kp.data.synthetic import SyntheticKeypoints
from kp.data.transforms import KeypointAugment, Resize
from kp.errors import DataError
from tests.helpers import SHARED_DATA, compose_config

PER_FOLDER = [3, 2, 1, 1, 1, 1, 1]  # 10 images over CAT_00 … CAT_06


def face_photos(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, 9×2 CAT-style keypoints): eyes and mouth of real faces, 'ears' at the brows and jaw ends."""
    labels = SHARED_DATA / "facial68" / "keypoints.csv"
    if not labels.exists():  # a fresh clone: the synthetic faces stand in
        data = SyntheticKeypoints("train", image_size=96, occlusion_prob=0.0)
        photos = []
        for i in range(n):
            raw = data.load(i)
            eyes_mouth = np.stack([raw.keypoints[0], raw.keypoints[1], raw.keypoints[3:5].mean(0)])
            photos.append((raw.image, np.concatenate([eyes_mouth, eyes_mouth[[0] * 3 + [1] * 3] - [0, 20]])))
        return photos
    with open(labels) as file:
        rows = list(csv.reader(file))[1 : n + 1]
    photos = []
    for row in rows:
        image = cv2.cvtColor(cv2.imread(str(labels.parent / "images" / row[0])), cv2.COLOR_BGR2RGB)
        points = np.array(row[1:], np.float32).reshape(68, 2)
        cat = [
            points[42:48].mean(0),
            points[36:42].mean(0),
            points[48:68].mean(0),
            points[16],
            points[26],
            points[24],
            points[0],
            points[17],
            points[19],
        ]
        photos.append((image, np.stack(cat)))
    return photos


def write_cat(path, image: np.ndarray, keypoints: np.ndarray) -> None:
    """X.jpg beside X.jpg.cat, as the release: `9 x1 y1 … x9 y9 ` in whole pixels."""
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    values = " ".join(str(int(round(v))) for v in keypoints.reshape(-1))
    path.with_name(path.name + ".cat").write_text(f"9 {values} ")


@pytest.fixture
def cats(tmp_path):
    root = tmp_path / "cats"
    photos = iter(face_photos(sum(PER_FOLDER)))
    number = 0
    for folder, count in zip(FOLDERS, PER_FOLDER):
        (root / folder).mkdir(parents=True)
        for _ in range(count):
            number += 1
            write_cat(root / folder / f"{number:08d}_{number % 3:03d}.jpg", *next(photos))
    return root


def files_in_order(root) -> list[str]:
    return [p.name for folder in FOLDERS for p in sorted((root / folder).glob("*.jpg"))]


def test_cat_layout_split_in_file_order(cats):
    splits = {s: CatHeads(s, cats) for s in ("train", "val", "test")}
    assert [len(d) for d in splits.values()] == [6, 2, 2]
    names = [p.name for d in splits.values() for p in d.images]
    assert names == files_in_order(cats)  # 60/20/20 without shuffling: train is the first six files
    assert [p.parent.name for p in splits["train"].images] == ["CAT_00"] * 3 + ["CAT_01"] * 2 + ["CAT_02"]
    some = CatHeads("train", cats, folders=["CAT_01", "CAT_03"], fractions=[1, 0, 0])
    assert [p.parent.name for p in some.images] == ["CAT_01", "CAT_01", "CAT_03"]


def test_cat_keypoint_selection(cats):
    data = CatHeads("train", cats, keypoints=["right_ear_2", "mouth", "left_ear_2"], preprocess="none")
    first = data.images[0]
    label = np.array(first.with_name(first.name + ".cat").read_text().split()[1:], np.float32).reshape(9, 2)
    np.testing.assert_array_equal(data.load(0).keypoints, label[[7, 2, 4]])
    assert data.meta.names == ["right_ear_2", "mouth", "left_ear_2"]
    assert data.meta.flip_pairs == [(2, 0)] and data.meta.norm_pair is None
    default = CatHeads("train", cats)
    assert default.meta.names == ["left_eye", "right_eye", "mouth"] and default.meta.flip_pairs == [(0, 1)]
    assert default.meta.norm_pair == (0, 1) and (0, 2) in default.meta.skeleton
    with pytest.raises(ValueError, match=r"unknown CAT keypoints \['tail'\]: choose among .*right_ear_3"):
        CatHeads("train", cats, keypoints=["left_eye", "tail"])


def test_cat_seed_preprocessing_keeps_keypoints_on_their_dots(tmp_path):
    """One dot per channel at the eyes and the mouth of a 300×200 photo; after the seed's resize to 128×128, crop
    around the keypoints + 20 px and resize to 64×64, each keypoint must sit on its dot."""
    keypoints = np.array([[190.0, 60.0], [110.0, 75.0], [150.0, 140.0]], np.float32)
    ys, xs = np.mgrid[0:200, 0:300]
    image = np.stack([np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 5.0**2)) for x, y in keypoints], -1)
    root = tmp_path / "cats"
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True)
    nine = np.concatenate([keypoints, np.tile(keypoints[:1], (6, 1))])
    write_cat(root / "CAT_00" / "00000001_000.jpg", np.round(255 * image).astype(np.uint8), nine)
    data = CatHeads("train", root, fractions=[1, 0, 0], transform=KeypointAugment([Resize(height=64, width=64)]))
    sample = data[0]
    assert sample["image"].shape == (3, 64, 64) and sample["visible"].all()

    resized = (keypoints + 0.5) * [128 / 300, 128 / 200] - 0.5  # pixel centres, as cv2.resize
    box_min = np.clip(np.floor(resized.min(0)) - 20, 0, 127)
    box_max = np.clip(np.ceil(resized.max(0)) + 20, 0, 127)
    expected = (resized - box_min + 0.5) * 64 / (box_max - box_min + 1) - 0.5
    np.testing.assert_allclose(sample["keypoints"].numpy(), expected, atol=1e-3)
    picture = sample["image"].numpy()
    for k, (x, y) in enumerate(sample["keypoints"].numpy()):
        weight = np.clip(picture[k] - 0.3 * picture[k].max(), 0, None)
        centre = [
            (weight * np.arange(64)[None, :]).sum() / weight.sum(),
            (weight * np.arange(64)[:, None]).sum() / weight.sum(),
        ]
        assert np.hypot(centre[0] - x, centre[1] - y) < 1.0


def test_seed_crop_border_and_image_edge():
    image = np.zeros((256, 256, 3), np.uint8)
    cropped, moved, _ = seed_crop(image, np.array([[100.0, 100.0], [150.0, 120.0]]), resize=128, border=20)
    # In 128×128 the points are at 49.75/74.75 and 49.75/59.75: box 49..75 × 49..60, plus 20 each side.
    assert cropped.shape == (60 - 49 + 41, 75 - 49 + 41, 3)
    np.testing.assert_allclose(moved[0], [49.75 - 29, 49.75 - 29])
    cropped, moved, _ = seed_crop(image, np.array([[4.0, 250.0], [30.0, 240.0]]), resize=128, border=20)
    assert cropped.shape[0] == 128 - (119 - 20) and moved[0, 0] == pytest.approx(1.75)  # clipped at the edges


def test_cat_bad_files_are_skipped_counted_and_named(cats, caplog):
    folder = cats / "CAT_01"
    first, second = sorted(folder.glob("*.jpg"))
    (first.with_name(first.name + ".cat")).write_text("8 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 ")
    (second.with_name(second.name + ".cat")).write_text("9 1 2 3 4 five 6 7 8 9 10 11 12 13 14 15 16 17 18")
    (cats / "CAT_02" / "lonely.jpg.cat").write_text("9 " + "1 " * 18)
    (sorted((cats / "CAT_03").glob("*.jpg"))[0].with_suffix(".jpg.cat")).unlink()
    odd = sorted((cats / "CAT_04").glob("*.jpg"))[0]
    odd.with_name(odd.name + ".cat").write_text("9 " + "1 " * 17 + "inf")
    with caplog.at_level(logging.WARNING, logger="kp.data.cat"):
        data = CatHeads("train", cats, fractions=[1, 0, 0])
    assert len(data) == 6  # 10 images, 4 without a usable label
    assert "left out 5 bad sample(s) or point(s)" in caplog.text
    assert f"{first}.cat:1: declares 8 keypoints, the CAT format has 9" in caplog.text
    assert f"{second}.cat:1: coordinate 'five' is not a number" in caplog.text
    assert f"{cats / 'CAT_02' / 'lonely.jpg.cat'}: image lonely.jpg not found" in caplog.text
    assert "no label file" in caplog.text and "'inf' is not finite" in caplog.text


def test_cat_missing_folder_corrupt_image_and_empty_split(cats):
    (cats / "CAT_06" / sorted(p.name for p in (cats / "CAT_06").iterdir())[0]).unlink()
    (cats / "CAT_06").rename(cats / "cat_06")
    with pytest.raises(DataError, match=r"folders \['CAT_06'\] not found"):
        CatHeads("train", cats)

    data = CatHeads("train", cats, folders=FOLDERS[:6], fractions=[1, 0, 0])
    data.images[0].write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=rf"{data.images[0].name}: corrupt or unsupported image"):
        data[0]

    # two images: 60/20/20 gives one to train, one to val, none to test
    datamodule = KeypointDataModule(
        lambda split, transform, max_pixels: CatHeads(split, cats, folders=["CAT_02", "CAT_03"])
    )
    with pytest.raises(ValueError, match="cats: the test split is empty"):
        datamodule.setup()


def test_cat_config_trains_shapes(cats):
    cfg = compose_config(
        "data=cat",
        f"data.dataset.root={cats}",
        "data.num_workers=0",
        "data.batch_size=4",
        "data.dataset.keypoints=[left_eye,right_eye,mouth,left_ear_1,right_ear_1]",
    )
    datamodule = instantiate(cfg.data)
    assert datamodule.input_shape == (3, 64, 64) and datamodule.meta.num_keypoints == 5
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["keypoints"].shape == (4, 5, 2)
    sample = datamodule.splits["val"][0]  # val: no flip, so the left eye (the face's left) is on the image's right
    assert sample["keypoints"][0, 0] > sample["keypoints"][1, 0]


def test_blurred_disc_heatmap_is_the_seed_drawing():
    """Each map is cv2.circle(radius 2, thickness 2) at the nearest pixel then a 5×5 Gaussian blur, as the cat seed."""
    codec = HeatmapCodec((64, 64), stride=1, style="blurred_disc")
    keypoints = torch.tensor([[[20.3, 30.6], [40.0, 12.0], [0.0, 0.0]]])
    target = codec.encode(keypoints, torch.tensor([[True, True, False]]))
    for k, (x, y) in enumerate([(20, 31), (40, 12)]):
        drawn = np.zeros((64, 64), np.float32)
        cv2.circle(drawn, (x, y), 2, 1.0, 2)
        np.testing.assert_allclose(target["keypoints"][0, k].numpy(), cv2.GaussianBlur(drawn, (5, 5), 0), atol=1e-6)
    assert target["keypoints"][0, 2].abs().sum() == 0 and target["keypoint_weights"].tolist() == [[1.0, 1.0, 0.0]]
    decoded, _ = HeatmapCodec((64, 64), stride=1, style="blurred_disc", decoder="argmax").decode(target)
    assert decoded[0, :2].tolist() == [[20.0, 31.0], [40.0, 12.0]]
    with pytest.raises(ValueError, match="style"):
        HeatmapCodec((64, 64), style="square")
    assert ALL_NAMES[:3] == ["left_eye", "right_eye", "mouth"]
