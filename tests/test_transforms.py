"""Augmentation moves image and keypoints together: each keypoint gets its own dot (one image channel per keypoint),
and after every transform, and their composition, each visible keypoint must still sit on its dot."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from kp import geometry
from kp.config import CONF_DIR
from kp.data import transforms as T
from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from tests.helpers import compose_config

HEIGHT, WIDTH = 48, 64  # not square: a swapped x/y shows
META = KeypointMeta(
    names=["left_eye", "right_eye", "left_ear", "right_ear", "nose", "chin"], flip_pairs=[(0, 1), (2, 3)]
)
SIGMA = 1.5


def dot_image(keypoints: np.ndarray) -> np.ndarray:
    """Channel k holds a Gaussian dot at keypoint k."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    dots = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * SIGMA**2)) for x, y in keypoints]
    return np.round(255 * np.stack(dots, -1)).astype(np.uint8)


def dot_centres(image: np.ndarray) -> np.ndarray:
    """The centroid of each channel's dot (background removed, whatever the brightness/contrast did)."""
    centres = []
    for layer in np.moveaxis(image.astype(np.float64), -1, 0):
        weight = np.clip(layer - np.median(layer), 0, None)
        weight[weight < 0.3 * weight.max()] = 0
        ys, xs = np.nonzero(weight)
        if len(xs) == 0:  # the dot was cropped away
            centres.append([np.nan, np.nan])
            continue
        centres.append([np.average(xs, weights=weight[ys, xs]), np.average(ys, weights=weight[ys, xs])])
    return np.array(centres)


class Dots(KeypointDataset):
    meta = META

    def __init__(self, keypoints: np.ndarray, transform):
        super().__init__(transform)
        self.keypoints = keypoints

    def __len__(self) -> int:
        return 1

    def load(self, index: int) -> RawSample:
        return RawSample(image=dot_image(self.keypoints), keypoints=self.keypoints, visible=np.ones(6, bool))


def random_keypoints(rng) -> np.ndarray:
    return np.stack([rng.uniform(10, WIDTH - 11, 6), rng.uniform(10, HEIGHT - 11, 6)], 1).astype(np.float32)


def check_on_dots(steps, swapped: bool, draws: int = 6, tolerance: float = 1.0) -> int:
    """Augment dot images; every visible keypoint far enough from the border for its dot to be whole must lie within
    `tolerance` (1 px) of its dot: dot `order[k]` where a mirror swapped left and right, and be where the sample's
    affine takes its original position. Returns how many were checked."""
    order = META.flip_permutation() if swapped else list(range(6))
    rng = np.random.default_rng(0)
    checked = 0
    for draw in range(draws):
        torch.manual_seed(draw)  # KeypointAugment draws its random state from torch's seed
        original = random_keypoints(rng)
        sample = Dots(original, T.KeypointAugment(steps))[0]
        mapped = geometry.apply(sample["affine"].double().numpy(), original[order])
        image = (sample["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        height, width = image.shape[:2]
        centres = dot_centres(image)
        for k in range(6):
            x, y = sample["keypoints"][k].tolist()
            inside = -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5
            if not sample["visible"][k]:
                assert (x, y) == (0.0, 0.0)
                continue
            assert inside
            np.testing.assert_allclose(mapped[k], [x, y], atol=1e-3)
            if 4 * SIGMA <= x <= width - 1 - 4 * SIGMA and 4 * SIGMA <= y <= height - 1 - 4 * SIGMA:
                assert np.hypot(*(centres[order[k]] - [x, y])) < tolerance, (type(steps), k, (x, y), centres[order[k]])
                checked += 1
    return checked


@pytest.mark.parametrize(
    "step, swapped",
    [
        (A.HorizontalFlip(p=1), True),
        (A.VerticalFlip(p=1), True),  # a mirror too: the person's left eye becomes the picture of a right eye
        (A.Affine(rotate=(-30, 30), scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), p=1), False),
        (A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=1), False),
        (A.GaussianBlur(blur_limit=(3, 7), p=1), False),
        (T.CropAndPad(percent=(-0.2, 0.0), keep_size=True, p=1), False),
        (T.RandomResizedCrop(size=(40, 56), scale=(0.5, 1.0), p=1), False),
        (T.Resize(height=96, width=80), False),
        (T.SmallestMaxSize(max_size=30), False),
        (A.RandomCrop(height=40, width=40), False),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, bool) else "",
)
def test_each_transform_keeps_keypoints_on_their_dots(step, swapped):
    assert check_on_dots([step], swapped) >= 20


def test_resizing_is_exact_about_pixel_centres():
    """albumentations' own Resize lands half a pixel off at 2× (it scales about pixel corners); ours does not."""
    assert check_on_dots([T.Resize(height=2 * HEIGHT, width=2 * WIDTH)], swapped=False, tolerance=0.2) >= 20
    crop = T.CropAndPad(percent=(-0.3, -0.1), keep_size=True, p=1)
    assert check_on_dots([crop], swapped=False, draws=8, tolerance=0.3) >= 20


def test_composition_keeps_keypoints_on_their_dots():
    """The augment group as configured, every step forced on, after a resize (as the data configs splice it)."""
    group = OmegaConf.load(CONF_DIR / "augment" / "default.yaml")
    for step in group.values():
        step.p = 1.0
    steps = [T.Resize(height=40, width=50), instantiate(group)]
    assert check_on_dots(steps, swapped=True) >= 15
    # Two mirrors make a half turn: the person's left eye is still the left eye.
    assert check_on_dots([A.HorizontalFlip(p=1), A.Affine(rotate=10, p=1), A.VerticalFlip(p=1)], swapped=False) >= 15


def test_keypoints_leaving_the_frame_become_invisible_not_clipped():
    keypoints = np.array([[5, 10], [40, 10], [60, 20], [30, 30], [10, 40], [50, 5]], np.float32)
    shift = T.KeypointAugment([A.Affine(translate_px={"x": 20, "y": 0}, p=1)])
    image, moved, visible, affine = shift(dot_image(keypoints), keypoints, np.ones(6, bool), META)
    np.testing.assert_allclose(moved[:, 0], keypoints[:, 0] + 20, atol=1e-4)  # 60 -> 80: outside, kept as is
    np.testing.assert_allclose(affine, [[1, 0, 20], [0, 1, 0]], atol=1e-4)
    sample = Dots(keypoints, shift)[0]
    assert sample["visible"].tolist() == [True, True, False, True, True, False]
    assert sample["keypoints"][2].tolist() == [0.0, 0.0]


def test_missing_keypoints_stay_invisible_and_swap_with_their_pair():
    keypoints = np.array([[5, 10], [np.nan, np.nan], [20, 20], [30, 30], [10, 40], [50, 5]], np.float32)
    visible = np.array([True, False, True, True, True, True])
    flip = T.KeypointAugment([A.HorizontalFlip(p=1)])
    _, flipped, flipped_visible, affine = flip(dot_image(np.nan_to_num(keypoints)), keypoints, visible, META)
    np.testing.assert_allclose(affine, [[-1, 0, WIDTH - 1], [0, 1, 0]], atol=1e-4)
    assert flipped_visible.tolist() == [False, True, True, True, True, True]  # the missing right eye is now index 0
    np.testing.assert_allclose(flipped[1], [WIDTH - 1 - 5, 10])  # the old left eye, mirrored, is now the right eye
    assert np.isfinite(flipped).all()


def test_corner_scaling_albumentations_steps_are_refused():
    with pytest.raises(ValueError, match="kp.data.transforms.Resize"):
        T.KeypointAugment([A.Resize(32, 32)])
    with pytest.raises(ValueError, match="pixel corners"):
        T.KeypointAugment([A.RandomSizedCrop(min_max_height=(10, 20), size=(16, 16))])


def test_nested_steps_are_flattened_in_order_and_none_dropped():
    augment = T.KeypointAugment(
        [A.HorizontalFlip(), {"blur": None, "colour": A.RandomBrightnessContrast()}, [A.GaussianBlur()]]
    )
    assert [type(s).__name__ for s in augment.steps] == ["HorizontalFlip", "RandomBrightnessContrast", "GaussianBlur"]


def test_random_state_follows_torch_seed():
    """Workers get different torch seeds (and new ones each epoch), so they draw different augmentations; the same
    seed gives the same augmentation (reproducible runs)."""
    keypoints = random_keypoints(np.random.default_rng(1))
    image = dot_image(keypoints)

    def augmented(seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        augment = T.KeypointAugment([A.Affine(rotate=(-30, 30), p=1)])
        return augment(image, keypoints, np.ones(6, bool), META)[1]

    np.testing.assert_array_equal(augmented(3), augmented(3))
    assert not np.allclose(augmented(3), augmented(4))


def test_augment_group_from_the_command_line():
    def steps(*overrides):
        cfg = compose_config("data=synthetic", *overrides)
        return [type(s).__name__ for s in instantiate(cfg.data.transforms.train).steps]

    assert steps() == []  # synthetic: no augmentation by default
    assert steps("augment=default") == [
        "HorizontalFlip",
        "Affine",
        "CropAndPad",
        "RandomBrightnessContrast",
        "GaussianBlur",
    ]
    assert steps("augment=default", "augment.blur=null", "augment.crop=null") == [
        "HorizontalFlip",
        "Affine",
        "RandomBrightnessContrast",
    ]


def test_augmented_synthetic_batches_train_shapes():
    """augment=default on the built-in data: the datamodule still yields equal-size batches with keypoints in frame."""
    cfg = compose_config(
        "data=synthetic", "augment=default", "data.dataset.sizes={train:8,val:4,test:4}", "data.batch_size=4"
    )
    datamodule = instantiate(cfg.data)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)
    points, visible = batch["keypoints"][batch["visible"]], batch["visible"]
    assert visible.any() and ((points >= -0.5) & (points <= 63.5)).all()


def test_restoring_torch_state_replays_the_augmentations_as_a_resume_does():
    keypoints = random_keypoints(np.random.default_rng(2))
    image = dot_image(keypoints)
    augment = T.KeypointAugment([A.Affine(rotate=(-30, 30), p=1)])
    torch.manual_seed(0)
    augment(image, keypoints, np.ones(6, bool), META)  # an earlier epoch
    state = torch.get_rng_state()  # what a checkpoint saves
    first, second = (augment(image, keypoints, np.ones(6, bool), META)[1] for _ in range(2))
    assert not np.allclose(first, second)  # every sample draws afresh
    torch.set_rng_state(state)
    np.testing.assert_array_equal(augment(image, keypoints, np.ones(6, bool), META)[1], first)


def test_steps_draw_independently_so_mirrored_images_get_the_same_geometry():
    """Each step's chance and parameters are independent of the others': a mirrored image is no more often rotated or
    zoomed than a plain one. (Seeding every step alike nested the steps: each mirrored image was also rotated and
    zoomed, so the model learnt to place keypoints about 2 px off on mirrored faces.)"""
    cfg = compose_config("data=synthetic", "augment=default")
    augment = instantiate(cfg.data.transforms.train)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    torch.manual_seed(0)
    mirrored, moved, zoom = [], [], []
    for _ in range(800):
        affine = augment(image, random_keypoints(np.random.default_rng(0)), np.ones(6, bool), META)[3]
        mirrored.append(affine[0, 0] < 0)
        if mirrored[-1]:  # the geometry besides the mirror: x -> W - 1 - x undone
            affine = np.array([[-1, 0, WIDTH - 1], [0, 1, 0]]) @ np.vstack([affine, [0, 0, 1]])
        moved.append(not np.allclose(affine, np.eye(2, 3), atol=1e-3))
        zoom.append(np.linalg.det(affine[:, :2]))
    mirrored, moved, zoom = np.array(mirrored), np.array(moved), np.array(zoom)
    assert 0.44 < mirrored.mean() < 0.56  # HorizontalFlip p=0.5
    # affine (p=0.7) or crop (p=0.3) moves 1 - 0.3 * 0.7 = 79 % of images, mirrored or not
    assert abs(moved[mirrored].mean() - 0.79) < 0.06 and abs(moved[~mirrored].mean() - 0.79) < 0.06
    assert abs(zoom[mirrored].mean() - zoom[~mirrored].mean()) < 0.02
