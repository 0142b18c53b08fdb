"""Multi-process training and mixed precision on CPU: DDP with two gloo processes inside a multirun job keeps one
run dir, and its validation and test metrics (synced across the processes) equal a single process evaluating the
same weights on the same data; bf16-mixed runs."""

import json
import os
import subprocess
import sys

import lightning as L
import pandas as pd
import pytest

from kp.build import build
from kp.train.loop import train
from tests.helpers import ROOT, compose_config

RUN = [
    "data.dataset.sizes={train:64,val:40,test:40}",
    "data.batch_size=8",
    "model.backbone.width=4",
    "data.dataset.image_size=32",
    "trainer.max_epochs=2",
    "seed=5",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


pytestmark = pytest.mark.slow  # DDP trainings in subprocesses


def test_ddp_in_a_multirun_job_shares_its_dir_and_syncs_the_metrics(tmp_path):
    ddp = subprocess.run(
        [sys.executable, "sweep.py", "-m", *RUN, "trainer=ddp_cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "KP_ROOT": str(tmp_path)},
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in ddp.stdout + ddp.stderr

    # both processes worked in the multirun's job dir: no second sweep, no stray run dir
    assert [p.name for p in (tmp_path / "logs" / "train").iterdir()] == ["multiruns"]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0"]
    job = sweep_dir / "0"
    assert (job / "train_ddp_process_1.log").exists()  # the second process's Hydra log
    assert json.loads((job / "run_info.json").read_text())["status"] == "completed"

    # Each process saw half of the 40 validation images; one process now evaluates all 40 with the same weights.
    datamodule, module = build(compose_config(*RUN, output_dir=tmp_path / "single"))
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (single_val,) = trainer.validate(
        module, datamodule=datamodule, ckpt_path=job / "checkpoints" / "last.ckpt", verbose=False
    )
    ddp_val = pd.read_csv(job / "csv" / "metrics.csv").dropna(subset=["val/rmse"]).iloc[-1]
    for name in ("val/rmse", "val/nme", "val/pck_0.05", "val/pck_0.1", "val/rmse/nose"):  # sums of the same errors
        assert ddp_val[name] == pytest.approx(single_val[name], rel=1e-5, abs=1e-7), name
    # the loss is a mean of per-batch means, and the processes batch the images differently
    assert ddp_val["val/loss"] == pytest.approx(single_val["val/loss"], rel=1e-3)

    ddp_test = json.loads((job / "metrics.json").read_text())
    (single_test,) = trainer.test(module, datamodule=datamodule, ckpt_path=ddp_test["best_checkpoint"], verbose=False)
    for name in ("test/rmse", "test/nme", "test/pck_0.1"):
        assert ddp_test[name] == pytest.approx(single_test[name], rel=1e-5, abs=1e-7), name


def test_bf16_mixed_precision_on_cpu(tmp_path):
    cfg = compose_config(*RUN, "precision=bf16-mixed", "debug=fast_dev_run", output_dir=tmp_path)
    assert cfg.trainer.precision == "bf16-mixed"
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/rmse"] > 0 and 0 <= metrics["test/pck_0.1"] <= 1
