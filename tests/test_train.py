"""End-to-end: train() on the built-in data, the files a run writes, the CLI and sweeps."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from kp.config import CONF_DIR
from kp.train.loop import train
from tests.helpers import ROOT, TINY_DATA, compose_config, random_weights

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
TARGETS = sorted(p.stem for p in (CONF_DIR / "target").glob("*.yaml"))
QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("target", TARGETS)
def test_fast_dev_run_for_every_model_and_target(model, target, tmp_path):
    cfg = random_weights(
        compose_config(
            f"model={model}",
            f"target={target}",
            "debug=fast_dev_run",
            *TINY_DATA,
            *QUIET,
            "data.batch_size=4",
            output_dir=tmp_path,
        )
    )
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("test/loss", "test/rmse", "test/nme", "test/pck_0.05", "test/pck_0.1", "test/pck_0.05/left_eye"):
        assert name in metrics
    assert 0 <= metrics["test/pck_0.05"] <= metrics["test/pck_0.1"] <= 1
    assert not (tmp_path / "eval").exists()  # a smoke test of the code: no report (tests/test_evaluate.py)


def test_short_training_lowers_the_loss_and_raises_pck(tmp_path):
    cfg = compose_config(
        "data.dataset.sizes={train:512,val:64,test:64}", "trainer.max_epochs=3", *QUIET, output_dir=tmp_path
    )
    best = train(cfg)
    log = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    train_loss = log["train/loss_epoch"].dropna().tolist()
    val_pck = log["val/pck_0.05"].dropna().tolist()
    assert len(train_loss) == 3 and train_loss[-1] < 0.5 * train_loss[0]
    assert val_pck[-1] > val_pck[0] + 0.1
    assert log["val/pck_0.1"].dropna().iloc[-1] > 0.5
    assert best == pytest.approx(log["val/nme"].min(), abs=1e-6)  # the default optimized_metric, minimised
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best/val/nme"] == pytest.approx(best, abs=1e-6)
    assert metrics["best_checkpoint"].startswith(str(tmp_path / "checkpoints"))
    assert metrics["train_images"] == 512 and metrics["epochs"] == 3
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert metrics["test/pck_0.1"] > 0.5  # tested on the best checkpoint, not an untrained net
    report = json.loads((tmp_path / "eval" / "test" / "metrics.json").read_text())  # the evaluation report
    assert report["test/pck_0.1"] == pytest.approx(metrics["test/pck_0.1"]) and report["test/coverage"] > 0.5


def _cli(args, root, **kwargs):
    env = {**os.environ, "KP_ROOT": str(root)}
    return subprocess.Popen(
        [sys.executable, *args, *TINY_DATA, *QUIET],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def test_runs_started_together_get_their_own_directories(tmp_path):
    # verbose=true keeps a fast_dev_run's folder (it holds no checkpoint: otherwise removed at the end)
    jobs = [_cli(["train.py", "debug=fast_dev_run", "verbose=true"], tmp_path) for _ in range(2)]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert all(job.returncode == 0 for job in jobs), outputs
    runs = sorted((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 <= metrics["test/pck_0.05"] <= metrics["test/pck_0.1"] <= 1 and metrics["test/rmse"] > 0
        assert (run / ".hydra" / "config.yaml").exists()
    assert "Final metrics" in outputs[0] and "test/pck_0.05" in outputs[0]


# Sweeps (each job in its own directory, failing jobs, the leaderboard): tests/test_sweep.py


@pytest.mark.parametrize("model", ["unet", "efficientnet_lite0"])
def test_channels_last_layout_changes_speed_not_results(model):
    """channels_last=true (the default) keeps the weights and the images channels-last; outputs and gradients are the
    default layout's up to float rounding, and its checkpoints load into a default-layout model."""
    import torch

    from kp.build import build

    _, plain = build(compose_config(*TINY_DATA, f"model={model}", "channels_last=false"))
    _, fast = build(compose_config(*TINY_DATA, f"model={model}"))
    fast.load_state_dict(plain.state_dict())
    convs = [p for p in fast.net.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in plain.net.parameters() if p.ndim == 4)
    images = torch.randn(4, 3, 64, 64)
    outputs = [module(images)["keypoints"] for module in (plain, fast)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    for output in outputs:
        output.pow(2).mean().backward()
    for a, b in zip(plain.net.parameters(), fast.net.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5)
    plain.load_state_dict(fast.state_dict())  # a channels-last checkpoint loads anywhere
