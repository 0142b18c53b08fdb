"""Export a trained model to ONNX and TorchScript and prove each export right (`kp export`, kp/cli/export.py).

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`; deprecated since torch 2.9, present in the
pinned 2.13): it needs no onnxscript and exports these nets 10-30 times faster than the torch.export-based exporter
(5-15 s per model on the development machine, which would make the every-model test minutes long), with the same
parity."""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from kp.errors import ExportError, ModelLoadError
from kp.export.graph import ExportGraph, metadata, model_name
from kp.export.parity import LATENCY_BUDGET_S, check, validation_images, write_report
from kp.inference.checkpoint import resolve_checkpoint
from kp.inference.load import load
from kp.inference.onnx import OnnxPredictor
from kp.inference.predictor import Predictor
from kp.run_dir import RunDir

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
OPSET = 17
RADIUS_PARITY = 1e-3  # the ONNX file's calibrated radius may differ from PyTorch's by this fraction of it
# The closest decoder that exports, for a heatmap decoder that does not (tried in order).
CLOSER_DECODERS = {"dark": ["quarter", "argmax"], "average": ["argmax"], "quarter": ["argmax"]}


def _reason(error: Exception) -> str:
    """The unsupported operator when the exporter names one, else the first line of its message."""
    found = re.search(r"operator '?([\w:.]+)'?", str(error))
    if found:
        return f"operator {found.group(1)} is not supported"
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def export_onnx(
    graph: ExportGraph, example: torch.Tensor, path: Path, dynamic_batch: bool, props: dict[str, str], name: str
) -> None:
    import onnx

    axes = {key: {0: "batch"} for key in ["images", *graph.output_names]} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings (see the docstring)
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=["images"],
                output_names=graph.output_names,
                dynamic_axes=axes,
            )
    except (torch.onnx.errors.OnnxExporterError, RuntimeError) as error:
        raise ExportError(f"{name} cannot be exported to ONNX: {_reason(error)}") from None
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def export_torchscript(graph: ExportGraph, example: torch.Tensor, path: Path, props: dict[str, str], name: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on Python ints: the batch size stays dynamic (tested)
            traced = torch.jit.trace(graph, (example,), check_trace=False)
    except RuntimeError as error:
        raise ExportError(f"{name} cannot be traced to TorchScript: {_reason(error)}") from None
    torch.jit.save(traced, str(path), _extra_files={f"{key}.json": value for key, value in props.items()})


def export(
    predictor: Predictor, fmt: str, path: Path, decode: bool = True, flip: bool = False, batch: int | None = None
) -> tuple[ExportGraph, str | None]:
    """Write `predictor`'s model as `fmt` to `path`. Returns the graph exported (its eager twin is the parity
    reference) and the heatmap decoder in it: the run's, or the closest one that exports when the run's does not."""
    own = getattr(predictor.module.codec, "decoder", None) if decode else None  # coordinates need no decoder
    decoders = [own, *CLOSER_DECODERS.get(own, [])]
    example = torch.rand(batch or 2, *predictor.input_shape)  # 2: a batch of 1 would fix the batch size in the trace
    failures = []
    for decoder in decoders:
        variant = predictor if decoder == own else with_decoder(predictor, decoder)
        graph = ExportGraph(variant, decode, flip).eval()
        props = metadata(variant, graph, decoder, batch)
        try:
            if fmt == "onnx":
                export_onnx(graph, example, path, batch is None, props, model_name(predictor))
            else:
                export_torchscript(graph, example, path, props, model_name(predictor))
        except ExportError as error:
            failures.append(error)
            continue
        if failures:
            print(f"{fmt}: the {own} decoder does not export ({failures[0]}): {decoder} stands in for it")
        return graph, decoder
    raise failures[0]


def with_decoder(predictor: Predictor, decoder: str) -> Predictor:
    """The same model and weights with another heatmap decoder."""
    variant = copy.copy(predictor)
    variant.module = copy.copy(predictor.module)
    variant.module.codec = copy.copy(predictor.module.codec)
    variant.module.codec.decoder = decoder
    return variant


def radius_parity(path: Path, graph: ExportGraph, images: torch.Tensor) -> dict:
    """The ONNX file's calibrated radius, as kp.load(path) predicts it, against its eager twin's difficulty scaled by
    the same calibration: the largest difference, as a fraction of the radius. Empty without a calibration."""
    if graph.calibration is None:
        return {}
    exported = OnnxPredictor(path).predict_with_radius(images.numpy(), flip=graph.flip).radius
    with torch.inference_mode():
        reference = graph.calibration.radius(graph(images)[2])
    finite = np.isfinite(reference)  # inf: a keypoint too rarely visible to calibrate, in both
    relative = np.abs(exported - reference)[finite] / np.maximum(reference[finite], 1e-6)
    worst = float(relative.max()) if relative.size else 0.0
    print(f"onnx: calibrated radius within {worst:.2g} of PyTorch's")
    return {"max_relative": worst, "limit_relative": RADIUS_PARITY, "ok": worst <= RADIUS_PARITY}


def default_out(model: Path) -> Path:
    return RunDir(model).export_dir if model.is_dir() else resolve_checkpoint(model).parent


def run(
    model: Path,
    formats: list[str],
    out: Path | None = None,
    decode: bool = True,
    flip: bool = False,
    batch: int | None = None,
    latency_batches=(1, 32),
    runs: int = 20,
    max_images: int = 64,
    latency_budget_s: float = LATENCY_BUDGET_S,
) -> dict:
    """Export, check parity and time (within latency_budget_s; 0: no latency table): the command's work. Returns the
    report (also written as JSON and Markdown); ExportError when a format misses parity."""
    predictor = load(model)
    if predictor.module is None:
        raise ModelLoadError(f"{model} is an exported file already: export from the run directory or checkpoint")
    out = Path(out) if out else default_out(Path(model))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    images, source = validation_images(model, predictor, max_images)
    exports = {}
    for fmt in formats:
        path = out / FORMATS[fmt]
        print(f"exporting {fmt} to {path}")
        graph, decoder = export(predictor, fmt, path, decode, flip, batch)
        exports[fmt] = (path, graph, decoder)
    report = check(predictor, exports, images, source, decode, flip, batch, latency_batches, runs, latency_budget_s)
    if "onnx" in exports and decode:
        report["formats"]["onnx"]["radius"] = radius_parity(exports["onnx"][0], exports["onnx"][1], images)
    write_report(report, out)
    failed = [
        f"{fmt}: keypoints differ by up to {row['parity']['max_px']:.4g} px (limit {row['parity']['limit_px']} px)"
        for fmt, row in report["formats"].items()
        if not row["parity"]["ok"]
    ]
    radius = report["formats"].get("onnx", {}).get("radius", {})
    if not radius.get("ok", True):
        failed.append(f"onnx: radii differ by up to {radius['max_relative']:.3g} of the radius (limit {RADIUS_PARITY})")
    if failed:
        raise ExportError(f"parity missed ({'; '.join(failed)}); see {out / 'export_report.md'}")
    return report
