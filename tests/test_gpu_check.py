"""scripts/gpu_check.py on a machine without CUDA: the same code paths on a tiny model, a few steps, and it says
what it skipped (no timing is asserted)."""

from __future__ import annotations

import importlib
import math

import torch


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
