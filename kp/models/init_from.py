"""model.init_from=PATH: start a net from another run's weights wherever names and shapes match (fine-tuning on a new
dataset whose keypoint count differs, a wider head, ...). PATH is a kp run directory (its best checkpoint), a
Lightning .ckpt or a plain state-dict file; of a KeypointModule's checkpoint, the tensors under "net." are used."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from kp.errors import WeightsError
from kp.models.pretrained import load_state_dict_file
from kp.run_dir import RunDir

log = logging.getLogger(__name__)


def load_matching(net: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy into `net` every tensor of the file whose name and shape match; log one line; return (loaded, skipped)
    where skipped names the net's tensors left as they were and the file's tensors that found no place."""
    path = Path(path).expanduser()
    if path.is_dir():
        try:
            path = RunDir(path).best_checkpoint()
        except FileNotFoundError as error:
            raise WeightsError(f"model.init_from: {error}") from error
    state = load_state_dict_file(path, "model.init_from")
    if any(key.startswith("net.") for key in state):  # a KeypointModule's checkpoint: the net's part
        state = {key.removeprefix("net."): value for key, value in state.items() if key.startswith("net.")}
    own = net.state_dict()
    loaded = [key for key, value in state.items() if key in own and own[key].shape == value.shape]
    skipped = [
        f"{key} (shape {tuple(value.shape)} here, {tuple(state[key].shape)} in the file)"
        if key in state
        else f"{key} (not in the file)"
        for key, value in own.items()
        if key not in loaded
    ]
    skipped += [f"{key} (not in this model)" for key in state if key not in own]
    net.load_state_dict({key: state[key] for key in loaded}, strict=False)
    log.info(
        "init_from %s: loaded %d of %d tensors; skipped: %s", path, len(loaded), len(own), ", ".join(skipped) or "none"
    )
    return loaded, skipped
