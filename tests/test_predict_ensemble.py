"""kp predict with an ensemble (RUN1 RUN2 INPUTS): the CSV's x and y are the members' median, the score their mean,
<keypoint>_ens_var their variance of x plus that of y; the members' own predictions come from each model alone;
models that do not fit together are refused in one line; one model's CSV has no ensemble columns; --each-video
writes the ensemble's CSV per video."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

import kp
from kp.cli.predict import main as main_predict
from kp.errors import InputError
from kp.predict.predict import predict_inputs
from tests.test_predict import (  # noqa: F401 (run_dir: a fixture)
    NAMES,
    SIZE,
    read_rows,
    run_dir,
    synthetic_images,
    train_small,
    write_images,
)


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    """Another small UNet as run_dir's, with another seed and fewer epochs: a member that disagrees a little."""
    overrides = ("seed=1", "data.dataset.sizes={train:256,val:32,test:32}", "trainer.max_epochs=2")
    return train_small(tmp_path_factory.mktemp("second"), *overrides)


def coordinates(rows, fields=("x", "y")) -> np.ndarray:
    """rows×K×len(fields) floats from the CSV's rows."""
    return np.array([[[float(row[f"{name}_{field}"]) for field in fields] for name in NAMES] for row in rows])


def test_the_ensemble_is_the_median_mean_score_and_variance_of_its_members(run_dir, second_run, tmp_path):  # noqa: F811
    write_images(tmp_path / "in", synthetic_images(6))
    alone = []
    for number, run in enumerate((run_dir, second_run)):
        predict_inputs(run, [str(tmp_path / "in")], tmp_path / f"alone{number}", overlays=False, workers=0)
        alone.append(read_rows(tmp_path / f"alone{number}" / "predictions.csv"))
        assert not any(column.endswith("_ens_var") for column in alone[-1][0])  # one model: the usual columns only
    # three members, two of them the same model: their median is that model's point, not the mean of the three
    runs = [str(run_dir), str(second_run), str(run_dir)]
    main_predict([*runs, str(tmp_path / "in"), "--out", str(tmp_path / "three")])
    rows = read_rows(tmp_path / "three" / "predictions.csv")

    usual = list(alone[0][0])
    assert list(rows[0]) == usual + [f"{name}_ens_var" for name in NAMES]
    assert [row["file"] for row in rows] == [row["file"] for row in alone[0]] == [row["file"] for row in alone[1]]
    members = np.stack([coordinates(table) for table in (alone[0], alone[1], alone[0])])  # 3×N×K×2, each model alone
    assert np.abs(members[0] - members[1]).max() > 0.01  # the members disagree: the test can tell median from mean
    # the members' CSV values are rounded to 3 decimals, the ensemble's computed before rounding
    assert coordinates(rows) == pytest.approx(np.median(members, axis=0), abs=2e-3)
    assert np.abs(coordinates(rows) - members.mean(0)).max() > 0.01
    spread = np.var(members, axis=0).sum(-1)
    np.testing.assert_allclose(coordinates(rows, ("ens_var",))[..., 0], spread, rtol=0.01, atol=0.01)
    scores = np.stack([coordinates(table, ("score",))[..., 0] for table in (alone[0], alone[1], alone[0])])
    assert coordinates(rows, ("score",))[..., 0] == pytest.approx(scores.mean(0), abs=2e-4)
    radii = np.stack([coordinates(table, ("radius",))[..., 0] for table in (alone[0], alone[1], alone[0])])
    assert coordinates(rows, ("radius",))[..., 0] == pytest.approx(np.median(radii, axis=0), abs=2e-3)


def test_models_with_other_keypoints_are_refused_in_one_line(run_dir, tmp_path):  # noqa: F811
    first, other = kp.load(run_dir), kp.load(run_dir)
    other.meta = dataclasses.replace(other.meta, names=[f"part{i}" for i in range(len(NAMES))])
    write_images(tmp_path / "in", synthetic_images(1))
    with pytest.raises(InputError) as error:
        predict_inputs([first, other], [str(tmp_path / "in")], tmp_path / "out", workers=0)
    message = str(error.value)
    assert "\n" not in message and "keypoint names" in message and message.count(str(first.checkpoint)) == 2
    assert not (tmp_path / "out").exists()  # refused before any file is written


def test_an_input_is_needed(run_dir, second_run):  # noqa: F811
    with pytest.raises(SystemExit) as exit_:
        main_predict([str(run_dir), str(second_run)])
    assert "kp predict needs a model and an input" in str(exit_.value) and "\n" not in str(exit_.value)


def write_video(path, images):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    for image in images:
        writer.write(image[:, :, ::-1])
    writer.release()


def test_each_video_with_an_ensemble_writes_the_ensembles_csv_per_video(run_dir, second_run, tmp_path):  # noqa: F811
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "a.mp4", synthetic_images(5))
    write_video(tmp_path / "videos" / "b.mp4", synthetic_images(3))
    common = ["--no-overlays", "--workers", "0"]
    main_predict([str(run_dir), str(tmp_path / "videos" / "a.mp4"), *common, "--out", str(tmp_path / "alone")])
    out = tmp_path / "each"
    main_predict([str(run_dir), str(second_run), str(tmp_path / "videos"), "--each-video", *common, "--out", str(out)])
    a, b = read_rows(out / "a" / "predictions.csv"), read_rows(out / "b" / "predictions.csv")
    assert (len(a), len(b)) == (5, 3) and all(f"{name}_ens_var" in a[0] for name in NAMES)
    assert json.loads((out / "a" / "predictions.json").read_text())["members"] == 2
    alone = read_rows(tmp_path / "alone" / "predictions.csv")
    assert np.abs(coordinates(a) - coordinates(alone)).max() > 0.01  # the ensemble's points, not the first model's
    summary = json.loads((out / "b" / "summary.json").read_text())
    scores = coordinates(b, ("score",))
    assert summary["frames"] == 3 and summary["mean_score"] == pytest.approx(scores.mean(), abs=1e-3)


def test_an_ensemble_smooths_and_resumes_like_one_model(run_dir, second_run, tmp_path):  # noqa: F811
    video = tmp_path / "clip.mp4"
    write_video(video, synthetic_images(8))
    argv = [str(run_dir), str(second_run), str(video), "--out", str(tmp_path / "out"), "--workers", "0"]
    main_predict([*argv, "--smooth", "kalman", "--no-overlays"])
    whole = (tmp_path / "out" / "predictions.csv").read_text()
    smoothed = read_rows(tmp_path / "out" / "predictions_smoothed.csv")
    assert len(smoothed) == 8 and all(float(row["nose_ens_var"]) >= 0 for row in smoothed)
    assert json.loads((tmp_path / "out" / "predictions.json").read_text())["members"] == 2  # kp smooth's report says
    assert "noise: ensemble variance of 2 members" in (tmp_path / "out" / "predictions_smoothing/report.md").read_text()
    lines = whole.splitlines(keepends=True)  # a job killed in its fifth row
    (tmp_path / "out" / "predictions.csv").write_text("".join(lines[:5]) + lines[5][:20])
    main_predict([*argv, "--resume", "--no-overlays"])
    assert (tmp_path / "out" / "predictions.csv").read_text() == whole
