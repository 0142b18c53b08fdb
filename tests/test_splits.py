"""Honest splits without ids: split_by=similarity keeps look-alike images (near-identical frames, re-encoded copies) on
one side of the split, for the Kaggle layout and DeepLabCut projects of one video folder, and the log says how many
groups it formed."""

from __future__ import annotations

import csv
import logging

import cv2
import numpy as np
import pytest
import yaml

from kp.data import facial
from kp.data.dlc import DeepLabCutProject
from kp.data.facial import FacialKeypoints
from kp.data.splits import difference_hash, similarity_groups, split_groups

SPLITS = ("train", "val", "test")


def scenes(count: int, size=(48, 64), seed: int = 0) -> list[np.ndarray]:
    """`count` unrelated grey scenes: smooth random blobs (a difference hash needs structure, not pixel noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 6, 8)).astype(np.uint8)
    return [cv2.resize(s, size[::-1], interpolation=cv2.INTER_CUBIC) for s in small]


def near_copies(image: np.ndarray, copies: int, seed: int) -> list[np.ndarray]:
    """The image a few milliseconds later: a little sensor noise and brightness drift."""
    rng = np.random.default_rng(seed)
    noisy = [image.astype(np.int16) + rng.integers(-3, 4, image.shape) + rng.integers(-4, 5) for _ in range(copies)]
    return [image, *(np.clip(n, 0, 255).astype(np.uint8) for n in noisy)]


def bursts(count: int = 8, copies: int = 3) -> tuple[list[np.ndarray], list[int]]:
    """Images of `count` scenes, each with `copies` near-copies, shuffled; and each image's scene."""
    images, scene = [], []
    for k, image in enumerate(scenes(count)):
        burst = near_copies(image, copies, seed=k)
        images += burst
        scene += [k] * len(burst)
    order = np.random.default_rng(1).permutation(len(images))
    return [images[i] for i in order], [scene[i] for i in order]


def test_near_copies_hash_alike_and_other_scenes_do_not():
    images, scene = bursts()
    hashes = np.array([difference_hash(image) for image in images], np.uint64)
    bits = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    same = np.equal.outer(scene, scene)
    assert bits[same].max() <= 4 < bits[~same].min()
    assert difference_hash(images[0]) == difference_hash(cv2.cvtColor(images[0], cv2.COLOR_GRAY2RGB))


def test_look_alikes_form_one_group_each_and_no_group_spans_two_splits():
    images, scene = bursts(count=10)
    groups = similarity_groups(images)
    assert len(set(groups)) == 10
    assert all((groups[i] == groups[j]) == (scene[i] == scene[j]) for i in range(len(images)) for j in range(i))
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    side = {}
    for split in SPLITS:
        for i in split_groups(groups, split, fractions, seed=3, what="bursts", fractions_of="samples"):
            side[i] = split
    assert len(side) == len(images)
    for k in range(10):
        assert len({side[i] for i in range(len(images)) if scene[i] == k}) == 1, f"scene {k} spans two splits"


def test_look_alikes_chain_into_one_group():
    """A slow drift: each frame near its neighbour, the ends far apart; one group, or a frame's neighbour leaks."""
    start, end = scenes(2, seed=5)
    steps = [np.round(start + (end.astype(float) - start) * t).astype(np.uint8) for t in np.linspace(0, 1, 80)]
    hashes = np.array([difference_hash(image) for image in steps], np.uint64)
    assert np.bitwise_count(hashes[0] ^ hashes[-1]) > 4
    assert all(np.bitwise_count(a ^ b) <= 4 for a, b in zip(hashes, hashes[1:]))
    assert len(set(similarity_groups(steps))) == 1


def write_one_video_project(root, images: list[np.ndarray]):
    """A DeepLabCut project whose frames all sit in one video folder."""
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump({"Task": "t", "scorer": "Ann", "bodyparts": ["nose"]}))
    folder = root / "labeled-data" / "session1"
    folder.mkdir(parents=True)
    rows = [["scorer", "Ann", "Ann"], ["bodyparts", "nose", "nose"], ["coords", "x", "y"]]
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), image)
        rows.append([f"labeled-data/session1/img{i:03d}.png", "20", "10"])
    with open(folder / "CollectedData_Ann.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def test_a_deeplabcut_project_of_one_video_splits_by_look_alikes(tmp_path, caplog):
    images, scene = bursts(count=10)
    project = write_one_video_project(tmp_path / "project", images)
    with caplog.at_level(logging.INFO, logger="kp.data.dlc"):
        splits = {s: DeepLabCutProject(s, str(project), width=32, height=24, split_by="auto") for s in SPLITS}
    assert "split by similarity: 10 group(s) of 40 frames (1 video(s), too few for one in every split)" in (caplog.text)
    scene_of = {f"img{i:03d}.png": k for i, k in enumerate(scene)}
    scenes_in = {s: {scene_of[frame.image.name] for frame in data.frames} for s, data in splits.items()}
    assert sum(len(data) for data in splits.values()) == 40
    assert not (scenes_in["train"] & scenes_in["val"] or scenes_in["train"] & scenes_in["test"])
    assert not scenes_in["val"] & scenes_in["test"]
    assert all(scenes_in[s] for s in SPLITS)


@pytest.fixture
def kaggle_bursts(tmp_path):
    """training.csv in the Kaggle layout: 12 people of 3 near-identical 96×96 frames each."""
    images, scene = bursts(count=12, copies=2)
    columns = [f"{name}_{axis}" for name in facial.NAMES for axis in "xy"]
    root = tmp_path / "kaggle"
    root.mkdir()
    with open(root / "training.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*columns, "Image"])
        for image in images:
            big = cv2.resize(image, (96, 96), interpolation=cv2.INTER_LINEAR)
            writer.writerow([*["48"] * 30, " ".join(map(str, big.ravel()))])
    return root, scene


@pytest.mark.parametrize("split_by, leaks", [("similarity", False), ("row", True)])
def test_the_kaggle_layout_keeps_look_alikes_on_one_side(kaggle_bursts, tmp_path, caplog, split_by, leaks):
    root, scene = kaggle_bursts
    with caplog.at_level(logging.INFO, logger="kp.data.facial"):
        train, val = (
            FacialKeypoints(s, root, val_fraction=0.25, seed=2, split_by=split_by, cache_dir=tmp_path / "c")
            for s in ("train", "val")
        )
    groups = 12 if split_by == "similarity" else 36
    assert f"training.csv: split by {split_by}: {groups} group(s) of 36 images" in caplog.text
    assert len(train) + len(val) == 36 and len(val) >= 9
    shared = {scene[r] for r in train.rows} & {scene[r] for r in val.rows}
    assert bool(shared) == leaks
