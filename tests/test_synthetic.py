import pytest
import torch

from kp.data.datamodule import KeypointDataModule
from kp.data.synthetic import SyntheticKeypoints

SIZES = {"train": 40, "val": 8, "test": 8}


def test_samples_are_reproducible_and_differ_across_seeds_and_splits():
    a, b = SyntheticKeypoints("train", SIZES), SyntheticKeypoints("train", SIZES)
    assert torch.equal(a[3]["image"], b[3]["image"]) and torch.equal(a[3]["keypoints"], b[3]["keypoints"])
    assert not torch.equal(a[3]["image"], SyntheticKeypoints("train", SIZES, seed=1)[3]["image"])
    assert not torch.equal(a[3]["image"], SyntheticKeypoints("val", SIZES)[3]["image"])


def test_sample_follows_the_data_contract():
    data = SyntheticKeypoints("train", SIZES, image_size=48, max_count=4)
    sample = data[0]
    assert sample["image"].shape == (3, 48, 48) and sample["image"].dtype == torch.float32
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    assert sample["keypoints"].shape == (5, 2) and sample["visible"].dtype == torch.bool
    counts = [data[i]["count"].item() * data.meta.count_scale for i in range(len(data))]
    assert all(abs(c - round(c)) < 1e-5 and 0 <= c <= 4 for c in counts)
    assert len(set(round(c) for c in counts)) > 2  # the count varies


def test_visible_eyes_sit_on_dark_pupils():
    data = SyntheticKeypoints("train", SIZES)
    checked = 0
    for i in range(len(data)):
        sample = data[i]
        for k in (0, 1):  # the eyes
            if sample["visible"][k]:
                x, y = sample["keypoints"][k].round().long().tolist()
                assert sample["image"][:, y, x].max() < 0.45, f"sample {i} eye {k} is not on a pupil"
                checked += 1
    assert checked > 40


def test_occluded_or_outside_keypoints_are_invisible_and_zeroed():
    data = SyntheticKeypoints("train", {"train": 200, "val": 1, "test": 1}, occlusion_prob=1.0)
    hidden = 0
    for i in range(len(data)):
        sample = data[i]
        invisible = ~sample["visible"]
        hidden += int(invisible.sum())
        assert torch.all(sample["keypoints"][invisible] == 0)
    assert hidden > 20


def test_left_keypoints_appear_on_the_right_of_an_upright_face():
    data = SyntheticKeypoints("train", SIZES, max_rotation=0.0)
    keypoints = data[0]["keypoints"]
    assert keypoints[0, 0] > keypoints[1, 0]  # left eye right of the right eye, in the image
    assert data.meta.flip_permutation() == [1, 0, 2, 4, 3]


def test_datamodule_batches_and_reports_shapes():
    dm = KeypointDataModule(
        lambda split, transform, max_pixels: SyntheticKeypoints(split, SIZES, transform=transform), batch_size=16
    )
    assert dm.input_shape == (3, 64, 64) and dm.meta.num_keypoints == 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (16, 3, 64, 64) and batch["count"].shape == (16,)
    assert len(dm.val_dataloader().dataset) == 8


def test_datamodule_rejects_an_empty_split():
    dm = KeypointDataModule(lambda split, transform, max_pixels: SyntheticKeypoints(split, {**SIZES, "val": 0}))
    with pytest.raises(ValueError, match="SyntheticKeypoints: the val split is empty"):
        dm.setup()
