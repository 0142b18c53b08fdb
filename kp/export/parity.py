"""Proof that an export computes what PyTorch computes, and how fast: the parity and latency report of kp.export.export.

Parity: the exported file and its eager twin (the same ExportGraph, run by PyTorch) on up to 64 preprocessed images
of the run's validation split, or on synthetic faces when that data cannot be read (the report says why). Keypoint
differences in input pixels; the largest difference of any output (scores when decoded, else the raw outputs). The
keypoints pass within PARITY_PX, or beyond it at scattered points only (PARITY_PX below).
Latency: per batch size, for PyTorch eager, TorchScript and ONNX Runtime (CPU provider, as many threads as torch
uses), the median of up to `runs` calls after up to 3 warm-up calls, within a time budget shared evenly by the
settings (runtime × batch size): a setting stops calling once its share is spent, after at least one timed call, so a
large model on a busy CPU (11.7 s a call at batch 32) costs a few calls, not 23. Parity has no budget.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.nn import functional as F

from kp import markdown
from kp.data.synthetic import SyntheticKeypoints
from kp.export.graph import ExportGraph, model_name
from kp.inference.checkpoint import resolve_checkpoint
from kp.inference.predictor import Predictor
from kp.run_dir import RunDir

PARITY_PX = 0.01  # fp32: the exported keypoints may differ from PyTorch's by this much
# ...for most points: a young model's near-flat heatmap puts a peak where rounding decides (a correct export of a
# 2-epoch run: 0.013 px at one point, 8e-5 px on average; an untrained one: a peak a few px away), so a few points
# beyond the limit pass as long as every image's and every keypoint's median stays within it. A wrong export moves
# all of an image's points, or one keypoint in every image, and still fails.
WARM_UP = 3
RUNTIMES = {"torchscript": "torchscript", "onnx": "onnxruntime"}  # export format -> the runtime timed
LATENCY_BUDGET_S = 30.0  # the whole latency table, all settings together (a setting may overrun by its last call)


def _run_config(model: Path) -> Path:
    run_dir = model if model.is_dir() else resolve_checkpoint(model).parent.parent  # <run>/checkpoints/<file>.ckpt
    return RunDir(run_dir).config


def validation_images(model: Path, predictor: Predictor, count: int) -> tuple[torch.Tensor, str]:
    """Up to `count` preprocessed images of the run's validation split, else synthetic ones; and where they came
    from."""
    config = _run_config(Path(model))
    if not config.is_file():
        reason = f"no run config at {config}"
    else:
        try:
            cfg = OmegaConf.load(config)
            datamodule = instantiate(cfg.data)
            datamodule.setup()
            split = datamodule.splits["val"]
            n = min(count, len(split))
            images = torch.stack([split[i]["image"] for i in range(n)])
            if tuple(images.shape[1:]) == predictor.input_shape:
                return images, f"{n} images of the validation split of {cfg.data.dataset._target_}"
            reason = f"its validation images are {tuple(images.shape[1:])}, the model takes {predictor.input_shape}"
        except Exception as error:  # any reason the data cannot be read: measure on synthetic images, and say why
            first_line = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            reason = f"validation data not readable: {first_line}"
    return synthetic_images(predictor.input_shape, count), f"{count} synthetic faces ({reason})"


def synthetic_images(input_shape: tuple[int, int, int], count: int) -> torch.Tensor:
    """The built-in cartoon faces, resized to the model's input (grey when it takes one channel)."""
    channels, height, width = input_shape
    faces = SyntheticKeypoints("val", sizes={"val": count}, image_size=max(height, width), occlusion_prob=0.0)
    images = F.interpolate(
        torch.stack([faces[i]["image"] for i in range(count)]),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    )
    return images.mean(1, keepdim=True) if channels == 1 else images


def eager_runner(graph: ExportGraph):
    def run(images: torch.Tensor) -> list[np.ndarray]:
        with torch.inference_mode():
            return [output.float().numpy() for output in graph(images)]

    return run


def torchscript_runner(path: Path):
    traced = torch.jit.load(str(path), map_location="cpu").eval()

    def run(images: torch.Tensor) -> list[np.ndarray]:
        with torch.inference_mode():
            return [output.float().numpy() for output in traced(images)]

    return run


def onnx_runner(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images.numpy()})


def outputs_of(runner, images: torch.Tensor, batch: int | None) -> list[np.ndarray]:
    """The runner's outputs for all images, in chunks of `batch` (the last one padded when the batch is fixed)."""
    size = batch or 32
    chunks = []
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        n = len(chunk)
        if batch and n < batch:
            chunk = torch.cat([chunk, chunk[-1:].expand(batch - n, *chunk.shape[1:])])
        chunks.append([output[:n] for output in runner(chunk)])
    return [np.concatenate(parts) for parts in zip(*chunks)]


def keypoints_of(graph: ExportGraph, outputs: list[np.ndarray]) -> np.ndarray:
    if graph.decode:
        return outputs[0]
    raw = {name: torch.from_numpy(output) for name, output in zip(graph.output_names, outputs)}
    return graph.codec.decode(raw)[0].numpy()


def distances(graph: ExportGraph, reference: list[np.ndarray], exported: list[np.ndarray]) -> np.ndarray:
    """N×K keypoint distances between two runs' outputs, in input pixels."""
    return np.linalg.norm(keypoints_of(graph, reference) - keypoints_of(graph, exported), axis=-1)


def difference(graph: ExportGraph, reference: list[np.ndarray], exported: list[np.ndarray]) -> dict:
    distance = distances(graph, reference, exported)
    return {
        "max_px": float(distance.max()),
        "mean_px": float(distance.mean()),
        "max_output": max(float(np.abs(a - b).max()) for a, b in zip(reference, exported)),
    }


def parity_of(graph: ExportGraph, reference: list[np.ndarray], exported: list[np.ndarray]) -> dict:
    """The export's keypoint differences against PyTorch's and the verdict: within PARITY_PX, or beyond it only at
    scattered points (`beyond_limit`), the median of every image's and of every keypoint's differences within it."""
    distance = distances(graph, reference, exported)
    ok = bool(
        distance.max() <= PARITY_PX
        or (np.median(distance, axis=1).max() <= PARITY_PX and np.median(distance, axis=0).max() <= PARITY_PX)
    )
    beyond = int((distance > PARITY_PX).sum())
    return {
        **difference(graph, reference, exported),
        "limit_px": PARITY_PX,
        "ok": ok,
        "beyond_limit": beyond,
        "points": int(distance.size),
    }


def median_ms(runner, images: torch.Tensor, runs: int, budget_s: float, clock=time.perf_counter) -> tuple[float, int]:
    """The median time of a call in ms, and the number of calls timed: up to WARM_UP calls, then up to `runs` timed
    ones, stopping once `budget_s` is spent (warm-up included) and at least one call is timed. A budget spent warming
    up sends the next call to the timing: beside a call that slow, the first calls' one-off costs are small."""
    warm_up, times, spent = WARM_UP, [], 0.0
    for call in range(WARM_UP + runs):
        start = clock()
        runner(images)
        took = clock() - start
        spent += took
        if call >= warm_up:
            times.append(took)
        if spent >= budget_s:
            if times:
                break
            warm_up = call + 1
    return 1000 * statistics.median(times), len(times)


def check(
    predictor: Predictor,
    exports: dict,
    images: torch.Tensor,
    source: str,
    decode: bool,
    flip: bool,
    batch: int | None,
    latency_batches=(1, 32),
    runs: int = 20,
    latency_budget_s: float = LATENCY_BUDGET_S,
) -> dict:
    """Parity and latency of each export: `exports` maps a format to (file, graph, heatmap decoder in it). A latency
    budget of 0 leaves the latency table out."""
    run_decoder = getattr(predictor.module.codec, "decoder", None)
    formats, runners = {}, {}
    for fmt, (path, graph, decoder) in exports.items():
        runners[fmt] = onnx_runner(path) if fmt == "onnx" else torchscript_runner(path)
        reference = outputs_of(eager_runner(graph), images, batch)
        parity = parity_of(graph, reference, outputs_of(runners[fmt], images, batch))
        row = {"file": path.name, "size_bytes": path.stat().st_size, "decoder": decoder, "parity": parity}
        if decoder != (run_decoder if decode else None):  # a stand-in decoder: how far from the run's own
            own = ExportGraph(predictor, decode, flip).eval()
            row["decoder_vs_run"] = {
                "run_decoder": run_decoder,
                **difference(graph, outputs_of(eager_runner(own), images, batch), reference),
            }
        formats[fmt] = row
        print(f"{fmt}: keypoints within {parity['max_px']:.2g} px of PyTorch (mean {parity['mean_px']:.2g})")

    graph = next(iter(exports.values()))[1]
    latency, calls = {}, {}
    sizes = ((batch,) if batch else latency_batches) if latency_budget_s > 0 else ()
    share = latency_budget_s / max(1, len(sizes) * (1 + len(runners)))
    timed = {"pytorch": eager_runner(graph)} | {RUNTIMES[fmt]: runner for fmt, runner in runners.items()}
    for size in sizes:
        batch_images = images.repeat((size + len(images) - 1) // len(images), 1, 1, 1)[:size]
        measured = {runtime: median_ms(runner, batch_images, runs, share) for runtime, runner in timed.items()}
        latency[str(size)] = {runtime: ms for runtime, (ms, _) in measured.items()}
        calls[str(size)] = {runtime: n for runtime, (_, n) in measured.items()}
    return {
        "model": model_name(predictor),
        "checkpoint": str(predictor.checkpoint),
        "source": source,
        "images": len(images),
        "decode": decode,
        "flip": flip,
        "batch": batch,
        "limit_px": PARITY_PX,
        "parameters": sum(p.numel() for p in predictor.module.net.parameters()),
        "threads": torch.get_num_threads(),
        "runs": runs,
        "latency_budget_s": latency_budget_s,
        "formats": formats,
        "latency_ms": latency,
        "latency_calls": calls,
    }


def write_report(report: dict, out: Path) -> None:
    report["out"] = str(out)
    (out / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Export report: {report['model']}",
        "",
        f"Outputs: {'keypoints (input pixels) and scores' if report['decode'] else 'raw network outputs'}"
        f"{', test-time flip in the graph' if report['flip'] else ''}; batch "
        f"{report['batch'] or 'dynamic'}; {report['parameters']:,} parameters.",
        "",
        f"Parity on {report['source']}: PyTorch against the exported file, fp32, limit {report['limit_px']} px "
        "(points beyond it pass only when scattered: each image's and each keypoint's median within the limit, as a "
        "young model's near-flat heatmaps give).",
        "",
    ]
    header = ["format", "file", "size", "decoder", "max Δ keypoint (px)", "mean Δ keypoint (px)", "max Δ output"]
    header += ["points beyond the limit", "parity"]
    rows = [
        [
            fmt,
            row["file"],
            f"{row['size_bytes'] / 1e6:.2f} MB",
            row["decoder"] or "-",
            f"{row['parity']['max_px']:.2g}",
            f"{row['parity']['mean_px']:.2g}",
            f"{row['parity']['max_output']:.2g}",
            f"{row['parity']['beyond_limit']} of {row['parity']['points']}",
            "ok" if row["parity"]["ok"] else "MISSED",
        ]
        for fmt, row in report["formats"].items()
    ]
    lines += markdown.table(header, rows).splitlines()
    for fmt, row in report["formats"].items():
        if "decoder_vs_run" in row:
            other = row["decoder_vs_run"]
            lines += [
                "",
                f"{fmt}: the run's decoder `{other['run_decoder']}` does not export; `{row['decoder']}` "
                f"stands in for it, {other['max_px']:.3g} px at most ({other['mean_px']:.3g} px on average) "
                f"from the run's keypoints.",
            ]
    radius = report["formats"].get("onnx", {}).get("radius")
    if radius:  # kp.export.export.radius_parity
        lines += [
            "",
            f"onnx: the calibrated radius within {radius['max_relative']:.2g} of PyTorch's (limit "
            f"{radius['limit_relative']:g}): {'ok' if radius['ok'] else 'MISSED'}.",
        ]
    lines += ["", *_latency_lines(report)]
    (out / "export_report.md").write_text("\n".join(lines) + "\n")


def _latency_lines(report: dict) -> list[str]:
    if not report["latency_ms"]:
        return ["Latency not measured (--no-latency)."]
    runtimes = {"pytorch": "PyTorch eager", "torchscript": "TorchScript", "onnxruntime": "ONNX Runtime (CPU)"}
    present = [key for key in runtimes if key in next(iter(report["latency_ms"].values()))]
    fewest = min(n for row in report["latency_calls"].values() for n in row.values())
    lines = [
        f"Latency in ms: median of up to {report['runs']} calls after up to {WARM_UP} warm-up calls, within "
        f"{report['latency_budget_s']:g} s for the table (the fewest calls in a cell: {fewest}), "
        f"{report['threads']} CPU thread(s).",
        "",
    ]
    rows = [[size] + [f"{row[key]:.2f}" for key in present] for size, row in report["latency_ms"].items()]
    return lines + markdown.table(["batch"] + [runtimes[key] for key in present], rows).splitlines()
