"""The label doctor finds the problems planted in a copy of real labels: a swapped left/right pair, a shifted point and
a duplicate image across splits; its report and pictures are written; bad input ends in one line."""

import csv
import shutil

import numpy as np
import pytest

from kp.cli.doctor import main
from kp.config import compose_config
from kp.data.facial68 import NAMES, Facial68, person_of
from kp.evaluation.doctor import diagnose
from tests.helpers import shared_data

PEOPLE = 12


@pytest.fixture
def planted(tmp_path):
    """The first PEOPLE people of facial68 (images linked, not copied), with three planted problems."""
    source = shared_data("facial68")
    root = tmp_path / "facial68"
    (root / "images").mkdir(parents=True)
    with open(source / "keypoints.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    people = list(dict.fromkeys(person_of(row[0]) for row in rows))[:PEOPLE]
    rows = [row for row in rows if person_of(row[0]) in people]
    for row in rows:
        (root / "images" / row[0]).symlink_to(source / "images" / row[0])
    swapped, shifted = rows[3][0], rows[10][0]
    left, right = NAMES.index("left_eye_3"), NAMES.index("right_eye_0")  # the outer eye corners (45, 36)
    row = rows[3]
    row[1 + 2 * left : 3 + 2 * left], row[1 + 2 * right : 3 + 2 * right] = (
        row[1 + 2 * right : 3 + 2 * right],
        row[1 + 2 * left : 3 + 2 * left],
    )
    nose = NAMES.index("nose_bridge_3")
    xs = [float(v) for v in rows[10][1::2]]
    rows[10][1 + 2 * nose] = str(float(rows[10][1 + 2 * nose]) + 0.6 * (max(xs) - min(xs)))  # off the face
    with open(root / "keypoints.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    # the duplicate: a training image again, under the name of someone in the test split
    train = Facial68("train", root)
    test_person = person_of(Facial68("test", root).files[0].name)
    duplicate = f"{test_person}_99.jpg"
    shutil.copy(train.files[0], root / "images" / duplicate)
    original = next(row for row in rows if row[0] == train.files[0].name)
    with open(root / "keypoints.csv", "a", newline="") as f:
        csv.writer(f).writerow([duplicate, *original[1:]])
    return tmp_path, swapped, shifted, (train.files[0].name, duplicate)


def test_doctor_finds_the_planted_swap_shift_and_leak(planted, tmp_path):
    data_dir, swapped, shifted, (original, duplicate) = planted
    cfg = compose_config(["data=facial68", f"paths.data_dir={data_dir}"])
    report, findings = diagnose(cfg, out=tmp_path / "doctor", worst=3)

    assert [(id_.split("/")[-1], {a, b}) for _, id_, a, b, _ in findings.swaps] == [
        (swapped, {"left_eye_3", "right_eye_0"})
    ]
    # the two planted shapes lead the outliers: the shifted point, and the swapped pair (far from their places too)
    top = {id_.split("/")[-1]: point for _, id_, _, point in findings.outliers[:2]}
    assert top[shifted] == "nose_bridge_3" and top[swapped] in ("left_eye_3", "right_eye_0")
    (group,) = findings.across_splits()
    assert sorted((split, id_.split("/")[-1]) for split, id_ in group) == [("test", duplicate), ("train", original)]
    assert sum(findings.counts[s][0] for s in findings.counts) == len(
        list((data_dir / "facial68" / "images").iterdir())
    )

    text = report.read_text()
    assert f"{swapped}` ({findings.swaps[0][0]}): right_eye_0 / left_eye_3" in text
    assert "1 across splits" in text and duplicate in text and "at nose_bridge_3" in text
    for picture in ("coverage.png", "duplicates.png", "swaps.png", "outliers.png"):
        assert (tmp_path / "doctor" / picture).stat().st_size > 5_000


def test_doctor_bad_data_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data=facial68", f"paths.data_dir={tmp_path}", "--out", str(tmp_path / "doctor")])
    assert (
        str(stop.value) == f"data error: {tmp_path}/facial68/keypoints.csv: not found (data.dataset.root should "
        "hold keypoints.csv and images/)"
    )
    assert not (tmp_path / "doctor").exists()


def test_mean_shape_alignment_undoes_a_similarity():
    from kp.evaluation.doctor import align

    rng = np.random.default_rng(0)
    shape = rng.normal(size=(6, 2))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = shape @ rotation.T * 3.0 + [5, -2]
    np.testing.assert_allclose(align(moved, shape, np.ones(6, bool)), shape, atol=1e-9)


def test_doctor_with_a_model_lists_the_labels_it_disagrees_with_most(tmp_path):
    import torch

    from kp.build import build
    from tests.helpers import TINY_DATA, compose_config

    cfg = compose_config(*TINY_DATA, "model=simple_cnn", output_dir=tmp_path)
    _, module = build(cfg)
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, tmp_path / "model.ckpt")
    report, findings = diagnose(cfg, run=str(tmp_path / "model.ckpt"), out=tmp_path / "doctor", worst=4)
    errors = [error for _, _, error, _ in findings.disagreements]
    assert len(errors) == 4 and errors == sorted(errors, reverse=True) and errors[0] > 0
    assert "## Where the model disagrees with the labels" in report.read_text()
    assert (tmp_path / "doctor" / "disagreements.png").stat().st_size > 5_000
    # per keypoint, the disagreement beside the pose prior's label-free error signal (the checkpoint carries the
    # prior: kp.build fits it for every run), recomputed here through kp.load's own prediction
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from kp.evaluation.doctor import read_samples
    from kp.inference.load import load

    with open_dict(cfg):
        cfg.data.transforms = {}
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    samples = read_samples(datamodule)
    predictor = load(tmp_path / "model.ckpt")
    keypoints, _ = predictor.predict([s.image for s in samples])
    affines = np.stack([predictor.preprocess(s.image)[1] for s in samples])
    signal = predictor.pose_prior_errors(keypoints, affines)["pose_pca"].mean(axis=0)
    np.testing.assert_allclose(findings.prior_errors["pose_pca"], signal, rtol=1e-5)
    labelled = np.array([s.labelled for s in samples])
    distance = np.linalg.norm(keypoints - np.array([s.keypoints for s in samples]), axis=-1)
    disagreement = np.array([distance[labelled[:, k], k].mean() for k in range(labelled.shape[1])])
    np.testing.assert_allclose(findings.keypoint_disagreement, disagreement, rtol=1e-5)
    text = report.read_text()
    assert "| keypoint | disagreement px | pose_pca px |" in text
    assert f"| {datamodule.meta.names[0]} | {disagreement[0]:.2f} | {signal[0]:.2f} |" in text
    assert "- `multiview_pca`: not measured: no views in the keypoint names" in text


def test_doctor_with_a_model_of_other_keypoints_is_one_line(tmp_path):
    import torch

    from kp.build import build
    from tests.helpers import TINY_DATA, compose_config

    cfg = compose_config(*TINY_DATA, "model=simple_cnn", output_dir=tmp_path)
    _, module = build(cfg)
    spec = dict(module.spec)
    spec["meta"] = {**spec["meta"], "names": ["snout", *spec["meta"]["names"][1:]]}  # another animal's first point
    torch.save({"state_dict": module.state_dict(), "kp": spec}, tmp_path / "other.ckpt")
    with pytest.raises(SystemExit) as stop:
        main([*TINY_DATA, "--run", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "doctor")])
    assert str(stop.value).startswith(f"model error: --run {tmp_path / 'other.ckpt'} predicts ['snout',")
    assert str(stop.value).endswith("pick a run trained on this data")
