"""Checkpoints: a ModelCheckpoint that remembers the best score across a resume, and a run directory's best checkpoint.

A resumed run writes to a new run directory. Lightning's ModelCheckpoint drops the best score and the top-k list when
its directory differs from the checkpoint's, so after `ckpt_path=last` any new epoch would count as the best, even a
worse one, and the test metrics and the sweep objective would come from it. This one restores them whatever the
directory. The earlier run's files stay untouched: Lightning only ever deletes checkpoints inside its own dirpath.
"""

import json
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class ResumableCheckpoint(ModelCheckpoint):
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})


def best_checkpoint(run_dir: Path) -> Path:
    """A run directory's best checkpoint (metrics.json's best_checkpoint), else its checkpoints/last.ckpt."""
    metrics = run_dir / "metrics.json"
    if metrics.exists() and json.loads(metrics.read_text()).get("best_checkpoint"):
        return Path(json.loads(metrics.read_text())["best_checkpoint"])
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.json best_checkpoint and no checkpoints/last.ckpt")
    return last
