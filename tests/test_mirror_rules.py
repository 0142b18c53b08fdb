"""Mirror augmentation and flip test run only with known left/right pairs: listed, guessed from the names in the
forms real projects use, or declared empty. Unknown pairs switch both off with one log line that says how to declare
them; the dlc preset lets the data decide."""

from __future__ import annotations

import csv
import json
import logging

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
import yaml

from kp.build import build
from kp.data.base import KeypointDataset, KeypointMeta, RawSample
from kp.data.datamodule import KeypointDataModule
from kp.data.dlc import DeepLabCutProject
from kp.data.keypoint_pairs import flip_pairs_from_names, guess_flip_pairs, mirror_note
from kp.data.transforms import KeypointAugment
from kp.train.loop import train
from tests.helpers import compose_config, random_weights, shared_data

# lightning-pose's mirror-mouse body parts: numbered paws whose side is LH/LF/RF/RH inside the name, two views.
MOUSE = [
    *("paw1LH_top", "paw2LF_top", "paw3RF_top", "paw4RH_top", "tailBase_top", "tailMid_top", "nose_top", "obs_top"),
    *("paw1LH_bot", "paw2LF_bot", "paw3RF_bot", "paw4RH_bot", "tailBase_bot", "tailMid_bot", "nose_bot"),
    *("obsHigh_bot", "obsLow_bot"),
]
MOUSE_PAIRS = [
    ("paw1LH_top", "paw4RH_top"),
    ("paw2LF_top", "paw3RF_top"),
    ("paw1LH_bot", "paw4RH_bot"),
    ("paw2LF_bot", "paw3RF_bot"),
]


def named(names, pairs):
    return sorted(tuple(sorted((names[i], names[j]))) for i, j in pairs)


@pytest.mark.parametrize(
    "names, pairs",
    [
        (MOUSE, MOUSE_PAIRS),
        (["leftear", "rightear", "nose", "tailbase"], [("leftear", "rightear")]),  # DeepLabCut's own examples
        (
            ["Left_Eye", "right_eye", "LHip", "RHip", "paw_l1", "paw_r1"],
            [("Left_Eye", "right_eye"), ("LHip", "RHip"), ("paw_l1", "paw_r1")],
        ),
        (
            ["left_front_paw", "right_front_paw", "LF_paw", "RF_paw"],
            [("LF_paw", "RF_paw"), ("left_front_paw", "right_front_paw")],
        ),
        (["snoutL", "snoutR", "EarL", "EarR", "tailBase"], [("EarL", "EarR"), ("snoutL", "snoutR")]),
    ],
)
def test_pairs_are_guessed_from_names_in_the_wild(names, pairs):
    guessed = flip_pairs_from_names(names)
    assert named(names, guessed) == sorted(tuple(sorted(pair)) for pair in pairs)


@pytest.mark.parametrize(
    "names, alone",
    [
        (["Hand", "Finger1", "Tongue", "Joystick1", "Joystick2"], []),  # DeepLabCut's reaching demo: no side at all
        (["leftear", "nose", "rightEye"], ["leftear", "rightEye"]),  # sides without partners
        (["paw1LH", "paw2LH", "paw4RH"], ["paw1LH", "paw2LH", "paw4RH"]),  # two left hind paws: no unique partner
        (["left_eye", "right_eye", "tailL"], ["tailL"]),  # one point left alone keeps mirroring off for all
    ],
)
def test_names_without_a_sure_partner_leave_the_pairs_unknown(names, alone):
    assert flip_pairs_from_names(names) is None
    assert guess_flip_pairs(names)[1] == alone


def test_the_real_mirror_mouse_pairs_are_guessed_and_lie_on_opposite_sides_of_the_body():
    """On lightning-pose's labels: the guess pairs LH with RH and LF with RF, and in the view from below the left
    paws lie on one side of the tail-to-nose line in nearly every frame, the right ones mostly on the other."""
    folder = shared_data("mirror_mouse")
    data = DeepLabCutProject(
        "train",
        str(folder),
        csv_file="CollectedData.csv",
        split_by="frame",
        fractions={"train": 1, "val": 0, "test": 0},
    )
    names = data.meta.names
    assert names == MOUSE and named(names, data.meta.flip_pairs) == sorted(MOUSE_PAIRS)
    points = np.stack([np.where(f.labelled[:, None], f.keypoints, np.nan) for f in data.frames])
    tail, nose = points[:, names.index("tailBase_bot")], points[:, names.index("nose_bot")]
    axis = nose - tail
    for paw, side in (("paw1LH_bot", -1), ("paw2LF_bot", -1), ("paw3RF_bot", 1), ("paw4RH_bot", 1)):
        offset = points[:, names.index(paw)] - tail
        cross = axis[:, 0] * offset[:, 1] - axis[:, 1] * offset[:, 0]
        cross = cross[np.isfinite(cross)]
        assert np.mean(np.sign(cross) == side) > 0.6, paw


def test_the_log_line_names_the_pairs_or_says_how_to_declare_them():
    assert mirror_note(["leftear", "rightear"], [(0, 1)]) == (
        "flip pairs guessed from the names: leftear<->rightear (mirror augmentation and flip test swap them; "
        "data.dataset.flip_pairs sets them)"
    )
    assert mirror_note(["leftear", "rightear"], [(1, 0)]).startswith("flip pairs as listed: rightear<->leftear")
    assert "none needed" in mirror_note(["Hand"], [])
    off = mirror_note(["leftear", "nose"], None)
    assert "mirror augmentation and flip test are OFF" in off and "no partner for leftear" in off
    assert "data.dataset.flip_pairs=[[left_x, right_x], ...], or data.dataset.flip_pairs=[]" in off


class Dots(KeypointDataset):
    """One 32×32 image, a dot at x = 8 for keypoint 0 and x = 24 for keypoint 1."""

    def __init__(self, meta: KeypointMeta, transform=None):
        super().__init__(transform)
        self.meta = meta

    def __len__(self) -> int:
        return 4

    def load(self, index: int) -> RawSample:
        image = np.zeros((32, 32, 3), np.uint8)
        image[16, 8] = image[16, 24] = 255
        return RawSample(image=image, keypoints=np.array([[8.0, 16.0], [24.0, 16.0]]), visible=np.ones(2, bool))


@pytest.mark.parametrize("pairs, mirrored", [(None, False), ([], True), ([(0, 1)], True)])
def test_unknown_pairs_switch_mirroring_and_flip_test_off(pairs, mirrored, caplog):
    meta = KeypointMeta(names=["a", "b"], flip_pairs=pairs)
    always_mirror = {split: KeypointAugment([A.HorizontalFlip(p=1)]) for split in ("train", "val", "test")}
    datamodule = KeypointDataModule(
        lambda split, transform, max_pixels: Dots(meta, transform), transforms=always_mirror
    )
    with caplog.at_level(logging.INFO):
        datamodule.setup()
    assert ("flip test are OFF" in caplog.text) == (not mirrored)
    sample = datamodule.splits["train"][0]
    was_mirrored = sample["affine"][0, 0].item() < 0
    assert was_mirrored == mirrored
    # with the pairs swapped, keypoint 0 is on the mirrored dot of keypoint 1 (x = 31 - 24 = 7)
    assert sample["keypoints"][0, 0].item() == (7.0 if pairs else 23.0 if mirrored else 8.0)
    from kp.module import KeypointModule

    module = KeypointModule(torch.nn.Identity(), None, {}, meta, (32, 32), None, flip_test=True)
    assert module.flip_test == (pairs is not None)


def write_ears_project(root, frames=8, size=(64, 48)):
    """A DeepLabCut project of one video folder: leftear at the image's left, rightear at its right, nose between."""
    parts = ["leftear", "rightear", "nose"]
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump({"Task": "ears", "scorer": "Ann", "bodyparts": parts}))
    folder = root / "labeled-data" / "video1"
    folder.mkdir(parents=True)
    rows = [["scorer"] + ["Ann"] * 6, ["bodyparts"] + [p for p in parts for _ in "xy"], ["coords"] + ["x", "y"] * 3]
    for frame in range(frames):
        points = [(12 + frame, 20), (50 - frame, 20), (31, 30)]
        image = np.zeros((size[1], size[0], 3), np.uint8)
        for x, y in points:
            cv2.circle(image, (x, y), 2, (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"img{frame:02d}.png"), image)
        rows.append([f"labeled-data/video1/img{frame:02d}.png"] + [str(v) for point in points for v in point])
    with open(folder / "CollectedData_Ann.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def test_a_deeplabcut_project_with_leftear_and_rightear_trains_with_swapped_pairs_under_the_dlc_preset(
    tmp_path, caplog
):
    project = write_ears_project(tmp_path / "project")
    cfg = random_weights(
        compose_config(
            "experiment=dlc",
            f"data.dataset.project={project}",
            "data.dataset.width=64",
            "data.dataset.height=48",
            "data.dataset.split_by=frame",
            "augment=none",  # only the mirror, always
            "+augment.hflip={_target_:albumentations.HorizontalFlip,p:1.0}",
            "metrics.flip=true",
            "debug=fast_dev_run",
            "callbacks.progress_bar=null",
            "callbacks.model_summary=null",
            output_dir=tmp_path / "run",
        )
    )
    with caplog.at_level(logging.INFO):
        datamodule, module = build(cfg)
    assert datamodule.meta.flip_pairs == [(0, 1)] and module.flip_test
    assert "flip pairs guessed from the names: leftear<->rightear" in caplog.text
    train_split = datamodule.splits["train"]
    for i in range(len(train_split)):
        sample = train_split[i]
        assert sample["affine"][0, 0].item() < 0  # mirrored...
        assert sample["keypoints"][0, 0] < 32 < sample["keypoints"][1, 0]  # ...and leftear is still on the left
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["test/rmse"])
