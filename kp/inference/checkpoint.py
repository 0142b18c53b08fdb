"""Checkpoint files: the one place kp reads them (Lightning writes them; KeypointModule.on_save_checkpoint adds the
InferenceSpec that lets a checkpoint be used on its own). Every problem is a ModelLoadError naming the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from kp.errors import ModelLoadError
from kp.run_dir import RunDir


def read_checkpoint(path: str | Path, require_spec: bool = True) -> dict:
    """A kp checkpoint's contents (tensors and plain containers only), or ModelLoadError saying what is wrong: not a
    file, not a checkpoint (Lightning writes zip archives), damaged (every member's CRC is checked), not a Lightning
    checkpoint, or (require_spec) without the model description kp.load needs."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            head = file.read(16)
        raise ModelLoadError(
            f"{path}: not a checkpoint: kp checkpoints are zip archives written by Lightning, this "
            f"file {'is empty' if not head else f'begins {head!r}'}: point at checkpoints/*.ckpt of a run"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        damaged = f"({error})"
    if damaged:
        raise ModelLoadError(
            f"{path}: damaged: {damaged} fails its integrity (CRC) check; copy the file again or "
            "use another checkpoint of the run"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelLoadError(f"{path}: not a readable PyTorch checkpoint ({reason[:200]})") from None
    except Exception as error:  # weights_only refuses pickled objects: not a checkpoint kp wrote
        raise ModelLoadError(
            f"{path}: not a kp checkpoint: it holds Python objects beyond tensors and plain "
            f"containers ({type(error).__name__}); kp does not load those (they could run code)"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModelLoadError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if require_spec and "kp" not in checkpoint:
        raise ModelLoadError(
            f"{path}: this checkpoint carries no model description (written by a kp version before "
            f"self-contained checkpoints): retrain, or resume it once with ckpt_path=<it> to rewrite it"
        )
    return checkpoint


def check_weights_fit(checkpoint: dict, module: torch.nn.Module, path: str | Path) -> None:
    """ModelLoadError naming the first layer whose name or shape differs between a checkpoint and a model, and the
    model config the checkpoint was made with."""
    theirs, ours = checkpoint["state_dict"], module.state_dict()
    mismatch = next(
        (
            f"layer {name} is not in the checkpoint"
            if name not in theirs
            else f"{name} is {tuple(theirs[name].shape)} in the checkpoint, {tuple(ours[name].shape)} here"
            for name in ours
            if name not in theirs or theirs[name].shape != ours[name].shape
        ),
        None,
    )
    unexpected = [name for name in theirs if name not in ours]
    if mismatch is None and unexpected:
        mismatch = f"the checkpoint's layer {unexpected[0]} is not in this model"
    if mismatch:
        spec = checkpoint.get("kp") or {}
        made_by = Path(path).resolve().parents[1] / ".hydra" / "config.yaml"
        origin = (
            f"its run's config: {made_by}"
            if made_by.is_file()
            else f"its model: {(spec.get('model') or {}).get('backbone', {}).get('_target_', 'unknown')} on "
            f"{spec.get('dataset', 'unknown data')}"
        )
        raise ModelLoadError(
            f"{path}: does not fit the model of this config: {mismatch} ({origin}); use the same "
            "model, target and data settings as the run that wrote it"
        )


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run directory's best checkpoint."""
    path = Path(path)
    if path.is_dir():
        try:
            return RunDir(path).best_checkpoint()
        except FileNotFoundError as error:
            raise ModelLoadError(str(error)) from None
    if not path.exists():
        raise ModelLoadError(f"{path}: no such run directory or checkpoint file")
    return path
