"""seed + trainer.deterministic=true gives identical metrics on CPU; a run dir records what reproduces it."""

import json
import subprocess

import pandas as pd
import torch

from kp.train.loop import train
from kp.train.run_info import REPO
from tests.helpers import TINY_DATA, compose_config

RUN = [
    *TINY_DATA,
    "model.backbone.width=4",
    "data.dataset.image_size=32",
    "debug=limit",
    "trainer.max_epochs=2",
    "seed=11",
    "trainer.deterministic=true",
    "augment=default",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def test_same_seed_deterministic_runs_give_identical_metrics(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train(compose_config(*RUN, output_dir=first)) == train(compose_config(*RUN, output_dir=second))
    logs = [pd.read_csv(run / "csv" / "metrics.csv") for run in (first, second)]
    pd.testing.assert_frame_equal(*logs)  # every logged value, every epoch, bit for bit
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (first, second)]
    for m in metrics:
        m.pop("best_checkpoint")  # the paths differ
    assert metrics[0] == metrics[1]
    # a different seed is a different run: the comparison above can fail
    third = tmp_path / "third"
    train(compose_config(*RUN, "seed=12", output_dir=third))
    assert not pd.read_csv(third / "csv" / "metrics.csv").equals(logs[0])

    info = json.loads((first / "run_info.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    assert (info["commit"], info["dirty"]) == (head, dirty)
    assert info["status"] == "completed" and info["wall_time_s"] > 0
    assert info["packages"]["torch"] == torch.__version__
    assert {"lightning", "hydra-core", "omegaconf", "torchmetrics", "numpy", "python"} <= set(info["packages"])
    # the config and the overrides: Hydra's .hydra/ in a CLI run (tests/test_sweep.py checks them in a sweep)
    assert "model.backbone.width" in (first / "csv" / "hparams.yaml").read_text()
