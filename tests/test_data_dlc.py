"""The DeepLabCut loader: config.yaml and CollectedData CSVs, letterboxed frames, the split by video and bad input, on a
small synthetic project and on the reaching demo when ../shared/data is there."""

import csv
import logging

import cv2
import numpy as np
import pytest
import yaml

from kp.data.dlc import DeepLabCutProject
from kp.errors import DataError
from tests.helpers import shared_data

PARTS = ["left_paw", "right_paw", "nose"]
# Frame sizes (width, height) per video: the loader fits each into 48 × 32.
SIZES = {"mouse1": (96, 64), "mouse2": (60, 60), "mouse3": (72, 40)}
POINTS = [(10.0, 20.0), (30.0, 12.0), (40.0, 30.0)]


def write_project(root, frames=3, index_columns=1, videos=SIZES, edit=None):
    """A project with `frames` black frames per video, a white dot at each labelled point; the nose is unlabelled in
    every frame 0. `edit(rows)` changes a CSV's rows (header included) before it is written."""
    config = {"Task": "test", "scorer": "Ann", "bodyparts": PARTS, "skeleton": [["left_paw", "nose"]]}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    for video, (width, height) in videos.items():
        folder = root / "labeled-data" / video
        folder.mkdir(parents=True)
        pad = [""] * (index_columns - 1)
        rows = [
            ["scorer"] + pad + ["Ann"] * 6,
            ["bodyparts"] + pad + [p for p in PARTS for _ in "xy"],
            ["coords"] + pad + ["x", "y"] * 3,
        ]
        for frame in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            cells = []
            for k, (x, y) in enumerate(POINTS):
                x, y = x * width / 96 + frame, y * height / 64
                if k == 2 and frame == 0:
                    cells += ["", ""]
                    continue
                cv2.circle(image, (round(x), round(y)), 3, (255, 255, 255), -1)
                cells += [f"{x:.3f}", f"{y:.3f}"]
            name = f"img{frame:03d}.png"
            cv2.imwrite(str(folder / name), image)
            index = [f"labeled-data/{video}/{name}"] if index_columns == 1 else ["labeled-data", video, name]
            rows.append(index + cells)
        if edit:
            edit(video, rows)
        with open(folder / "CollectedData_Ann.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return root


def every_frame(root, **options):
    return DeepLabCutProject(
        "train",
        str(root),
        width=48,
        height=32,
        split_by="frame",
        fractions={"train": 1.0, "val": 0.0, "test": 0.0},
        **options,
    )


@pytest.mark.parametrize("index_columns", [1, 3])
def test_frames_are_letterboxed_with_points_on_their_dots(tmp_path, index_columns):
    data = every_frame(write_project(tmp_path, index_columns=index_columns))
    assert len(data) == 9
    for i in range(len(data)):
        sample = data[i]
        assert sample["image"].shape == (3, 32, 48)
        assert sample["visible"].tolist() == [True, True, data.frames[i].image.name != "img000.png"]
        grey = sample["image"].mean(0).numpy()
        for (x, y), visible in zip(sample["keypoints"].tolist(), sample["visible"].tolist()):
            if visible:
                assert grey[round(y), round(x)] > 0.4, f"{data.frames[i].image}: ({x:.1f}, {y:.1f}) is off its dot"


def test_letterbox_geometry_is_exact(tmp_path):
    data = every_frame(write_project(tmp_path, videos={"tall": (60, 60)}))
    sample = data[1]  # 60×60 into 48×32: scale 32/60, box 90×60 starting at x = -15
    x, y = POINTS[0][0] * 60 / 96 + 1, POINTS[0][1] * 60 / 64
    scale = 32 / 60
    assert sample["keypoints"][0].tolist() == pytest.approx(
        [(x + 15 + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5], abs=1e-3
    )
    assert sample["image"][:, :, :7].max() == 0  # the padding is black


def test_meta_from_config_yaml(tmp_path):
    meta = every_frame(write_project(tmp_path)).meta
    assert meta.names == PARTS and meta.flip_pairs == [(0, 1)] and meta.skeleton == [(0, 2)]
    assert every_frame(tmp_path, flip_pairs=[]).meta.flip_pairs == []


def test_split_by_video_keeps_videos_whole(tmp_path):
    write_project(tmp_path)
    fractions = {"train": 1 / 3, "val": 1 / 3, "test": 1 / 3}
    videos = [
        {f.video for f in DeepLabCutProject(s, str(tmp_path), fractions=fractions).frames}
        for s in ("train", "val", "test")
    ]
    assert all(len(v) == 1 for v in videos) and set.union(*videos) == set(SIZES)


def test_too_few_videos_for_the_splits_is_a_clear_error(tmp_path):
    write_project(tmp_path, videos={"only": (64, 64)})
    with pytest.raises(DataError, match="val split of .* by video is empty: 1 group.*split_by"):
        DeepLabCutProject("val", str(tmp_path))
    assert (
        len(
            DeepLabCutProject(
                "val", str(tmp_path), split_by="frame", fractions={"train": 1 / 3, "val": 1 / 3, "test": 1 / 3}
            )
        )
        == 1
    )


def test_bad_rows_are_skipped_counted_and_named(tmp_path, caplog):
    def spoil(video, rows):
        if video == "mouse1":
            rows[3] = rows[3][:-1]  # line 4: a column short
            rows[4][2] = "12,5"  # line 5: decimal comma
            rows[5][3] = ""  # line 6: right_paw has x but no y
        if video == "mouse2":
            rows[4][0] = "labeled-data/mouse2/gone.png"  # line 5

    with caplog.at_level(logging.WARNING):
        data = every_frame(write_project(tmp_path, edit=spoil))
    assert len(data) == 9 - 4
    text = caplog.text
    assert "mouse1/CollectedData_Ann.csv: left out 3 bad sample(s) or point(s)" in text
    for problem in [
        "CollectedData_Ann.csv:4: 6 columns, the header has 7",
        "CollectedData_Ann.csv:5: left_paw y '12,5' is not a number",
        "CollectedData_Ann.csv:6: right_paw has only one of x and y",
        "CollectedData_Ann.csv:5: image",
        "gone.png is missing",
    ]:
        assert problem in text


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            lambda video, rows: rows[1].__setitem__(slice(5, 7), ["tail", "tail"]),
            r"body parts \['left_paw', 'right_paw', 'tail'\]",
        ),
        (lambda video, rows: rows.insert(1, ["individuals"] + ["mouse"] * 6), "multi-animal DeepLabCut labels"),
        (lambda video, rows: rows[2].__setitem__(3, "likelihood"), "column 4 is 'likelihood'"),
    ],
)
def test_label_files_that_disagree_with_the_config_are_errors(tmp_path, spoil, message):
    with pytest.raises(DataError, match=message):
        every_frame(write_project(tmp_path, edit=lambda video, rows: video == "mouse1" and spoil(video, rows)))


def test_missing_config_or_labels_and_corrupt_images_are_errors(tmp_path):
    with pytest.raises(DataError, match="config.yaml: not found"):
        every_frame(tmp_path)
    (tmp_path / "config.yaml").write_text("scorer: Ann\n")
    with pytest.raises(DataError, match="needs `scorer` and a non-empty `bodyparts`"):
        every_frame(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"scorer": "Ann", "bodyparts": PARTS}))
    with pytest.raises(DataError, match="no <video>/CollectedData_Ann.csv"):
        every_frame(tmp_path)
    (tmp_path / "project").mkdir()
    data = every_frame(write_project(tmp_path / "project"))
    data.frames[0].image.write_bytes(b"")
    with pytest.raises(DataError, match="img000.png: corrupt"):
        data[0]


def test_real_reaching_project():
    project = shared_data("dlc_reaching")
    splits = {s: DeepLabCutProject(s, str(project), split_by="frame") for s in ("train", "val", "test")}
    assert sum(len(d) for d in splits.values()) == 55
    frames = [f for d in splits.values() for f in d.frames]
    assert len({f.image for f in frames}) == 55
    data = splits["train"]
    assert data.meta.names == ["Hand", "Finger1", "Tongue", "Joystick1", "Joystick2"]
    assert data.meta.skeleton == [(0, 1), (3, 4)]
    first = next(f for f in frames if f.image.name == "img005.png")  # Tongue is not labelled there
    assert first.labelled.tolist() == [True, True, False, True, True]
    assert first.keypoints[0].tolist() == pytest.approx([185.2517, 610.3623], abs=1e-3)
    sample = data[0]
    assert sample["image"].shape == (3, 256, 320)
    assert sample["visible"].sum() >= 3


def write_single_csv(root, videos, parts=("paw1LH_top", "paw1LH_bot", "nose")):
    """The single-CSV layout: root/CollectedData.csv, frames under labeled-data/<video>/ (or labeled-data/ itself
    when videos == [""]), no config.yaml."""
    rows = [
        ["scorer"] + ["lp"] * 2 * len(parts),
        ["bodyparts"] + [p for p in parts for _ in "xy"],
        ["coords"] + ["x", "y"] * len(parts),
    ]
    for v, video in enumerate(videos):
        folder = root / "labeled-data" / video
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(4):
            name = f"img{frame:02d}.png"
            cv2.imwrite(str(folder / name), np.full((30, 40, 3), 10 * frame + v, np.uint8))
            rows.append(
                [f"labeled-data/{video + '/' if video else ''}{name}"]
                + [f"{5 + k + frame}" for k in range(len(parts)) for _ in "xy"]
            )
    with open(root / "CollectedData.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def test_single_csv_layout_splits_by_video_folder_or_by_frame(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root = write_single_csv(tmp_path / "three", ["mouseA", "mouseB", "mouseC"])
    thirds = {"train": 0.34, "val": 0.33, "test": 0.33}
    splits = {
        split: DeepLabCutProject(
            split, str(root), width=40, height=30, split_by="auto", fractions=thirds, csv_file="CollectedData.csv"
        )
        for split in ("train", "val", "test")
    }
    assert splits["train"].meta.names == ["paw1LH_top", "paw1LH_bot", "nose"]
    videos = {split: {frame.video for frame in data.frames} for split, data in splits.items()}
    assert all(len(v) == 1 for v in videos.values()) and len(set.union(*videos.values())) == 3
    assert "CollectedData.csv: split by video: 3 group(s) of 12 frames" in caplog.text
    first = splits["train"].frames[0]
    assert first.labelled.all() and first.keypoints[0].tolist() == [5 + int(first.image.stem[-2:])] * 2

    caplog.clear()
    flat = write_single_csv(tmp_path / "flat", [""])
    train = DeepLabCutProject(
        "train",
        str(flat),
        width=40,
        height=30,
        split_by="auto",
        csv_file="CollectedData.csv",
        fractions={"train": 0.5, "val": 0.25, "test": 0.25},
    )
    assert (
        len(train) == 2
        and "split by frame: 4 group(s) of 4 frames (1 video(s), too few for one in every split, and 1 "
        "group(s) of look-alike"
        in caplog.text
    )
    with pytest.raises(DataError, match="nothing.csv: not found"):
        DeepLabCutProject("train", str(flat), csv_file="nothing.csv")
