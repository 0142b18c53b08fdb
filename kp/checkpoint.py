"""ModelCheckpoint that remembers the best score across a resume.

A resumed run writes to a new run directory. Lightning's ModelCheckpoint drops the best score and the top-k list when
its directory differs from the checkpoint's, so after `ckpt_path=last` any new epoch would count as the best, even a
worse one, and the test metrics and the sweep objective would come from it. This one restores them whatever the
directory. The earlier run's files stay untouched: Lightning only ever deletes checkpoints inside its own dirpath.
"""

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class ResumableCheckpoint(ModelCheckpoint):
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})
