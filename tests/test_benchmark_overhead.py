"""scripts/benchmark_overhead.py runs both sides end to end on a tiny setting (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import math

from tests.helpers import ROOT, TINY_DATA


def _script():
    spec = importlib.util.spec_from_file_location("benchmark_overhead", ROOT / "scripts" / "benchmark_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overhead_benchmark_runs_both_sides_for_the_same_steps(capsys):
    result = _script().main(["--steps", "4", "--rounds", "2", "--warmup", "1", "model=simple_cnn", *TINY_DATA])
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    assert math.isfinite(result["span_ratio"]) and result["span_ratio"] > 0
    assert result["plain_steps"] == result["kp_steps"] == [4, 4]
    assert result["timed_intervals"] == (4, 4)  # (4 steps - 1 - 1 warm-up) × 2 rounds, each side
    assert f"step-time ratio kp/plain: {result['ratio']:.3f}" in capsys.readouterr().out
