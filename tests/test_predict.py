"""Using a trained model: kp.load from a checkpoint alone, kp predict's files (CSV, DeepLabCut, COCO, overlays,
annotated video), keypoints in the original image's pixels, skips, face detection, and one-line errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

import kp
import kp.module
from kp import geometry
from kp.cli.predict import main as main_predict
from kp.codecs import flip_test
from kp.data.synthetic import SyntheticKeypoints
from kp.errors import InputError, ModelLoadError
from kp.export.export import export
from kp.predict.predict import predict_inputs
from kp.train.loop import train
from kp.viz.overlay import draw
from tests.helpers import ROOT, compose_config, shared_data

SIZE = 48
NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small UNet trained for 30 s on 48×48 synthetic faces (test PCK@0.1 about 0.9)."""
    return train_small(
        tmp_path_factory.mktemp("run"), "data.dataset.sizes={train:512,val:32,test:32}", "trainer.max_epochs=4"
    )


def train_small(out, *overrides: str):
    """A UNet of width 8 on SIZE×SIZE synthetic faces, trained into `out` with the overrides."""
    cfg = compose_config(
        *overrides,
        f"data.dataset.image_size={SIZE}",
        "model.backbone.width=8",
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        output_dir=out,
    )
    train(cfg)
    return out


def synthetic_images(n: int, start: int = 0) -> list[np.ndarray]:
    data = SyntheticKeypoints("test", sizes={"test": start + n}, image_size=SIZE)
    return [data.load(i).image for i in range(start, start + n)]


def write_images(folder, images, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / (names[i] if names else f"{i}.png")), image[:, :, ::-1])


def read_rows(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_checkpoint_alone_predicts_with_no_config_and_no_data(run_dir, tmp_path):
    checkpoint = kp.load(run_dir).checkpoint
    alone = tmp_path / "elsewhere" / "model.ckpt"
    alone.parent.mkdir()
    shutil.copy(checkpoint, alone)
    write_images(tmp_path / "images", synthetic_images(3))
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "KP_DATA_DIR": str(empty), "KP_ROOT": str(empty)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kp",
            "predict",
            str(alone),
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "0",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "out" / "predictions.csv")
    assert [row["file"] for row in rows] == [str(tmp_path / "images" / f"{i}.png") for i in range(3)]
    in_process, _ = kp.load(alone).predict(synthetic_images(3))
    np.testing.assert_allclose(
        [[float(row[f"{n}_x"]), float(row[f"{n}_y"])] for row in rows for n in NAMES],
        in_process.reshape(-1, 2),
        atol=1e-3,
    )


def test_predictions_are_right_and_in_the_original_pixels(run_dir):
    predictor = kp.load(run_dir)
    images = synthetic_images(16)
    samples = [SyntheticKeypoints("test", sizes={"test": 16}, image_size=SIZE).load(i) for i in range(16)]
    truth, visible = np.stack([s.keypoints for s in samples]), np.stack([s.visible for s in samples])
    keypoints, scores = predictor.predict(images)
    assert keypoints.shape == (16, 5, 2) and scores.shape == (16, 5)
    assert np.median(np.linalg.norm(keypoints - truth, axis=-1)[visible]) < 2.0  # a trained model, not noise
    # The same image at 2× (pixel centre x -> 2x + 0.5), and on a wider canvas, letterboxed back to 48×48.
    doubled, _ = predictor.predict(
        [cv2.resize(image, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_NEAREST) for image in images]
    )
    confident = visible & (scores > 0.3)  # an occluded keypoint's flat heatmap may peak anywhere
    assert confident.mean() > 0.5
    assert np.abs(doubled - (2 * keypoints + 0.5))[confident].max() < 1.0


def test_preprocessing_affine_follows_the_image(run_dir):
    """A dot in a 90×40 photo (letterboxed into 48×48) sits in the network's input where the affine says."""
    predictor = kp.load(run_dir)
    photo = np.zeros((40, 90, 3), np.uint8)
    ys, xs = np.mgrid[0:40, 0:90]
    photo[..., 0] = 255 * np.exp(-((xs - 61.0) ** 2 + (ys - 13.0) ** 2) / (2 * 2.5**2))
    tensor, affine = predictor.preprocess(photo)
    assert tuple(tensor.shape) == (3, SIZE, SIZE)
    dot = tensor[0].numpy()
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    centroid = [(dot * cols).sum() / dot.sum(), (dot * rows).sum() / dot.sum()]
    np.testing.assert_allclose(geometry.apply(affine, np.array([61.0, 13.0])), centroid, atol=0.15)


def test_csv_overlays_formats_video_and_a_corrupt_image(run_dir, tmp_path):
    images = synthetic_images(5)
    write_images(tmp_path / "in", images[:3])
    write_images(tmp_path / "in" / "nested", images[3:], names=["UPPER.PNG", "b.Jpg"])
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "in" / "notes.txt").write_text("not an image: not an input")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    for image in synthetic_images(11):
        writer.write(image[:, :, ::-1])
    writer.release()

    summary = predict_inputs(
        run_dir,
        [str(tmp_path / "in"), str(video)],
        tmp_path / "out",
        formats=("dlc", "coco"),
        every=3,
        start=1,
        workers=0,
    )
    out = tmp_path / "out"
    rows = read_rows(out / "predictions.csv")
    assert list(rows[0])[:3] == ["file", "frame", "status"]
    assert list(rows[0])[3:] == [f"{n}_{c}" for n in NAMES for c in ("x", "y", "score", "radius")]
    image_rows = [row for row in rows if row["frame"] == ""]
    frame_rows = [row for row in rows if row["frame"] != ""]
    assert len(image_rows) == 5 and {os.path.basename(r["file"]) for r in image_rows} >= {"UPPER.PNG", "b.Jpg"}
    assert [int(row["frame"]) for row in frame_rows] == [1, 4, 7, 10]
    assert summary["skipped"] == 1 and summary["predicted"] == 9
    skipped = read_rows(out / "skipped.csv")
    assert len(skipped) == 1 and skipped[0]["file"].endswith("broken.png") and "corrupt" in skipped[0]["reason"]
    assert all(0 <= float(row["nose_score"]) <= 1 for row in rows)
    # train.py calibrated the model: every prediction carries its uncertainty radius (kp.calibration)
    assert all(0 < float(row[f"{name}_radius"]) < SIZE for row in rows for name in NAMES)

    pictures = sorted(p.name for p in (out / "overlays").glob("*.png"))
    assert pictures == ["0.png", "1.png", "2.png", "UPPER.png", "b.png"]
    overlay = cv2.imread(str(out / "overlays" / "0.png"))
    assert overlay.shape == (SIZE, SIZE, 3) and np.abs(overlay.astype(int) - images[0][:, :, ::-1]).sum() > 0
    annotated = cv2.VideoCapture(str(out / "overlays" / "clip.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 4

    dlc = pd.read_csv(out / "CollectedData_kp.csv", header=[0, 1, 2], index_col=0)  # as DeepLabCut reads it
    assert dlc.columns.get_level_values(1).unique().tolist() == NAMES and len(dlc) == 9
    assert "clip/img00004.png" in dlc.index
    coco = json.loads((out / "predictions_coco.json").read_text())
    assert len(coco) == 9 and all(len(entry["keypoints"]) == 15 for entry in coco)
    first = image_rows[0]
    assert coco[0]["keypoints"][:3] == pytest.approx(
        [float(first["left_eye_x"]), float(first["left_eye_y"]), float(first["left_eye_score"])], abs=1e-3
    )


def test_flip_test_predictions_stay_on_the_keypoints(run_dir):
    predictor = kp.load(run_dir)
    images = synthetic_images(16)
    plain, plain_scores = predictor.predict(images)
    flipped, flip_scores = predictor.predict(images, flip=True)
    assert np.median(np.linalg.norm(flipped - plain, axis=-1)) < 1.0
    assert (flip_scores <= plain_scores + 0.05).mean() > 0.9  # agreement only lowers the score (averaging aside)


def test_faces_are_found_cropped_and_mapped_back(run_dir, tmp_path):
    faces_dir = shared_data("facial68") / "images"
    face = cv2.imread(str(sorted(faces_dir.iterdir())[0]))
    rng = np.random.default_rng(0)
    photo = rng.integers(90, 110, size=(480, 900, 3), dtype=np.uint8)
    height, width = face.shape[:2]
    photo[100 : 100 + height, 50 : 50 + width] = face
    photo[150 : 150 + height, 500 : 500 + width] = face
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "two_faces.png"), photo)
    cv2.imwrite(str(folder / "no_face.png"), rng.integers(0, 255, size=(240, 320, 3), dtype=np.uint8))

    predictor = kp.load(run_dir)
    predictor.spec.face_crop = [2.0, 0.0]  # the synthetic model stands in for a face model
    summary = predict_inputs(predictor, [str(folder)], tmp_path / "out", detect="faces", workers=0)
    rows = read_rows(tmp_path / "out" / "predictions.csv")
    found = [row for row in rows if row["status"] == "ok"]
    assert [row["face"] for row in found] == ["0", "1"] and summary["no_face"] == 1
    assert [row["status"] for row in rows if row["file"].endswith("no_face.png")] == ["no face"]
    for row, (x0, y0) in zip(found, [(50, 100), (500, 150)]):
        box = [int(row[k]) for k in ("box_x", "box_y", "box_w", "box_h")]
        assert x0 <= box[0] + box[2] / 2 <= x0 + width and y0 <= box[1] + box[3] / 2 <= y0 + height
        xs = [float(row[f"{n}_x"]) for n in NAMES]
        # the keypoints come back in the photo's pixels, inside the crop around this face
        assert box[0] + box[2] / 2 - box[2] <= np.mean(xs) <= box[0] + box[2] / 2 + box[2]


def test_face_detection_needs_a_face_model(run_dir, tmp_path):
    write_images(tmp_path / "in", synthetic_images(1))
    with pytest.raises(InputError, match="--detect faces needs a face-landmark model"):
        predict_inputs(run_dir, [str(tmp_path / "in")], tmp_path / "out", detect="faces", workers=0)


def test_bad_model_paths_and_inputs_are_one_line_errors(run_dir, tmp_path):
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(ModelLoadError, match="no checkpoint"):
        kp.load(tmp_path / "empty_run")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="junk.ckpt: not a checkpoint"):
        kp.load(tmp_path / "junk.ckpt")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no images"):
        predict_inputs(run_dir, [str(tmp_path / "nothing")], tmp_path / "out", workers=0)
    for args in ([str(tmp_path / "empty_run"), str(tmp_path)], [str(run_dir), str(tmp_path / "missing*.png")]):
        result = subprocess.run(
            [sys.executable, "-m", "kp", "predict", *args, "--out", str(tmp_path / "o")],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(("model error: ", "data error: "))
        assert len(result.stderr.strip().splitlines()) == 1


def test_flip_test_in_training_metrics(tmp_path, monkeypatch):
    """metrics.flip=true: every validation and test batch goes through flip_test, and the metrics come out of it."""
    batches = []

    def counting_flip_test(*args):
        batches.append(len(args[1]["keypoints"]))
        return flip_test(*args)

    monkeypatch.setattr(kp.module, "flip_test", counting_flip_test)
    cfg = compose_config(
        "debug=fast_dev_run",
        "data.dataset.sizes={train:8,val:8,test:8}",
        "data.batch_size=4",
        "model.backbone.width=4",
        "metrics.flip=true",
        "callbacks.progress_bar=null",
        output_dir=tmp_path,
    )
    train(cfg)
    assert batches == [4, 4]  # fast_dev_run: one validation batch and one test batch
    assert np.isfinite(json.loads((tmp_path / "metrics.json").read_text())["test/nme"])


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_an_onnx_export_predicts_the_checkpoints_csv(run_dir, tmp_path, flip):
    model = tmp_path / "model.onnx"
    export(kp.load(run_dir), "onnx", model, flip=flip)
    write_images(tmp_path / "images", synthetic_images(5) + [np.zeros((30, 70, 3), np.uint8)])  # any size
    flags = ["--flip"] if flip else []
    for source, out in [(run_dir, "checkpoint"), (model, "onnx")]:
        main_predict(
            [
                str(source),
                str(tmp_path / "images"),
                "--out",
                str(tmp_path / out),
                "--no-overlays",
                "--workers",
                "0",
                *flags,
            ]
        )
    expected, rows = (
        read_rows(tmp_path / "checkpoint" / "predictions.csv"),
        read_rows(tmp_path / "onnx" / "predictions.csv"),
    )
    assert len(rows) == 6 and [row["file"] for row in rows] == [row["file"] for row in expected]
    for row, want in zip(rows, expected):
        assert row["status"] == want["status"] == "ok"
        for name in NAMES:  # 0.01 px parity, plus the CSV's rounding to 3 decimals
            assert abs(float(row[f"{name}_x"]) - float(want[f"{name}_x"])) <= 0.011
            assert abs(float(row[f"{name}_y"]) - float(want[f"{name}_y"])) <= 0.011
            assert abs(float(row[f"{name}_score"]) - float(want[f"{name}_score"])) <= 2e-4


def test_inputs_and_options_in_any_order(monkeypatch):
    calls = []
    monkeypatch.setattr("kp.predict.predict.predict_inputs", lambda *args, **options: calls.append((args, options)))
    main_predict(["model", "a.png", "--out", "o", "b.png", "--flip", "c.mp4", "--every", "2"])
    (model, inputs, out), options = calls[0]
    assert (model, inputs, str(out), options["flip"]) == ("model", ["a.png", "b.png", "c.mp4"], "o", True)


class Crash(Exception):
    pass


def test_a_killed_job_resumes_to_the_uninterrupted_result(run_dir, tmp_path, monkeypatch):
    """The job dies in its fourth batch, its last CSV line cut short; --resume predicts what is missing only, and
    predictions.csv, skipped.csv and the overlay video equal those of a run that never stopped."""
    write_images(tmp_path / "in", synthetic_images(3))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    for image in synthetic_images(9):
        writer.write(image[:, :, ::-1])
    writer.release()
    predictor = kp.load(run_dir)
    inputs = [str(tmp_path / "in"), str(video)]
    options = {"batch_size": 2, "workers": 0}
    predict_inputs(predictor, inputs, tmp_path / "whole", **options)

    predict = predictor.predict_with_radius
    calls = []

    def crash_in_the_fourth_batch(*args):
        calls.append(len(args[0]))
        if len(calls) == 4:
            raise Crash
        return predict(*args)

    monkeypatch.setattr(predictor, "predict_with_radius", crash_in_the_fourth_batch)
    with pytest.raises(Crash):
        predict_inputs(predictor, inputs, tmp_path / "out", **options)
    csv_path = tmp_path / "out" / "predictions.csv"
    before = read_rows(csv_path)
    assert len(before) == 3 + 2  # three images, the video's frames 0 and 1 (the broken image: skipped, no row)
    text = csv_path.read_text()
    csv_path.write_text(text[: len(text) - 20])  # the kill cut the last line short
    calls.clear()
    monkeypatch.setattr(predictor, "predict_with_radius", lambda *args: calls.append(len(args[0])) or predict(*args))
    summary = predict_inputs(predictor, inputs, tmp_path / "out", resume=True, **options)
    # Kept: three images and the broken one's skip; frame 1 was cut short, frame 0 (then the last written) is redone.
    assert summary["resumed"] == 4 and sum(calls) == 9
    for name in ("predictions.csv", "skipped.csv"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "whole" / name).read_text()
    annotated = cv2.VideoCapture(str(tmp_path / "out" / "overlays" / "clip.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 9
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "predictions.csv").write_text("file,frame,status,paw_x,paw_y,paw_score,paw_radius\n")
    with pytest.raises(InputError, match="predictions.csv: its columns are not this model's"):
        predict_inputs(predictor, inputs, tmp_path / "other", resume=True, **options)


def test_predict_smooth_writes_both_and_the_video_shows_the_smoothed_points(run_dir, tmp_path, monkeypatch):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    for image in synthetic_images(12):
        writer.write(image[:, :, ::-1])
    writer.release()
    drawn = []
    monkeypatch.setattr(
        "kp.predict.writers.Overlays._picture", lambda self, image, rows: drawn.append(rows[0]["keypoints"]) or image
    )
    main_predict([str(run_dir), str(video), "--out", str(tmp_path / "out"), "--smooth", "kalman", "--workers", "0"])
    out = tmp_path / "out"
    raw, smoothed = read_rows(out / "predictions.csv"), read_rows(out / "predictions_smoothed.csv")
    assert list(raw[0]) == list(smoothed[0]) and len(raw) == len(smoothed) == 12
    assert json.loads((out / "predictions.json").read_text()) == {"alpha": 0.1, "flip": False}
    assert (out / "predictions_smoothing" / "nose.png").is_file() and (out / "predictions_smoothing" / "report.md")
    nose = np.array([[float(row["nose_x"]), float(row["nose_y"])] for row in smoothed if row["nose_x"]])
    shown = np.array([points[2] for points in drawn])
    np.testing.assert_allclose(shown[-len(nose) :], nose, atol=1e-3)  # the overlay drew the smoothed nose
    assert int(cv2.VideoCapture(str(out / "overlays" / "clip.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_smoothing_with_every_score_below_the_threshold_is_one_line_not_an_empty_csv(run_dir, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    for image in synthetic_images(6):
        writer.write(image[:, :, ::-1])
    writer.release()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main_predict([str(run_dir), str(video), "--out", str(out), "--smooth", "kalman", "--threshold", "1"])
    message = str(exit_.value)
    assert "every score is below --threshold 1 (the highest is 0." in message and "lower --threshold" in message
    assert "\n" not in message
    highest = max(float(row["nose_score"]) for row in read_rows(out / "predictions.csv"))
    assert f"(the highest is {highest:.3f})" in message  # the raw predictions stay, nothing smoothed or drawn
    assert not (out / "predictions_smoothed.csv").exists() and not (out / "overlays" / "clip.mp4").exists()


def test_an_empty_video_is_a_one_line_error(run_dir, tmp_path):
    video = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE)).release()
    with pytest.raises(SystemExit) as exit_:
        main_predict([str(run_dir), str(video), "--out", str(tmp_path / "out"), "--smooth", "kalman"])
    assert "empty.mp4" in str(exit_.value) and "\n" not in str(exit_.value)


def test_overlay_leaves_out_points_a_smoothed_track_has_not_reached():
    """A smoothed track is NaN before its first confident frame: that point and its skeleton lines are not drawn;
    the other points are."""
    meta = SyntheticKeypoints("train", sizes={"train": 1, "val": 1, "test": 1}, image_size=32).meta
    image = np.zeros((32, 32, 3), np.uint8)
    points = np.array([[[8.0, 8.0], *[[np.nan, np.nan]] * (meta.num_keypoints - 1)]])
    drawn = draw(image, points, np.ones((1, meta.num_keypoints)), meta, threshold=0.3)
    changed = np.argwhere(drawn.any(axis=2))
    assert len(changed) and np.abs(changed - [8, 8]).max() <= 4  # only around the one finite point
