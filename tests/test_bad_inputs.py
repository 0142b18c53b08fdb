"""Every broken or unusual input of tests/bad_inputs (each loader's label files and images, the splits, checkpoints)
gets what kp promises: a one-line error naming the file, a counted skip, or acceptance with the right values."""

import csv
import json

import numpy as np
import pytest

import kp
from kp.data.datamodule import KeypointDataModule
from kp.errors import DataError, ModelLoadError
from tests.bad_inputs import checkpoints
from tests.bad_inputs.cases import FORMATS, build, cases, make_labels, open_case, source_points

CASES = cases()


def test_there_are_enough_cases_covering_every_loader():
    assert len(CASES) + len(checkpoints.KINDS) >= 150
    assert {case.fmt.name for case in CASES} == {"facial", "facial68", "cards", "cat", "dlc", "dlc_single", "coco"}
    assert {case.expect for case in CASES} == {"error", "skip", "accept"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path):
    written = build(case, tmp_path)
    label_file = case.fmt.label_file(tmp_path)
    try:
        dataset = open_case(case, tmp_path)
        loaded = [source_points(dataset, i) for i in range(len(dataset))]
    except DataError as error:
        message = str(error)
        assert case.expect == "error", f"expected {case.expect}, got the error {message}"
        assert "\n" not in message and case.match in message
        named = [label_file.name, label_file.parent.name, tmp_path.name]  # the file, its folder, or an image in it
        assert any(name in message for name in named), message
        return
    assert case.expect != "error", f"expected an error matching {case.match!r}; the loader read {len(dataset)} samples"
    if case.expect == "skip":
        assert len(dataset.issues) == case.n, dataset.issues
        assert all(str(tmp_path) in issue for issue in dataset.issues), dataset.issues
        return
    assert dataset.issues == []
    # every sample read, taken back to its source image, holds the points written for one of the images
    for points in loaded:
        labelled = np.isfinite(points).all(axis=1)
        assert labelled.any()
        assert any(np.allclose(points[labelled], expected[labelled], atol=0.02) for expected in written.points)


@pytest.mark.parametrize("kind", list(checkpoints.KINDS))
def test_bad_checkpoint(kind, tmp_path):
    make, expect, match = checkpoints.KINDS[kind]
    path = make(tmp_path)
    if expect == "accept":
        predictor = kp.load(path)
        keypoints, scores = predictor.predict([np.zeros((32, 32), np.uint8)])
        assert keypoints.shape == (1, 2, 2) and scores.shape == (1, 2)
        return
    with pytest.raises(ModelLoadError) as error:
        kp.load(path)
    message = str(error.value)
    assert "\n" not in message and match in message and str(path) in message, message


def test_skips_are_counted_and_listed_in_data_issues_csv(tmp_path):
    """Two bad rows of a cards CSV: counted once over the three splits, and written as file, row, reason."""
    fmt = FORMATS["cards"]
    fmt.write(tmp_path, make_labels(*fmt.size, fmt.k))
    path = fmt.label_file(tmp_path)
    lines = path.read_text().splitlines()
    lines += [
        lines[1].replace("p0_01.png", "gone.png").replace("video0", "video8"),
        lines[2].replace("p1_01.png", "p9.png").replace(",1,20,", ",1,abc,").replace("video1", "video9"),
    ]
    path.write_text("\n".join(lines) + "\n")
    datamodule = KeypointDataModule(lambda split, transform: fmt.open(tmp_path, split, (0.5, 0.25, 0.25)))
    datamodule.setup()
    datamodule.write_issues(tmp_path / "data_issues.csv")
    with open(tmp_path / "data_issues.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["file", "row", "reason"],
        [str(path), "6", f"image {tmp_path / 'images' / 'gone.png'} is missing"],
        [str(path), "7", "cards_counted 'abc' is not a number"],
    ]


def test_mirror_augmentation_without_left_right_pairs_is_switched_off_at_start(tmp_path, caplog):
    """A COCO category without keypoint names: flip pairs unknown, so mirrored samples would keep their labels: the
    mirror leaves the augmentation, and the log says how to declare the pairs."""
    import albumentations as A

    from kp.data.transforms import KeypointAugment

    fmt = FORMATS["coco"]
    fmt.write(tmp_path, make_labels(*fmt.size, fmt.k))
    data = json.loads(fmt.label_file(tmp_path).read_text())
    data["categories"][0].pop("keypoints")
    fmt.label_file(tmp_path).write_text(json.dumps(data))
    hflip = KeypointAugment([A.HorizontalFlip(p=0.5)])
    datamodule = KeypointDataModule(
        lambda split, transform: fmt.open(tmp_path, split, (0.5, 0.25, 0.25), transform=transform),
        transforms={"train": hflip},
    )
    datamodule.setup()
    assert datamodule.meta.flip_pairs is None
    assert "mirror augmentation and flip test are OFF" in caplog.text and "(kp0, kp1, kp2)" in caplog.text
    assert datamodule.splits["train"].transform.steps == []
