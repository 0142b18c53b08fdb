"""Export a trained model to ONNX and TorchScript, and prove each export right:

    python -m kp.export RUN_OR_CHECKPOINT [--format onnx|torchscript|all] [--decode/--no-decode] [--flip]
                        [--batch dynamic|N] [--out DIR]

Writes DIR/model.onnx and/or DIR/model.torchscript.pt with export_report.md and export_report.json (DIR: RUN/export for
a run directory, the checkpoint's folder for a checkpoint file). The report gives, per format, the keypoint parity
against PyTorch on up to 64 validation images (kp.export_check), latency at batch 1 and 32, file size and parameter
count; the command fails when an export misses parity (keypoints within 0.01 px).

--decode (default): the graph takes preprocessed images B×C×H×W (kp.inference.Preprocess) and returns keypoints B×K×2
in input pixels and scores B×K, through KeypointModule.predict (the one inference path); --flip puts test-time flip in
it. --no-decode: the network's raw outputs (heatmaps or coordinates, visibility logits, count).

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`; deprecated since torch 2.9, present in the
pinned 2.13): it needs no onnxscript and exports these nets 10-30 times faster than the torch.export-based exporter
(5-15 s per model on the development machine, which would make the every-model test minutes long), with the same
parity. The ONNX file's metadata_props carry what a consumer needs: keypoint names, flip pairs, skeleton, input shape
and channels, the preprocessing and the outputs' meaning.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from kp.build import ConfigError
from kp.errors import user_errors_in_one_line
from kp.inference import ModelLoadError, Predictor, load, resolve_checkpoint
from kp.run_dir import RunDir

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
RAW_OUTPUTS = ("keypoints", "visibility", "count")  # the earlier hourglass stacks are a training signal only
OPSET = 17
# The closest decoder that exports, for a heatmap decoder that does not (tried in order).
CLOSER_DECODERS = {"dark": ["quarter", "argmax"], "average": ["argmax"], "quarter": ["argmax"]}
PREPROCESSING = ("uint8 image / 255 as float32, NCHW; RGB when channels is 3, grey when 1; letterboxed into fit_size "
                 "(width, height) when set, then the test transforms (kp.inference.Preprocess)")


class ExportError(RuntimeError):
    """A model that cannot be exported, with the model and the operator in the message."""


class ExportGraph(nn.Module):
    """What an exported file computes: images -> (keypoints, scores) through KeypointModule.predict (decode), or the
    network's raw outputs in `output_names` order."""

    def __init__(self, predictor: Predictor, decode: bool = True, flip: bool = False):
        super().__init__()
        if flip and not decode:
            raise ConfigError("--flip merges the image's and its mirror's outputs before decoding: it needs --decode")
        module = predictor.module
        if flip:
            module.meta.flip_permutation(strict=True)  # unknown flip pairs: a clear error, not a failed trace
        self.net = module.net  # the weights, registered here: tracing the LightningModule itself fails
        self._predict = module.predict
        self.codec = module.codec  # decodes the raw outputs of a --no-decode export for the parity check
        self.decode, self.flip = decode, flip
        with torch.no_grad():
            outputs = self.net.eval()(torch.zeros(1, *predictor.input_shape))
        self.output_names = ["keypoints", "scores"] if decode else [name for name in RAW_OUTPUTS if name in outputs]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.decode:
            return self._predict(images, flip=self.flip)
        outputs = self.net(images)
        return tuple(outputs[name] for name in self.output_names)


def model_name(predictor: Predictor) -> str:
    backbone = predictor.spec.model["backbone"]["_target_"].rsplit(".", 1)[-1]
    return f"{backbone} ({predictor.module.codec.name} target, from {predictor.checkpoint})"


def metadata(predictor: Predictor, graph: ExportGraph, decoder: str | None, batch: int | None) -> dict[str, str]:
    """Everything a consumer of the file needs, as strings (ONNX metadata_props; TorchScript extra files)."""
    spec, meta = predictor.spec, predictor.meta
    return {
        "keypoint_names": json.dumps(meta.names),
        "flip_pairs": json.dumps(meta.flip_pairs),
        "skeleton": json.dumps(meta.skeleton),
        "input_shape": json.dumps(spec.input_shape),  # C, H, W
        "channels": "rgb" if spec.input_shape[0] == 3 else "grey",
        "preprocessing": json.dumps({"about": PREPROCESSING, "fit_size": spec.fit_size, "transforms": spec.transforms}),
        "outputs": json.dumps(graph.output_names),
        "decoded": json.dumps(graph.decode),  # keypoints in input pixels (x = column, y = row) and scores
        "decoder": json.dumps(decoder),
        "flip": json.dumps(graph.flip),
        "batch": json.dumps(batch),  # null: any batch size
        "kp_spec": json.dumps(asdict(spec)),  # kp.build.InferenceSpec: what kp.load rebuilds the predictor from
    }


def _reason(error: Exception) -> str:
    """The unsupported operator when the exporter names one, else the first line of its message."""
    found = re.search(r"operator '?([\w:.]+)'?", str(error))
    if found:
        return f"operator {found.group(1)} is not supported"
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def export_onnx(graph: ExportGraph, example: torch.Tensor, path: Path, dynamic_batch: bool, props: dict[str, str],
                name: str) -> None:
    import onnx

    axes = {key: {0: "batch"} for key in ["images", *graph.output_names]} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings (see the docstring)
            torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=["images"],
                              output_names=graph.output_names, dynamic_axes=axes)
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


def export(predictor: Predictor, fmt: str, path: Path, decode: bool = True, flip: bool = False,
           batch: int | None = None) -> tuple[ExportGraph, str | None]:
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


def default_out(model: Path) -> Path:
    return RunDir(model).export_dir if model.is_dir() else resolve_checkpoint(model).parent


def run(model: Path, formats: list[str], out: Path | None = None, decode: bool = True, flip: bool = False,
        batch: int | None = None, latency_batches=(1, 32), runs: int = 20, max_images: int = 64) -> dict:
    """Export, check parity and time: the command's work. Returns the report (also written as JSON and Markdown);
    ExportError when a format misses parity."""
    from kp.export_check import check, validation_images, write_report  # it imports ExportGraph from here

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
    report = check(predictor, exports, images, source, decode, flip, batch, latency_batches, runs)
    write_report(report, out)
    failed = [f"{fmt}: keypoints differ by up to {row['parity']['max_px']:.4g} px (limit {row['parity']['limit_px']} px)"
              for fmt, row in report["formats"].items() if not row["parity"]["ok"]]
    if failed:
        raise ExportError(f"parity missed ({'; '.join(failed)}); see {out / 'export_report.md'}")
    return report


def _batch(value: str) -> int | None:
    if value == "dynamic":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--batch takes 'dynamic' or a positive batch size, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kp export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a run directory (its best checkpoint) or a checkpoint file")
    parser.add_argument("--format", choices=[*FORMATS, "all"], default="all")
    parser.add_argument("--decode", action=argparse.BooleanOptionalAction, default=True,
                        help="keypoints and scores out of the graph (default), or the raw outputs")
    parser.add_argument("--flip", action="store_true", help="test-time flip inside the graph")
    parser.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                        help="the ONNX graph's batch size (default: dynamic)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN/export, or the checkpoint's folder)")
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    formats = list(FORMATS) if args.format == "all" else [args.format]
    with user_errors_in_one_line(args.verbose, also=(ExportError,)):
        report = run(args.model, formats, args.out, args.decode, args.flip, args.batch)
    print(f"{report['out']}/export_report.md: parity within {report['limit_px']} px for {', '.join(formats)}")


if __name__ == "__main__":
    main()
