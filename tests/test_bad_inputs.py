"""Every broken or unusual input of tests/bad_inputs (each loader's label files and images, the splits, checkpoints)
gets what kp promises: a one-line error naming the file, a counted skip, or acceptance with the right values."""

import numpy as np
import pytest

import kp
from kp.data.io import DataError
from kp.inference import ModelLoadError
from tests.bad_inputs import checkpoints
from tests.bad_inputs.cases import build, cases, open_case, source_points

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
