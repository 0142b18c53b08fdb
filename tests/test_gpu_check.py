"""scripts/gpu_check.py on a machine without CUDA: the same code paths on a tiny model, a few steps, and it says
what it skipped (no timing is asserted); the preset with unlabelled clips on the real mirror-mouse data."""

from __future__ import annotations

import importlib
import math

import torch

from kp.module import KeypointModule
from tests.helpers import shared_data


def _script():
    return importlib.import_module("scripts.gpu_check")  # scripts/ is importable from the repository root


def test_gpu_check_runs_on_the_cpu_and_says_what_it_skipped(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    result = _script().main(
        ["synthetic_coords", "--overrides", "data.dataset.sizes={train:64,val:16,test:16}", "data.batch_size=16"]
    )
    out = capsys.readouterr().out
    assert result["gpus"] == 0 and "CUDA: not available" in out
    [row] = result["rows"]
    assert row["preset"] == "synthetic_coords" and row["batch"] == 16
    for key in ("32", "bf16-mixed", "loader"):
        assert math.isfinite(row[key]) and row[key] > 0
    assert f"| synthetic_coords | 16 | {row['data_s']:.1f} | {row['32']:.1f} | {row['bf16-mixed']:.1f} |" in out
    assert "skipped: GPU speed: no CUDA, so each preset ran 6 steps on the CPU with model=simple_cnn" in out
    assert "skipped: DDP: 0 GPU(s); it needs two" in out


def test_gpu_check_times_the_unlabelled_clips_and_skips_absent_data(capsys, monkeypatch):
    shared_data("mirror_mouse")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("KP_DATA_DIR", "/nonexistent/data")
    result = _script().main(["cards"])  # its data is looked for under KP_DATA_DIR
    assert result["rows"] == []
    assert "skipped: cards: its data /nonexistent/data/cards is absent" in capsys.readouterr().out
    monkeypatch.delenv("KP_DATA_DIR")
    terms_run = []  # per training step: the unlabelled terms the module computed on the clips
    unlabelled_losses = KeypointModule._unlabelled_losses

    def spy(module, clips):
        terms = unlabelled_losses(module, clips)
        terms_run.append(sorted(terms))
        return terms

    monkeypatch.setattr(KeypointModule, "_unlabelled_losses", spy)
    result = _script().main(["mirror_mouse_semi", "--steps", "3", "--warmup", "0"])
    out = capsys.readouterr().out
    [row] = result["rows"]
    assert row["preset"] == "mirror_mouse_semi" and row["batch"] == 8 and row["clip_frames"] == 8
    for key in ("32", "bf16-mixed", "bf16-mixed + clips", "loader"):
        assert math.isfinite(row[key]) and row[key] > 0
    # fp32 and bf16 without clips (every term in its warm-up), then bf16 with all three terms on the clips
    assert terms_run == [[]] * 6 + [["multiview_pca", "pose_pca", "temporal"]] * 3
    assert f"| {row['loader']:.1f} | 8 | {row['bf16-mixed + clips']:.1f} |" in out
    assert "skipped: DDP: 0 GPU(s)" in out
