"""kp.evaluation.evaluate and the report train.py writes: files and their content, agreement with train.py's test
metrics,
honest missing values, calibration stored with the checkpoint; kp.viz.features."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from torch.utils.data import Dataset

from kp.build import build
from kp.cli import evaluate as evaluate_command
from kp.errors import ConfigError, InputError
from kp.evaluation import evaluate, report, scores
from kp.inference.load import load
from kp.module import KeypointModule
from kp.train.loop import train
from kp.unsupervised_losses import NO_PRIORS
from kp.viz.features import filter_montage, plot_features, stage_outputs
from tests.helpers import TINY_DATA, compose_config, shared_data, write_run_config

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]
NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small model trained for two epochs, its run directory as Hydra leaves it."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config(*TINY_DATA, "trainer.max_epochs=2", "model.backbone.width=8", *QUIET, output_dir=run_dir)
    train(cfg)
    write_run_config(cfg, run_dir)
    return run_dir


def test_train_writes_the_report_with_its_test_metrics(run):
    test_metrics = json.loads((run / "metrics.json").read_text())
    out = run / "eval" / "test"
    reported = json.loads((out / "metrics.json").read_text())
    compared = [key for key in test_metrics if key.startswith("test/") and "loss" not in key]
    assert len(compared) == 4 * 6  # rmse, nme, pck_0.05, pck_0.1: overall and per keypoint
    for key in compared:
        assert reported[key] == pytest.approx(test_metrics[key], rel=1e-6, abs=1e-9), key
    assert reported["checkpoint"] == test_metrics["best_checkpoint"] and reported["samples"] == 32
    page = (out / "report.md").read_text()
    for picture in ("pck_curve.png", "keypoint_errors.png", "error_vs_score.png", "worst.png"):
        assert (out / picture).stat().st_size > 5_000
        assert f"]({picture})" in page
    assert not (out / "counts.png").exists()  # no count head
    assert "| left_eye |" in page and "Coverage here" in page
    # The calibration went into the best checkpoint: kp.load hands it over.
    assert load(run).calibrations[False].to_dict() == reported["calibration"]


def test_evaluate_command_writes_consistent_files(run, tmp_path, capsys):
    out = tmp_path / "val"
    evaluate_command.main([str(run), "--split", "val", "--out", str(out)])
    assert str(out / "report.md") in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    # The best checkpoint was chosen by its validation NME: evaluate finds the same number.
    assert metrics["val/nme"] == pytest.approx(json.loads((run / "metrics.json").read_text())["best/val/nme"], rel=1e-6)

    errors = pd.read_csv(out / "errors.csv")
    assert len(errors) == 32 * 5
    assert list(errors.columns) == [
        "split",
        "sample",
        "image",
        "frame",
        "keypoint",
        "visible",
        "gt_x",
        "gt_y",
        "pred_x",
        "pred_y",
        "error_px",
        "error_source_px",
        "score",
        "radius_px",
        "pose_pca_px",  # the run's pose prior (tests/test_pose_priors.py); no views in the names: no multiview_pca
    ]
    assert errors["image"].str.startswith("synthetic/val/").all() and list(errors["keypoint"][:5]) == NAMES
    seen = errors[errors["visible"]]
    assert np.hypot(seen["pred_x"] - seen["gt_x"], seen["pred_y"] - seen["gt_y"]).to_numpy() == pytest.approx(
        seen["error_px"].to_numpy(), abs=1e-4
    )
    assert errors.loc[~errors["visible"], "error_px"].isna().all()
    assert metrics["val/coverage"] == pytest.approx((seen["error_px"] <= seen["radius_px"]).mean())
    worst = seen.groupby("sample")["error_px"].mean().sort_values(kind="stable").index[-3:]  # 32 samples: a tenth is 3
    in_worst = seen[seen["sample"].isin(worst)]
    assert metrics["val/coverage_worst_tenth"] == pytest.approx((in_worst["error_px"] <= in_worst["radius_px"]).mean())
    best = seen.groupby("sample")["error_px"].mean().sort_values(kind="stable").index[:3]
    per_sample = seen.groupby("sample")
    for key, column in (("radius_adaptivity", "radius_px"), ("error_adaptivity", "error_px")):
        median = per_sample[column].median()
        assert metrics[f"val/{key}"] == pytest.approx(median[worst].median() / median[best].median(), rel=1e-5)
    assert metrics["val/median_error_px"] == pytest.approx(seen["error_px"].median(), rel=1e-5)
    # the synthetic images are not resized: source pixels are input pixels
    assert seen["error_source_px"].to_numpy() == pytest.approx(seen["error_px"].to_numpy(), rel=1e-5)
    assert metrics["val/rmse_source_px"] == pytest.approx(metrics["val/rmse"], rel=1e-5)
    assert metrics["val/mean_error_source_px"] == pytest.approx(seen["error_source_px"].mean(), rel=1e-5)
    assert metrics["val/offset_x_px"] == pytest.approx((seen["pred_x"] - seen["gt_x"]).mean(), rel=1e-4, abs=1e-6)
    assert metrics["val/offset_y_px"] == pytest.approx((seen["pred_y"] - seen["gt_y"]).mean(), rel=1e-4, abs=1e-6)

    curve = pd.read_csv(out / "pck_curve.csv")
    assert curve["threshold"].iloc[0] == 0 and curve["threshold"].iloc[-1] == pytest.approx(0.2)
    assert metrics["val/auc"] == pytest.approx(np.trapezoid(curve["pck"], curve["threshold"]) / 0.2)
    assert curve["pck"].is_monotonic_increasing

    table = pd.read_csv(out / "keypoints.csv")
    assert list(table["keypoint"]) == NAMES
    by_keypoint = seen.groupby("keypoint", sort=False)
    assert table["labelled"].tolist() == by_keypoint.size().reindex(NAMES).tolist()
    assert table["mean_px"].to_numpy() == pytest.approx(
        by_keypoint["error_px"].mean().reindex(NAMES).to_numpy(), rel=1e-4
    )
    coverage = by_keypoint.apply(lambda g: (g["error_px"] <= g["radius_px"]).mean()).reindex(NAMES)
    assert table["coverage"].to_numpy() == pytest.approx(coverage.to_numpy())
    assert table["pck_0.1"].tolist() == pytest.approx([metrics[f"val/pck_0.1/{name}"] for name in NAMES])

    # the label-free error signal: the pose prior's error of each prediction, its mean per keypoint over every
    # sample, and how well a sample's mean tracks its mean true error (beside the confidence's)
    predicted = errors[["pred_x", "pred_y"]].to_numpy().reshape(32, 5, 2)
    expected = load(run).pose_prior_errors(predicted)["pose_pca"].reshape(-1)
    assert errors["pose_pca_px"].to_numpy() == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert table["pose_pca_px"].to_numpy() == pytest.approx(
        errors.groupby("keypoint", sort=False)["pose_pca_px"].mean().reindex(NAMES).to_numpy(), rel=1e-4
    )
    assert metrics["val/pose_pca_px"] == pytest.approx(errors["pose_pca_px"].mean(), rel=1e-5)
    labelled = sorted(seen["sample"].unique())
    true_error = seen.groupby("sample")["error_px"].mean()[labelled]
    signal = errors.groupby("sample")["pose_pca_px"].mean()[labelled]
    confidence = 1 - errors.groupby("sample")["score"].mean()[labelled]
    assert metrics["val/pose_pca_spearman"] == pytest.approx(spearmanr(signal, true_error).statistic, abs=1e-6)
    assert metrics["val/score_spearman"] == pytest.approx(spearmanr(confidence, true_error).statistic, abs=1e-6)
    # one keypoint at a time, over the labelled keypoints the prior measures (here: all), beside the confidence's
    for key, column in (
        ("pose_pca_spearman_keypoint", seen["pose_pca_px"]),
        ("pose_pca_spearman_keypoint_score", 1 - seen["score"]),
    ):
        assert metrics[f"val/{key}"] == pytest.approx(spearmanr(column, seen["error_px"]).statistic, abs=1e-6)
    page = (out / "report.md").read_text()
    assert "## Label-free error signal" in page and "| pose_pca_px |" in page
    assert f"**{metrics['val/pose_pca_spearman']:.4g}**" in page
    assert f"keypoint it measures, {metrics['val/pose_pca_spearman_keypoint']:.4g} (the confidence's: " in page
    assert "- `multiview_pca`: not measured: no views in the keypoint names" in page
    assert metrics["pose_priors_absent"] == {"multiview_pca": load(run).pose_priors_absent["multiview_pca"]}


class _Unlabelled(Dataset):
    """The wrapped samples with no keypoint labelled in the first `n_blank` and the keypoint `hidden` nowhere."""

    def __init__(self, base, n_blank: int, hidden: int):
        self.base, self.n_blank, self.hidden = base, n_blank, hidden

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        sample = dict(self.base[index])
        visible = sample["visible"].clone()
        visible[self.hidden] = False
        if index < self.n_blank:
            visible[:] = False
        sample["visible"] = visible
        return sample


def test_missing_metrics_say_why_and_unlabelled_samples_are_listed(run, tmp_path):
    predictor = load(run)
    datamodule, _ = build(compose_config(*TINY_DATA, output_dir=tmp_path))
    datamodule.setup()
    data = _Unlabelled(datamodule.splits["test"], n_blank=3, hidden=NAMES.index("nose"))
    predictions = evaluate.predict_split(predictor, data, flip=False, batch_size=16)
    metrics = report.write(predictions, predictor, data, "test", tmp_path / "out", flip=False)
    assert metrics["unlabelled_samples"] == 3
    assert metrics["unlabelled_ids"] == ["synthetic/test/0", "synthetic/test/1", "synthetic/test/2"]
    for name in ("rmse", "nme", "pck_0.05", "coverage"):
        assert metrics[f"test/{name}/nose"] is None
        assert metrics["missing"][f"test/{name}/nose"] == "no visible nose in the split"
    assert metrics["test/rmse"] is not None and not math.isnan(metrics["test/rmse"])
    text = (tmp_path / "out" / "metrics.json").read_text()
    assert "NaN" not in text
    page = (tmp_path / "out" / "report.md").read_text()
    assert "3 samples have no labelled keypoint" in page and "no visible nose in the split" in page
    assert len(pd.read_csv(tmp_path / "out" / "errors.csv")) == 32 * 5  # listed, with visible = False


def test_flip_evaluation_calibrates_on_the_flip_disagreement_and_stores_it(run, tmp_path):
    metrics = evaluate.evaluate_run(run, "test", flip=True, out=tmp_path / "flip")
    assert metrics["flip"] and metrics["calibration"]["flip"]
    assert set(load(run).calibrations) == {False, True}
    errors = pd.read_csv(tmp_path / "flip" / "errors.csv")
    assert np.isfinite(errors["radius_px"]).all() and (errors["radius_px"] > 0).all()


def test_coordinate_model_with_a_count_head_gets_the_count_figure_and_columns(tmp_path):
    cfg = compose_config(
        "experiment=synthetic_multitask", "target=coords", *TINY_DATA, "model.backbone.width=4", output_dir=tmp_path
    )
    _, module = build(cfg)  # untrained: the report's content, not its quality, is under test
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, tmp_path / "checkpoints" / "epoch_000.ckpt")
    write_run_config(cfg, tmp_path)
    metrics = evaluate.evaluate_run(tmp_path, "val", num_worst=4)
    out = tmp_path / "eval" / "val"
    assert (out / "counts.png").stat().st_size > 5_000 and "counts.png" in (out / "report.md").read_text()
    errors = pd.read_csv(out / "errors.csv")
    per_sample = errors.groupby("sample").first()
    assert metrics["val/count_mae"] == pytest.approx(
        (per_sample["count_pred"] - per_sample["count_true"]).abs().mean(), rel=1e-4
    )
    # A regressed point has no spread (1 px): its radius is the keypoint's calibrated scale × (its surprise + its
    # image's mean surprise), surprise = -log(score clipped to [0.001, 0.99]), all readable from errors.csv.
    surprise = -np.log(errors["score"].clip(1e-3, 0.99))
    difficulty = surprise + surprise.groupby(errors["sample"]).transform("mean")
    scale = errors["keypoint"].map(dict(zip(NAMES, metrics["calibration"]["scale"])))
    assert errors["radius_px"].to_numpy() == pytest.approx((scale * difficulty).to_numpy(), rel=1e-4)


def test_other_data_through_overrides_and_refusals(run, tmp_path):
    metrics = evaluate.evaluate_run(run, "all", out=tmp_path / "new", overrides=["data.dataset.seed=7"])
    assert metrics["samples"] == 64 + 32 + 32  # other images, same keypoints, the three splits
    errors = pd.read_csv(tmp_path / "new" / "errors.csv")
    assert errors.groupby("split", sort=False).size().to_dict() == {"train": 64 * 5, "val": 32 * 5, "test": 32 * 5}
    assert errors["image"].str.startswith("synthetic/").all() and "all/rmse" in metrics
    with pytest.raises(ConfigError, match="expected key=value"):
        evaluate.evaluate_run(run, overrides=["data.dataset.seed"])
    with pytest.raises(ConfigError, match="the model takes"):
        evaluate.evaluate_run(run, out=tmp_path / "big", overrides=["data.dataset.image_size=96"])
    root = shared_data("facial_kaggle_format")
    with pytest.raises(ConfigError, match="same keypoints"):
        evaluate.evaluate_run(
            run, overrides=["data=facial", f"data.dataset.root={root}", f"data.dataset.cache_dir={tmp_path / 'cache'}"]
        )


def test_features_picture_shows_every_stage(run, tmp_path):
    predictor = load(run)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    batch = predictor.preprocess(image)[0][None]
    stages = stage_outputs(predictor.module.net, batch, lambda: predictor.module(batch))
    sizes = [activation.shape[-1] for _, activation in stages]
    assert sizes == [64, 32, 16, 8, 16, 32, 64]  # the UNet's encoder down, its decoder back up
    first = next(m for m in predictor.module.net.modules() if isinstance(m, torch.nn.Conv2d))
    montage = filter_montage(first.weight.detach())
    assert montage.shape == (3 * 4 - 1, 3 * 4 - 1, 3) and montage.min() >= 0 and montage.max() <= 1  # 8 filters 3×3
    path = plot_features(predictor, image, tmp_path / "features.png")
    assert path.stat().st_size > 20_000


def test_errors_in_source_pixels_undo_the_loaders_resize():
    # a frame shrunk to half size (affine scale 0.5): 1 input pixel off is 2 of the frame's pixels
    p = evaluate.SplitPredictions(
        ids=["a", "b"],
        splits=["test"] * 2,
        pred=np.array([[[1.0, 0.0]], [[0.0, 3.0]]]),
        target=np.zeros((2, 1, 2)),
        visible=np.ones((2, 1), bool),
        scores=np.ones((2, 1)),
        difficulty=np.ones((2, 1)),
        pck_norm=np.ones(2),
        source_scale=np.array([0.5, 1.0]),
        count_true=None,
        count_pred=None,
        metrics={},
    )
    assert p.source_errors[:, 0].tolist() == [2.0, 3.0]


def test_adaptivity_of_an_infinite_radius_is_missing_not_a_warning():
    """Too few validation points give an infinite radius (kp.calibration): inf / inf is no ratio."""
    errors, visible = np.random.default_rng(0).uniform(1, 3, (20, 2)), np.ones((20, 2), bool)
    with np.errstate(invalid="raise"):
        assert math.isnan(scores.radius_adaptivity(errors, np.full((20, 2), math.inf), visible))
    assert scores.radius_adaptivity(errors, 2 * errors, visible) == pytest.approx(
        scores.radius_adaptivity(errors, errors, visible)
    )


def test_options_and_overrides_in_any_order(monkeypatch, tmp_path, capsys):
    """The README's order (`RUN --split all --out DIR key=value`) and overrides between options are all accepted."""
    calls = []
    monkeypatch.setattr(evaluate, "evaluate_run", lambda run, **kw: calls.append((run, kw)) or {"report": "r"})
    orders = [
        ["run", "--split", "all", "--out", "o", "data.dataset.root=/x", "data.dataset.seed=3"],
        ["run", "data.dataset.root=/x", "--split", "all", "data.dataset.seed=3", "--out", "o"],
        ["--out", "o", "run", "data.dataset.root=/x", "data.dataset.seed=3", "--split", "all"],
    ]
    for argv in orders:
        evaluate_command.main(argv)
    for run_dir, options in calls:
        assert (str(run_dir), options["split"], str(options["out"])) == ("run", "all", "o")
        assert options["overrides"] == ["data.dataset.root=/x", "data.dataset.seed=3"]
    assert len(calls) == 3


def test_a_killed_evaluation_resumes_to_the_uninterrupted_result(run, tmp_path, monkeypatch):
    """The job dies in its fourth batch of eight; --resume predicts the other five only, and the report's metrics and
    errors equal those of a job that never stopped."""
    evaluate.evaluate_run(run, "all", out=tmp_path / "whole")
    locate_details, calls = KeypointModule.locate_details, []

    def counted(self, *args, **kwargs):
        calls.append(len(args[0]))
        if len(calls) == crash_at:
            raise KeyboardInterrupt
        return locate_details(self, *args, **kwargs)

    monkeypatch.setattr(KeypointModule, "locate_details", counted)
    crash_at = 4
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate_run(run, "all", out=tmp_path / "out")
    assert len(list((tmp_path / "out" / "progress").glob("batch_*.npz"))) == 3
    calls.clear()
    crash_at = None
    with pytest.raises(InputError, match="cannot resume"):
        evaluate.evaluate_run(run, "test", out=tmp_path / "out", resume=True)  # another split: another job
    evaluate.evaluate_run(run, "all", out=tmp_path / "out", resume=True)
    assert calls == [16] * 5 and not (tmp_path / "out" / "progress").exists()
    whole, resumed = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("whole", "out"))
    assert resumed.pop("report").endswith("out/report.md") and whole.pop("report").endswith("whole/report.md")
    assert resumed == whole
    assert (tmp_path / "out" / "errors.csv").read_text() == (tmp_path / "whole" / "errors.csv").read_text()


def test_report_names_a_systematic_offset_and_what_to_do():
    """A mean signed error that is a large share of the RMSE (labels drawn at x + c under mirror augmentation) gets a
    sentence in the report; noise does not."""
    result = {
        "val/rmse": 1.2,
        "val/offset_x_px": -1.1,
        "val/offset_y_px": 0.02,
        "val/coverage": 0.9,
        "val/median_radius_px": 2.0,
        "val/radius_adaptivity": 2.0,
        "val/error_adaptivity": 3.0,
        "val/coverage_worst_tenth": 0.8,
        "checkpoint": "best.ckpt",
        "samples": 10,
        "flip": False,
        "missing": {},
        "unlabelled_samples": 0,
        "calibration": {"alpha": 0.1, "flip": False},
        "pose_priors_absent": {"pose_pca": NO_PRIORS, "multiview_pca": NO_PRIORS},
    }
    table = pd.DataFrame({"keypoint": ["nose"], "mean_px": [1.0]})
    page = report._report_page(result, "val", table, {}, "the input's longer side")
    assert "sit -1.1 px in x and 0.02 px in y" in page and "augment.hflip=null" in page
    result["val/offset_x_px"] = 0.1
    assert "systematic offset" not in report._report_page(result, "val", table, {}, "the input's longer side")


def test_report_on_a_small_split_says_what_is_missing_not_none():
    """Under 10 labelled samples the worst-tenth figures cannot be computed: the prose names the reason (issue 29:
    it printed "None×" and "coverage is None"); with no visible keypoint at all, coverage says why too."""
    result = {
        "test/rmse": 3.0,
        "test/offset_x_px": 0.0,
        "test/offset_y_px": 0.0,
        "test/coverage": 0.9,
        "test/median_radius_px": 2.0,
        "test/radius_adaptivity": None,
        "test/error_adaptivity": None,
        "test/coverage_worst_tenth": None,
        "checkpoint": "best.ckpt",
        "samples": 6,
        "flip": False,
        "missing": {
            f"test/{key}": "fewer than 10 labelled samples (6 here)"
            for key in ("radius_adaptivity", "error_adaptivity", "coverage_worst_tenth")
        },
        "unlabelled_samples": 0,
        "calibration": {"alpha": 0.1, "flip": False},
        "pose_priors_absent": {"pose_pca": NO_PRIORS, "multiview_pca": NO_PRIORS},
    }
    table = pd.DataFrame({"keypoint": ["nose|tip"], "mean_px": [1.0]})
    page = report._report_page(result, "test", table, {}, "the input's longer side")
    assert "None" not in page
    assert (
        "Coverage here: **0.9**; median radius 2 px. The worst tenth of samples is not compared with the best "
        "tenth: fewer than 10 labelled samples (6 here)." in page
    )
    assert "| radius_adaptivity | missing |" in page and "| nose\\|tip | 1 |" in page  # a | in a name is escaped
    result.update({"test/coverage": None, "test/median_radius_px": None})
    result["missing"]["test/coverage"] = "no visible keypoint in the split"
    page = report._report_page(result, "test", table, {}, "the input's longer side")
    assert "None" not in page and "Coverage is not measured here: no visible keypoint in the split." in page


def test_flip_offsets_script_agrees_with_the_reports_with_and_without_flip(run, tmp_path, capsys):
    """scripts/flip_offsets.py: the image's and flip test's mean signed errors are the reports' offsets."""
    from scripts import flip_offsets

    result = flip_offsets.main([str(run), "--split", "val", "--batches", "100"])
    for kind, flip in (("image", False), ("flip test", True)):
        metrics = evaluate.evaluate_run(run, "val", flip=flip, out=tmp_path / kind)
        expected = [metrics["val/offset_x_px"], metrics["val/offset_y_px"]]
        assert result["overall"][flip_offsets.KINDS.index(kind)] == pytest.approx(expected, abs=1e-4)
    assert result["mirror"].shape == (len(NAMES), 2)
    out = capsys.readouterr().out
    assert out.count("\n| ") == 2 + len(NAMES) and "| all | " in out  # header, all, one row per keypoint


def test_evaluate_never_replaces_a_report_and_names_what_it_scored(run, tmp_path, caplog):
    """The README's `kp evaluate RUN --flip` and `kp evaluate RUN data...=OTHER` used to land on train.py's own report
    in RUN/eval/test/: each gets its folder, the header says the split, the flip mode and the data, a folder with a
    report is refused in one line unless --overwrite, and storing the calibration in the checkpoint is said."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    checkpoint = copy / "checkpoints" / Path(json.loads((run / "metrics.json").read_text())["best_checkpoint"]).name
    stored = torch.load(checkpoint, weights_only=True)
    stored.get("kp_calibration", {}).pop("flip", None)  # as trained: no flip calibration yet
    torch.save(stored, checkpoint)
    own = (copy / "eval" / "test" / "report.md").read_text()
    assert "flip test off" in own and "Data: SyntheticKeypoints (the run's own data)." in own

    flip = [str(copy), "--flip", "--checkpoint", str(checkpoint)]
    evaluate_command.main(flip)
    page = (copy / "eval" / "test-flip" / "report.md").read_text()
    assert page.startswith("# Evaluation: test split, flip test on\n") and "(the run's own data)" in page
    assert (copy / "eval" / "test" / "report.md").read_text() == own
    assert f"kp evaluate stored the flip calibration (alpha 0.1) in {checkpoint}" in caplog.text
    assert "flip" in torch.load(checkpoint, weights_only=True)["kp_calibration"]

    evaluate_command.main([str(copy), "data.dataset.seed=7", "--checkpoint", str(checkpoint)])
    page = (copy / "eval" / "test-7" / "report.md").read_text()
    assert "flip test off" in page and "Data: SyntheticKeypoints (data.dataset.seed=7)." in page

    with pytest.raises(SystemExit) as stop:
        evaluate_command.main(flip)
    out = copy / "eval" / "test-flip"
    assert (
        stop.value.code
        == f"configuration error: {out} holds a report already: give another --out, or --overwrite to replace it"
    )
    caplog.clear()
    evaluate_command.main([*flip, "--overwrite"])
    assert (out / "report.md").read_text().startswith("# Evaluation: test split, flip test on")
    assert "stored the" not in caplog.text  # calibrated already: the checkpoint is left alone


def test_a_misspelt_key_for_the_runs_data_names_the_nearest(run):
    with pytest.raises(
        ConfigError, match=r"data.dataset.sed=7: no such key in .*config.yaml; did you mean data.dataset.seed\?"
    ):
        evaluate.evaluate_run(run, overrides=["data.dataset.sed=7"])
    with pytest.raises(ConfigError, match=r"data.batch_size=0: expected 1 or more"):
        evaluate.evaluate_run(run, overrides=["data.batch_size=0"])
