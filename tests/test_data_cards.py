"""The card-pack loader: the x/y swap, targets, the split by video and bad input, on small synthetic CSVs and on the
real set when ../shared/data is there."""

import csv
import logging

import cv2
import numpy as np
import pytest

from kp.data.cards import COLUMNS, POINTS, CardPacks
from kp.errors import DataError
from tests.helpers import shared_data

WIDTH, HEIGHT = 64, 48  # the synthetic frames; loaded at half size
# Corner pixels (column, row) of the fixture, asymmetric so that a swapped x/y lands on black.
CORNERS = [(8, 30), (20, 6), (34, 40), (44, 14), (52, 26), (12, 44), (58, 4), (28, 20)]
HIDDEN = 3  # upper_right_back is not visible in the fixture


def write_cards(root, videos=5, frames=2, counted=30):
    """A cardpoints.csv over `videos` × `frames` black frames with a white dot at each visible corner."""
    (root / "images").mkdir(parents=True)
    rows = []
    for video in range(videos):
        for frame in range(frames):
            name = f"v{video}_f{frame}.jpg"
            image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            row = {
                "imageName": name,
                "annotated": "1",
                "cards_counted": str(counted),
                "total_cards": "52",
                "videoId": str(video),
            }
            for k, (point, (column, line)) in enumerate(zip(POINTS, CORNERS)):
                visible = k != HIDDEN
                if visible:
                    cv2.circle(image, (column, line), 3, (255, 255, 255), -1)
                # The quirk: <pt>_x is the row / height, <pt>_y the column / width (of the pixel's centre).
                row.update(
                    {
                        f"{point}_visible": str(int(visible)),
                        f"{point}_x": f"{(line + 0.5) / HEIGHT:.6f}" if visible else "0.0",
                        f"{point}_y": f"{(column + 0.5) / WIDTH:.6f}" if visible else "0.0",
                    }
                )
            cv2.imwrite(str(root / "images" / name), image)
            rows.append([row[c] for c in COLUMNS] + [name.replace(".jpg", "_mask.jpg")])
    write_csv(root, COLUMNS + ["mask"], rows)
    return rows


def write_csv(root, header, rows):
    with open(root / "cardpoints.csv", "w", newline="") as f:
        csv.writer(f).writerows([header] + rows)


def load(root, split="train", **options):
    options.setdefault("fractions", {"train": 0.6, "val": 0.2, "test": 0.2})
    return CardPacks(split, str(root), width=WIDTH // 2, height=HEIGHT // 2, **options)


def test_corners_land_on_their_dots_after_the_swap_and_resize(tmp_path):
    write_cards(tmp_path)
    data = load(tmp_path)
    sample = data[0]
    assert sample["image"].shape == (3, HEIGHT // 2, WIDTH // 2)
    grey = sample["image"].mean(0).numpy()
    for k, ((x, y), visible) in enumerate(zip(sample["keypoints"].tolist(), sample["visible"].tolist())):
        assert visible == (k != HIDDEN)
        if visible:
            column, line = CORNERS[k]
            assert (x, y) == pytest.approx(((column + 0.5) / 2 - 0.5, (line + 0.5) / 2 - 0.5), abs=1e-3)
            assert grey[round(y), round(x)] > 0.5, f"{POINTS[k]} is not on its dot"
    assert sample["keypoints"][HIDDEN].tolist() == [0.0, 0.0]


def test_count_target_is_a_fraction_of_the_pack(tmp_path):
    write_cards(tmp_path, counted=13)
    data = load(tmp_path)
    assert data.meta.count_scale == 52
    assert data[0]["count"].item() == pytest.approx(13 / 52)
    assert data.meta.names == POINTS and data.meta.flip_pairs == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert all(0 <= i < 8 and 0 <= j < 8 for i, j in data.meta.skeleton)


def test_split_by_video_is_disjoint_complete_and_deterministic(tmp_path):
    write_cards(tmp_path, videos=10, frames=3)
    videos = {split: [f.video for f in load(tmp_path, split).frames] for split in ("train", "val", "test")}
    assert [len(v) for v in videos.values()] == [18, 6, 6]  # 6 / 2 / 2 videos of 3 frames
    sets = [set(v) for v in videos.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set.union(*sets) == {str(v) for v in range(10)}
    assert [f.video for f in load(tmp_path, "val").frames] == videos["val"]
    assert {f.video for f in load(tmp_path, "val", seed=1).frames} != sets[1]


def test_empty_split_and_bad_fractions_are_errors(tmp_path):
    write_cards(tmp_path, videos=2)
    with pytest.raises(DataError, match="test split of .*cardpoints.csv by videoId is empty: 2 group"):
        load(tmp_path, "test")
    with pytest.raises(ValueError, match="summing to 1"):
        load(tmp_path, fractions={"train": 0.5, "val": 0.2, "test": 0.2})


def test_missing_file_or_column_is_an_error(tmp_path):
    with pytest.raises(DataError, match="cardpoints.csv: cannot read"):
        load(tmp_path)
    rows = write_cards(tmp_path)
    write_csv(tmp_path, [c for c in COLUMNS if c != "videoId"] + ["mask"], [r[:4] + r[5:] for r in rows])
    with pytest.raises(DataError, match=r"missing column\(s\) \['videoId'\]"):
        load(tmp_path)


def test_bad_rows_are_skipped_counted_and_named(tmp_path, caplog):
    rows = write_cards(tmp_path, videos=3, frames=4)
    column = {name: i for i, name in enumerate(COLUMNS)}
    # Two bad frames in each of the 3 videos (rows 0, 1 | 4, 5 | 8, 9 are on CSV lines 2, 3 | 6, 7 | 10, 11).
    rows[0] = rows[0][:-3]
    rows[1][column["upper_left_face_x"]] = "abc"
    rows[4][column["lower_right_back_y"]] = "inf"
    rows[5][column["imageName"]] = "nowhere.jpg"
    rows[8][column["upper_left_back_visible"]] = "2"
    rows[9][column["upper_left_face_y"]] = "312"  # pixels, not a fraction
    write_csv(tmp_path, COLUMNS + ["mask"], rows)
    with caplog.at_level(logging.WARNING):
        frames = sum(
            len(load(tmp_path, s, fractions={"train": 1 / 3, "val": 1 / 3, "test": 1 / 3}))
            for s in ("train", "val", "test")
        )
    assert frames == 12 - 6
    log = caplog.text
    assert log.count("left out 6 bad sample(s) or point(s)") == 1  # read once for the three splits
    for line, problem in [
        (2, "27 columns, the header has 30"),
        (3, "upper_left_face_x 'abc' is not a number"),
        (6, "lower_right_back_y 'inf' is not finite"),
        (7, "nowhere.jpg is missing"),
        (10, "upper_left_back_visible is '2'"),
        (11, "outside [0, 1]"),
    ]:
        assert f"cardpoints.csv:{line}: " in log and problem in log, problem


def test_corrupt_image_is_an_error_naming_it_when_loaded(tmp_path):
    write_cards(tmp_path)
    data = load(tmp_path)
    data.frames[0].image.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"{data.frames[0].image.name}: corrupt"):
        data[0]


def test_real_cards_split_by_video_and_land_on_the_corners():
    root = shared_data("cards")
    splits = {s: CardPacks(s, str(root)) for s in ("train", "val", "test")}
    assert sum(len(d) for d in splits.values()) == 783
    videos = [{f.video for f in d.frames} for d in splits.values()]
    assert [len(v) for v in videos] == [32, 4, 4] and not (videos[0] & (videos[1] | videos[2]))
    data = next(d for d in splits.values() if d.frames[0].image.name == "MAQ01036_frame_0.jpg")
    sample = data[0]
    assert sample["image"].shape == (3, 120, 160) and data.meta.count_scale == 52
    assert sample["count"].item() == pytest.approx(52 / 52)
    # The CSV row: upper_left_face_x = 0.5125 (row / height), upper_left_face_y = 0.285938 (column / width).
    assert sample["keypoints"][0].tolist() == pytest.approx([0.285938 * 160 - 0.5, 0.5125 * 120 - 0.5], abs=1e-3)
    assert not sample["visible"][1]  # upper_right_face is hidden in that frame


def test_train_fraction_keeps_whole_videos_nested_and_leaves_val_and_test_alone(tmp_path):
    from kp.data.datamodule import KeypointDataModule

    write_cards(tmp_path, videos=20, frames=3)  # 12 training videos of 3 frames

    def datamodule(fraction):
        # the fixture's frames are identical images: allow_leaks
        dm = KeypointDataModule(
            lambda split, transform, max_pixels: load(tmp_path, split, transform=transform),
            allow_leaks=True,
            train_fraction=fraction,
        )
        dm.setup()
        return dm

    full = datamodule(1.0)
    kept = {f: datamodule(f) for f in (0.25, 0.5)}
    videos = {f: [full.splits["train"].frames[i].video for i in dm.splits["train"].indices] for f, dm in kept.items()}
    assert [len(v) for v in videos.values()] == [9, 18]  # 3 and 6 of the 12 training videos, whole
    for frames in videos.values():
        assert all(frames.count(video) == 3 for video in frames)
    assert set(videos[0.25]) < set(videos[0.5])  # nested
    for dm in kept.values():
        assert [s[0] for s in dm.splits["val"].image_sources()] == [s[0] for s in full.splits["val"].image_sources()]
        assert dm.splits["train"].meta == full.splits["train"].meta
    sample = kept[0.25].splits["train"][0]
    assert sample["id"] == str(full.splits["train"].frames[kept[0.25].splits["train"].indices[0]].image)
    with pytest.raises(ValueError, match=r"train_fraction must be in \(0, 1\], got 0"):
        KeypointDataModule(lambda split, transform, max_pixels: load(tmp_path, split), train_fraction=0)


def test_train_fraction_outside_0_1_is_a_one_line_configuration_error():
    from kp.build import build
    from kp.errors import ConfigError
    from tests.helpers import TINY_DATA, compose_config

    with pytest.raises(ConfigError, match=r"data.train_fraction=1.5: expected a share in \(0, 1\]"):
        build(compose_config(*TINY_DATA, "data.train_fraction=1.5"))
