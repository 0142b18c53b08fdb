"""Export: every model preset with both targets exports to ONNX (checker passes) and TorchScript and keeps keypoint
parity with PyTorch; the metadata describes the model; the command writes its files and report and fails on missed
parity; a model that cannot export names the model and the operator; an ONNX file predicts like its checkpoint
through kp.load, without running torch."""

from __future__ import annotations

import csv
import json
import re

import cv2
import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

import kp
import kp.export.parity
from kp import calibration
from kp.build import build
from kp.cli.export import main
from kp.cli.predict import main as predict_main
from kp.codecs import HeatmapCodec
from kp.config import CONF_DIR
from kp.errors import ExportError, ModelLoadError
from kp.export.export import RADIUS_PARITY, export, run
from kp.export.graph import ExportGraph
from kp.export.parity import (
    LATENCY_BUDGET_S,
    PARITY_PX,
    WARM_UP,
    difference,
    eager_runner,
    median_ms,
    onnx_runner,
    outputs_of,
    synthetic_images,
    torchscript_runner,
)
from tests.helpers import TINY_DATA, compose_config, random_weights, shared_data

MODELS = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))
NARROW = {"hourglass_seed": ["model.backbone.width=8"], "cards_unet": ["model.backbone.width=8", "loss=multitask"]}


def tiny_checkpoint(tmp_path, *overrides: str):
    """An untrained model on 32×32 synthetic images, saved as a kp checkpoint (what a run writes)."""
    cfg = random_weights(compose_config(*TINY_DATA, "data.dataset.image_size=32", *overrides, output_dir=tmp_path))
    _, module = build(cfg)
    module.net.train()(torch.rand(4, *module.spec["input_shape"]))  # BatchNorm statistics other than the identity
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, path)
    return path


def check_parity(graph: ExportGraph, runner, images: torch.Tensor, batch=None) -> dict:
    parity = difference(graph, outputs_of(eager_runner(graph), images, batch), outputs_of(runner, images, batch))
    assert parity["max_px"] <= PARITY_PX, parity
    return parity


@pytest.mark.parametrize("target", ["heatmap", "coords"])
@pytest.mark.parametrize("name", MODELS)
def test_every_model_exports_with_parity(name, target, tmp_path):
    predictor = kp.load(tiny_checkpoint(tmp_path, f"model={name}", f"target={target}", *NARROW.get(name, [])))
    images = synthetic_images(predictor.input_shape, 6)  # a batch of 6: the graphs were traced with 2
    onnx_graph, _ = export(predictor, "onnx", tmp_path / "model.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")), full_check=True)
    check_parity(onnx_graph, onnx_runner(tmp_path / "model.onnx"), images)
    ts_graph, _ = export(predictor, "torchscript", tmp_path / "model.pt")
    check_parity(ts_graph, torchscript_runner(tmp_path / "model.pt"), images)
    keypoints = outputs_of(onnx_runner(tmp_path / "model.onnx"), images, None)[0]
    assert keypoints.shape == (6, 5, 2) and np.isfinite(keypoints).all()


@pytest.mark.parametrize("decoder", ["argmax", "average", "quarter", "dark"])
def test_every_heatmap_decoder_exports_and_flip_too(decoder, tmp_path):
    predictor = kp.load(
        tiny_checkpoint(
            tmp_path, "model=unet", "model.backbone.width=4", f"target.decoder={decoder}", "target.blur_kernel=3"
        )
    )
    graph, in_graph = export(predictor, "onnx", tmp_path / "model.onnx", flip=True)
    assert in_graph == decoder  # the run's own decoder: it exports
    check_parity(graph, onnx_runner(tmp_path / "model.onnx"), synthetic_images(predictor.input_shape, 4))


def test_raw_outputs_of_the_card_model(tmp_path):
    predictor = kp.load(tiny_checkpoint(tmp_path, "model=cards_unet", "model.backbone.width=8", "loss=multitask"))
    graph, _ = export(predictor, "onnx", tmp_path / "raw.onnx", decode=False)
    assert graph.output_names == ["keypoints", "visibility", "count"]
    images = synthetic_images(predictor.input_shape, 3)
    heatmaps, visibility, count = onnx_runner(tmp_path / "raw.onnx")(images)
    assert heatmaps.shape == (3, 5, 16, 16) and visibility.shape == (3, 5) and count.shape == (3,)
    expected = predictor.module.net(images)
    np.testing.assert_allclose(count, expected["count"].detach().numpy(), atol=1e-5)
    check_parity(graph, onnx_runner(tmp_path / "raw.onnx"), images)  # keypoints decoded from the exported heatmaps


def test_onnx_metadata_describes_the_model(tmp_path):
    predictor = kp.load(tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords"))
    export(predictor, "onnx", tmp_path / "model.onnx", batch=4)
    model = onnx.load(str(tmp_path / "model.onnx"))
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(props["keypoint_names"]) == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    assert json.loads(props["flip_pairs"]) == [[0, 1], [3, 4]]
    assert json.loads(props["skeleton"]) == [[0, 1], [0, 2], [1, 2], [2, 3], [2, 4], [3, 4]]
    assert json.loads(props["input_shape"]) == [3, 32, 32] and props["channels"] == "rgb"
    assert "255" in json.loads(props["preprocessing"])["about"]
    assert json.loads(props["outputs"]) == ["keypoints", "scores", "difficulty"] and json.loads(props["batch"]) == 4
    assert json.loads(props["calibration"]) is None  # an uncalibrated checkpoint
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_value == 4  # --batch 4: a fixed batch size in the graph


def test_a_decoder_that_does_not_export_is_replaced_by_the_closest_that_does(tmp_path, monkeypatch):
    predictor = kp.load(tiny_checkpoint(tmp_path, "model=unet", "model.backbone.width=4"))  # decoder: dark
    dark = HeatmapCodec._dark

    def dark_unless_exporting(self, heatmaps, peak):
        if torch.jit.is_tracing():
            raise torch.onnx.errors.UnsupportedOperatorError("aten::fake_hessian", 17, "")
        return dark(self, heatmaps, peak)

    monkeypatch.setattr(HeatmapCodec, "_dark", dark_unless_exporting)
    graph, decoder = export(predictor, "onnx", tmp_path / "model.onnx")
    assert decoder == "quarter" and graph.codec.decoder == "quarter" and predictor.module.codec.decoder == "dark"
    props = {prop.key: prop.value for prop in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["decoder"]) == "quarter"


def test_a_model_that_cannot_export_names_the_model_and_the_operator(tmp_path, monkeypatch):
    predictor = kp.load(tiny_checkpoint(tmp_path, "model=resnet", "target=coords"))

    def unsupported(*args, **kwargs):
        raise torch.onnx.errors.UnsupportedOperatorError("aten::fancy_op", 17, "")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(ExportError, match=re.escape("ResNet (coords target, from ") + ".*operator aten::fancy_op"):
        export(predictor, "onnx", tmp_path / "model.onnx")


def test_the_command_writes_models_and_report(tmp_path, capsys, monkeypatch):
    shares = []
    timed = kp.export.parity.median_ms
    monkeypatch.setattr(kp.export.parity, "median_ms", lambda *args: shares.append(args[3]) or timed(*args))
    checkpoint = tiny_checkpoint(tmp_path, "model=unet", "model.backbone.width=4")
    main([str(checkpoint), "--out", str(tmp_path / "export"), "--flip"])
    # Three runtimes × two batch sizes share the latency budget.
    assert shares == [pytest.approx(LATENCY_BUDGET_S / 6)] * 6
    out = tmp_path / "export"
    assert (out / "model.onnx").is_file() and (out / "model.torchscript.pt").is_file()
    report = json.loads((out / "export_report.json").read_text())
    assert report["images"] == 64 and "synthetic faces" in report["source"] and report["flip"] is True
    for fmt in ("onnx", "torchscript"):
        assert report["formats"][fmt]["parity"]["ok"] and report["formats"][fmt]["parity"]["max_px"] <= PARITY_PX
        assert report["formats"][fmt]["size_bytes"] == (out / report["formats"][fmt]["file"]).stat().st_size
    assert set(report["latency_ms"]) == {"1", "32"}
    assert set(report["latency_ms"]["32"]) == {"pytorch", "torchscript", "onnxruntime"}
    assert all(1 <= calls <= 20 for row in report["latency_calls"].values() for calls in row.values())
    assert report["parameters"] == sum(p.numel() for p in kp.load(checkpoint).module.net.parameters())
    markdown = (out / "export_report.md").read_text()
    assert "| onnx | model.onnx |" in markdown and "| 32 |" in markdown and "ok |" in markdown
    assert "parity within 0.01 px" in capsys.readouterr().out


class Clock:
    """A clock that each runner call moves on by `cost` seconds: call counts without timing anything."""

    def __init__(self, cost: float):
        self.now, self.cost, self.calls = 0.0, cost, 0

    def __call__(self) -> float:
        return self.now

    def runner(self, images) -> None:
        self.now += self.cost
        self.calls += 1


@pytest.mark.parametrize(
    "cost, calls, timed",
    [
        (0.01, WARM_UP + 20, 20),  # fast: the full warm-up and 20 timed calls, 0.23 s
        (1.0, WARM_UP + 2, 2),  # 3 s warming up, 2 timed calls to spend the 5 s
        (11.7, 2, 1),  # the slow DLC case: one warm-up call spends the budget, one call is timed
    ],
)
def test_latency_calls_stop_when_the_budget_is_spent(cost, calls, timed):
    clock = Clock(cost)
    ms, n = median_ms(clock.runner, None, 20, 5.0, clock)
    assert (clock.calls, n) == (calls, timed) and ms == pytest.approx(1000 * cost)


def test_no_latency_keeps_the_parity_check(tmp_path, monkeypatch):
    monkeypatch.setattr(kp.export.parity, "median_ms", lambda *args: pytest.fail("timed with --no-latency"))
    checkpoint = tiny_checkpoint(tmp_path, "model=unet", "model.backbone.width=4")
    main([str(checkpoint), "--out", str(tmp_path / "export"), "--format", "onnx", "--no-latency"])
    report = json.loads((tmp_path / "export" / "export_report.json").read_text())
    assert report["latency_ms"] == {} and report["formats"]["onnx"]["parity"]["ok"]
    assert "Latency not measured" in (tmp_path / "export" / "export_report.md").read_text()
    with pytest.raises(SystemExit):
        main([str(checkpoint), "--latency-budget", "0"])


def run_dir_of(tmp_path, *overrides: str):
    """A run directory as train.py leaves it (config and a best checkpoint), from an untrained model."""
    run_dir = tmp_path / "run"
    cfg = compose_config(*overrides, output_dir=run_dir)
    _, module = build(cfg)
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, run_dir / "checkpoints" / "epoch_000.ckpt")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml({k: cfg[k] for k in cfg if k != "hydra"}))
    return run_dir


def test_parity_is_measured_on_the_runs_validation_split(tmp_path):
    run_dir = run_dir_of(tmp_path, *TINY_DATA, "data.dataset.image_size=32", "model=simple_cnn", "target=coords")
    report = run(run_dir, ["onnx"], latency_batches=(1,), runs=1)
    assert (run_dir / "export" / "model.onnx").is_file()  # a run's exports go to RUN/export
    assert report["images"] == 32  # the whole validation split: it has fewer than 64 images
    assert report["source"] == "32 images of the validation split of kp.data.synthetic.SyntheticKeypoints"


def test_grey_real_faces_export_with_parity(tmp_path):
    root = shared_data("facial_kaggle_format")
    run_dir = run_dir_of(tmp_path, "data=facial", f"data.dataset.root={root}", "model.backbone.width=4")
    report = run(run_dir, ["onnx", "torchscript"], latency_batches=(1,), runs=1)
    assert report["source"] == "60 images of the validation split of kp.data.facial.FacialKeypoints"  # all of it
    assert all(row["parity"]["ok"] for row in report["formats"].values())
    onnx_predictor = kp.load(run_dir / "export" / "model.onnx")
    assert onnx_predictor.input_shape == (1, 96, 96) and len(onnx_predictor.meta.names) == 15


def test_the_command_fails_saying_by_how_much_parity_was_missed(tmp_path, monkeypatch):
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    real_runner = kp.export.parity.onnx_runner

    def off_by_half_a_pixel(path):  # an exporter that got x wrong by 0.5 px
        run_onnx = real_runner(path)
        return lambda images: [run_onnx(images)[0] + np.array([0.5, 0.0], np.float32), run_onnx(images)[1]]

    monkeypatch.setattr(kp.export.parity, "onnx_runner", off_by_half_a_pixel)
    with pytest.raises(ExportError, match=r"parity missed \(onnx: keypoints differ by up to 0.5 px \(limit 0.01 px\)"):
        run(checkpoint, ["onnx"], tmp_path / "export", latency_batches=(1,), runs=1, max_images=4)
    report = json.loads((tmp_path / "export" / "export_report.json").read_text())
    assert report["formats"]["onnx"]["parity"]["ok"] is False
    assert "MISSED" in (tmp_path / "export" / "export_report.md").read_text()


def test_the_command_refuses_flip_without_decode(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    with pytest.raises(SystemExit, match="--flip .* needs --decode"):
        main([str(checkpoint), "--no-decode", "--flip", "--out", str(tmp_path / "export")])


def test_onnx_file_predicts_like_its_checkpoint_without_torch(tmp_path, monkeypatch):
    checkpoint = tiny_checkpoint(tmp_path, "model=unet", "model.backbone.width=4")
    export(kp.load(checkpoint), "onnx", tmp_path / "model.onnx", batch=2)  # fixed batch: 5 images are padded to 6
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24 + 8 * i, 40, 3), dtype=np.uint8) for i in range(5)]  # any size: letterboxed
    torch_predictor = kp.load(checkpoint)
    expected, expected_scores = torch_predictor.predict(images)
    affines = torch_predictor.prepare(images)[1]
    expected_signal = torch_predictor.pose_prior_errors(expected, affines)["pose_pca"]

    onnx_predictor = kp.load(tmp_path / "model.onnx")
    assert onnx_predictor.input_shape == (3, 32, 32) and onnx_predictor.meta.names[0] == "left_eye"

    def no_torch_model(*args, **kwargs):
        raise AssertionError("a torch module ran")

    monkeypatch.setattr(torch.nn.Module, "__call__", no_torch_model)
    keypoints, scores = onnx_predictor.predict(images)
    np.testing.assert_allclose(keypoints, expected, atol=PARITY_PX)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    # the pose priors travel in the metadata: the same label-free error signal as the checkpoint's
    np.testing.assert_allclose(onnx_predictor.pose_prior_errors(expected, affines)["pose_pca"], expected_signal)
    with pytest.raises(ModelLoadError, match="exported without test-time flip: export it again with --flip"):
        onnx_predictor.predict(images, flip=True)


def test_kp_predict_says_when_flip_does_not_match_the_export(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    export(kp.load(checkpoint), "onnx", tmp_path / "flip.onnx", flip=True)
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(SystemExit, match="flip.onnx was exported with test-time flip: predict with --flip"):
        predict_main([str(tmp_path / "flip.onnx"), str(image), "--out", str(tmp_path / "out"), "--workers", "0"])
    assert not (tmp_path / "out").exists()  # refused before a header-only predictions.csv or overlays/ is written


def test_onnx_files_that_kp_cannot_use_are_refused(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path, "model=simple_cnn", "target=coords")
    export(kp.load(checkpoint), "onnx", tmp_path / "raw.onnx", decode=False)
    with pytest.raises(ModelLoadError, match="--no-decode.*export it again with --decode"):
        kp.load(tmp_path / "raw.onnx")
    export(kp.load(checkpoint), "onnx", tmp_path / "model.onnx")
    with pytest.raises(SystemExit, match="model.onnx is an exported file already"):
        main([str(tmp_path / "model.onnx")])
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="junk.onnx: not a readable ONNX model"):
        kp.load(tmp_path / "junk.onnx")


def calibrated_checkpoint(tmp_path):
    """tiny_checkpoint with a calibration for both flip modes, as kp evaluate stores it."""
    checkpoint = tiny_checkpoint(tmp_path, "model=unet", "model.backbone.width=4")
    for flip in (False, True):
        scale = [1.5, 2.0, 2.5, 3.0, 0.5] if flip else [0.7, 1.1, 1.3, 0.9, 2.0]
        calibration.store(checkpoint, calibration.Calibration(0.1, flip, scale, [40] * 5, [False] * 5))
    return checkpoint


def predict_csv(model, images, out, *flags: str) -> list[dict]:
    predict_main([str(model), str(images), "--out", str(out), "--no-overlays", "--workers", "0", *flags])
    with open(out / "predictions.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_an_onnx_file_keeps_the_checkpoints_calibrated_radius(tmp_path, flip):
    checkpoint = calibrated_checkpoint(tmp_path)
    flags = ["--flip"] if flip else []
    main([str(checkpoint), "--out", str(tmp_path / "export"), "--format", "onnx", "--no-latency", *flags])
    report = json.loads((tmp_path / "export" / "export_report.json").read_text())
    radius = report["formats"]["onnx"]["radius"]
    assert radius["ok"] and radius["max_relative"] <= radius["limit_relative"] == RADIUS_PARITY
    assert "calibrated radius within" in (tmp_path / "export" / "export_report.md").read_text()
    props = {prop.key: prop.value for prop in onnx.load(str(tmp_path / "export" / "model.onnx")).metadata_props}
    assert json.loads(props["calibration"])["scale"] == kp.load(checkpoint).calibrations[flip].scale

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i, shape in enumerate([(32, 32, 3), (40, 56, 3), (64, 48, 3)]):  # letterboxed: the radius is rescaled too
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), rng.integers(0, 256, shape, dtype=np.uint8))
    expected = predict_csv(checkpoint, tmp_path / "images", tmp_path / "checkpoint", *flags)
    rows = predict_csv(tmp_path / "export" / "model.onnx", tmp_path / "images", tmp_path / "onnx", *flags)
    names = kp.load(checkpoint).meta.names
    assert len(rows) == 3 and [row["file"] for row in rows] == [row["file"] for row in expected]
    for row, want in zip(rows, expected):
        for name in names:  # the parity limit, plus the CSV's rounding to 3 decimals
            want_radius = float(want[f"{name}_radius"])
            assert (
                want_radius > 0
                and abs(float(row[f"{name}_radius"]) - want_radius) <= RADIUS_PARITY * want_radius + 1e-3
            )


def test_an_onnx_file_exported_before_the_radius_still_predicts_and_says_to_export_again(tmp_path, capsys):
    checkpoint = calibrated_checkpoint(tmp_path)
    export(kp.load(checkpoint), "onnx", tmp_path / "model.onnx")
    old = onnx.load(str(tmp_path / "model.onnx"))  # what kp export wrote before: no difficulty, no calibration
    old.graph.output.remove(next(output for output in old.graph.output if output.name == "difficulty"))
    old.metadata_props.remove(next(prop for prop in old.metadata_props if prop.key == "calibration"))
    onnx.save(old, str(tmp_path / "old.onnx"))

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((32, 32, 3), 128, np.uint8))
    expected = predict_csv(tmp_path / "model.onnx", images, tmp_path / "new")
    rows = predict_csv(tmp_path / "old.onnx", images, tmp_path / "old")
    assert rows[0]["nose_x"] == expected[0]["nose_x"] and rows[0]["nose_radius"] == "" != expected[0]["nose_radius"]
    said = " ".join(capsys.readouterr().err.split())  # rich wraps the line at the console's width
    assert said.count("no uncertainty radius") == 1  # the new file's run says nothing: it has the radius
    assert "old.onnx was exported before kp kept the radius in ONNX files: export it again" in said
