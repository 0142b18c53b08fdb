"""The files of a run directory, named in one place (docs/experiments.md, "What a run writes")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / ".hydra" / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    def holds_a_model(self) -> bool:
        """Whether the run wrote a checkpoint (one that failed first, or a fast_dev_run, did not)."""
        return any(self.checkpoints.glob("*.ckpt"))

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def run_info(self) -> Path:
        return self.path / "run_info.json"

    def eval_dir(self, split: str) -> Path:
        """Where kp.evaluation.evaluate (and train.py, for the test split) writes the evaluation report."""
        return self.path / "eval" / split

    @property
    def data_issues(self) -> Path:
        return self.path / "data_issues.csv"

    @property
    def export_dir(self) -> Path:
        """kp export's model files and export_report.md/json."""
        return self.path / "export"

    def best_checkpoint(self) -> Path:
        """metrics.json's best checkpoint (the run finished), else the newest epoch checkpoint, else last.ckpt."""
        if self.metrics.is_file():
            best = json.loads(self.metrics.read_text()).get("best_checkpoint")
            if best and Path(best).is_file():
                return Path(best)
        epochs = sorted(self.checkpoints.glob("epoch_*.ckpt"), key=lambda p: p.stat().st_mtime)
        if epochs:
            return epochs[-1]
        if self.last_checkpoint.is_file():
            return self.last_checkpoint
        raise FileNotFoundError(
            f"{self.path}: no checkpoint (expected {self.checkpoints}/epoch_*.ckpt or last.ckpt; "
            f"is this a kp run directory?)"
        )
