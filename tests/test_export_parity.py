"""The export parity check: tolerant of the scattered points a young model's near-flat heatmaps leave to rounding,
still refusing an export that computes something else (kp.export.parity)."""

import pytest
import torch

from kp.errors import ExportError
from kp.export import parity
from kp.export.export import run
from tests.test_export import tiny_checkpoint

OPTIONS = dict(latency_batches=(1,), runs=1, max_images=64, latency_budget_s=0)


def _exported_as(make):
    """onnx_runner replaced by make(the real runner)."""
    real = parity.onnx_runner
    return lambda path: make(real(path))


def _rounding_differently(run_onnx):
    """Another runtime's fp32 rounding, emulated generously: the input moved by noise of 1e-4 relative size."""
    generator = torch.Generator().manual_seed(1)

    def runner(images):
        return run_onnx(images + torch.randn(images.shape, generator=generator) * images.abs().clamp(min=1) * 1e-4)

    return runner


def _off_by(px, images=slice(None), keypoints=slice(None)):
    """An exporter that got x wrong by `px` pixels (on some images or keypoints only)."""

    def make(run_onnx):
        def runner(batch):
            keypoints_out, *rest = run_onnx(batch)  # scores and the difficulty pass unchanged
            keypoints_out = keypoints_out.copy()
            keypoints_out[images, keypoints, 0] += px
            return [keypoints_out, *rest]

        return runner

    return make


@pytest.mark.parametrize("model", ["model=unet", "model=hourglass"])
def test_rounding_on_near_flat_heatmaps_passes_and_a_wrong_export_still_fails(model, tmp_path, monkeypatch):
    checkpoint = tiny_checkpoint(tmp_path, model)  # untrained: near-flat heatmaps
    monkeypatch.setattr(parity, "onnx_runner", _exported_as(_rounding_differently))
    report = run(checkpoint, ["onnx"], tmp_path / "rounding", **OPTIONS)
    checked = report["formats"]["onnx"]["parity"]
    assert checked["max_px"] > parity.PARITY_PX  # the 0.01 px limit alone would refuse this correct export
    assert checked["ok"] and 0 < checked["beyond_limit"] < checked["points"] / 20
    assert (
        f"| {checked['beyond_limit']} of {checked['points']} | ok |"
        in (tmp_path / "rounding" / "export_report.md").read_text()
    )

    wrong = {
        "everywhere": _off_by(0.05),
        "on the last batch's 4 images": _off_by(0.5, images=slice(-4, None)),
        "on one keypoint": _off_by(0.5, keypoints=0),
    }
    for where, exporter in wrong.items():
        monkeypatch.setattr(parity, "onnx_runner", _exported_as(exporter))
        with pytest.raises(ExportError, match=r"parity missed \(onnx: keypoints differ by up to"):
            run(checkpoint, ["onnx"], tmp_path / "wrong", **OPTIONS)
            pytest.fail(f"an export wrong {where} passed")
