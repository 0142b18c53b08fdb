"""Broken checkpoints for kp.load (and ckpt_path resume, which reads them the same way): built from a tiny real
model on the fly. Each maker writes into a folder and returns the path to load."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kp.build import InferenceSpec, build_net

SPEC = InferenceSpec(
    model={
        "_target_": "kp.models.KeypointNet",
        "_partial_": True,
        "head_width": 4,
        "backbone": {"_target_": "kp.models.vgg.VGG", "_partial_": True, "widths": [4, 4], "depths": [1, 1]},
    },
    target={"_target_": "kp.codecs.HeatmapCodec", "_partial_": True, "stride": 2, "sigma": 1.0},
    meta={"names": ["a", "b"], "flip_pairs": None, "skeleton": [], "norm_pair": None, "count_scale": None},
    input_shape=[1, 32, 32],
    fit_size=None,
    transforms=None,
    dataset="tests",
)


def _state(spec: InferenceSpec) -> dict:
    _, net = build_net(spec)
    return {f"net.{name}": value for name, value in net.state_dict().items()}


def _save(path: Path, checkpoint) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def valid(root: Path) -> Path:
    return _save(root / "model.ckpt", {"state_dict": _state(SPEC), "kp": asdict(SPEC)})


def _flip_byte(root: Path) -> Path:
    path = valid(root)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # a byte inside the biggest stored tensor, so only the CRC can tell
        info = max(archive.infolist(), key=lambda i: i.file_size)
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.file_size // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _other_shape(root: Path) -> Path:
    wider = InferenceSpec(
        **{**asdict(SPEC), "model": {**SPEC.model, "backbone": {**SPEC.model["backbone"], "widths": [8, 4]}}}
    )
    return _save(root / "model.ckpt", {"state_dict": _state(wider), "kp": asdict(SPEC)})


def _missing_layer(root: Path) -> Path:
    state = _state(SPEC)
    state.pop(next(iter(state)))
    return _save(root / "model.ckpt", {"state_dict": state, "kp": asdict(SPEC)})


def _write(name: str, content: bytes):
    def make(root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
        return root / name

    return make


def _truncated(root: Path) -> Path:
    path = valid(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _other_zip(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "model.ckpt", "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")
    return root / "model.ckpt"


def _empty_run_dir(root: Path) -> Path:
    (root / "run" / "checkpoints").mkdir(parents=True)
    return root / "run"


def _run_dir(root: Path) -> Path:
    run = root / "run"
    valid(run / "checkpoints")
    (run / "checkpoints" / "model.ckpt").rename(run / "checkpoints" / "last.ckpt")
    return run


# name: (maker, expected: "error" with a part of the message, or "accept")
KINDS = {
    "valid_checkpoint": (valid, "accept", ""),
    "valid_run_dir": (_run_dir, "accept", ""),
    "missing_file": (lambda root: root / "nothing.ckpt", "error", "no such"),
    "empty_file": (_write("model.ckpt", b""), "error", "is empty"),
    "random_bytes": (_write("model.ckpt", np.random.default_rng(0).bytes(4096)), "error", "not a checkpoint"),
    "json_file": (_write("model.ckpt", json.dumps({"state_dict": {}}).encode()), "error", "not a checkpoint"),
    "truncated": (_truncated, "error", "model.ckpt"),
    "flipped_byte": (_flip_byte, "error", "CRC"),
    "zip_of_something_else": (_other_zip, "error", "not a readable PyTorch checkpoint"),
    "pickled_objects": (
        lambda root: _save(root / "model.ckpt", {"state_dict": {}, "path": Path("x")}),
        "error",
        "Python objects",
    ),
    "no_state_dict": (lambda root: _save(root / "model.ckpt", {"weights": {}}), "error", "no state_dict"),
    "no_model_description": (
        lambda root: _save(root / "model.ckpt", {"state_dict": _state(SPEC)}),
        "error",
        "no model description",
    ),
    "other_shape": (_other_shape, "error", "net.backbone"),
    "missing_layer": (_missing_layer, "error", "not in the checkpoint"),
    "run_dir_without_checkpoint": (_empty_run_dir, "error", "no checkpoint"),
    "directory_not_a_run": (lambda root: root, "error", "no checkpoint"),
}
