"""Evaluate a trained run on a split (`kp evaluate`, kp/cli/evaluate.py): predict it through the one inference path,
calibrate the uncertainty radius on the validation split, and write the report (kp.evaluation.report)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich import get_console
from rich.progress import track
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from kp import calibration
from kp.config import check_types, compose_config, nearest_keys
from kp.defaults import MISS_RATE, PCK_THRESHOLDS, WORST_SAMPLES
from kp.errors import ConfigError, InputError
from kp.evaluation import report
from kp.inference.load import load
from kp.inference.predictor import Predictor
from kp.run_dir import RunDir

log = logging.getLogger(__name__)


@dataclass
class SplitPredictions:
    """A split's predictions and ground truth in input pixels, one row per sample (N), and its metrics."""

    ids: list[str]
    splits: list[str]
    pred: np.ndarray  # N×K×2
    target: np.ndarray  # N×K×2
    visible: np.ndarray  # N×K bool
    scores: np.ndarray  # N×K
    difficulty: np.ndarray  # N×K, input pixels
    pck_norm: np.ndarray  # N: the length PCK divides by (NaN: the sample has no normalising pair)
    source_scale: np.ndarray  # N: input pixels per source-image pixel (the loader's resize), from the sample's affine
    count_true: np.ndarray | None  # N, in the dataset's unit (cards), when the model and the data have counts
    count_pred: np.ndarray | None
    metrics: dict[str, float]  # KeypointModule.compute_metrics, keys <split>/<metric>[/<keypoint>]

    @property
    def errors(self) -> np.ndarray:
        """N×K distance between prediction and ground truth (NaN where the keypoint is not visible)."""
        distance = np.linalg.norm(self.pred.astype(np.float64) - self.target, axis=-1)  # float64: exact in CSV
        return np.where(self.visible, distance, np.nan)

    @property
    def source_errors(self) -> np.ndarray:
        """errors in the source image's own pixels (a DeepLabCut frame's), as the labelling tool measures them."""
        return self.errors / self.source_scale[:, None]


COLUMNS = ("pred", "target", "visible", "scores", "difficulty", "pck_norm", "source_scale", "count_true", "count_pred")


def predict_split(
    predictor: Predictor,
    dataset: Dataset,
    flip: bool,
    batch_size: int,
    name: str = "test",
    description: str = "predicting",
    progress: Path | None = None,
    resume: bool = False,
) -> SplitPredictions:
    """Predict every sample of `dataset` and accumulate the module's metrics under the name `name`. With a `progress`
    folder, each batch's predictions are saved there as they come (one file per batch, written whole or not at all),
    and `resume` replays the batches saved by a job that stopped and predicts the rest: the same result as one
    uninterrupted job, since both go through the saved values."""
    module = predictor.module
    for metric in [*module.metrics["test"], module.count_mae["test"]]:
        metric.reset()
    saved = _Batches(progress, predictor, dataset, name, flip, resume) if progress else None
    columns: dict[str, list] = {key: [] for key in ("ids", *COLUMNS)}
    for values in saved.load() if saved else []:
        _add(module, values, columns)
    start = len(columns["ids"])
    loader = DataLoader(Subset(dataset, range(start, len(dataset))), batch_size=batch_size, shuffle=False)
    with torch.no_grad():
        # no bar for a few batches, nor where output is not a terminal (rich would leave a blank line)
        quiet = len(loader) < 5 or not get_console().is_terminal
        for batch in track(loader, description=description, transient=True, disable=quiet):
            values = _predict_batch(module, batch, flip)
            if saved:
                saved.save(values)
            _add(module, values, columns)
    metrics = {f"{name}/{key.split('/', 1)[1]}": float(value) for key, value in module.compute_metrics("test").items()}
    splits = [split for split, size in getattr(dataset, "split_sizes", [(name, len(dataset))]) for _ in range(size)]
    stacked = {key: np.concatenate(value) if value else None for key, value in columns.items() if key != "ids"}
    return SplitPredictions(ids=columns["ids"], splits=splits, metrics=metrics, **stacked)


def _predict_batch(module, batch: dict, flip: bool) -> dict[str, np.ndarray]:
    """A batch's predictions and ground truth as numpy arrays (COLUMNS and ids)."""
    device = next(module.parameters()).device
    batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
    prediction = module.locate_details(batch["image"], flip=flip)
    _, pck_norm = module.normalising_lengths(batch["keypoints"], batch["visible"])
    values = {"ids": np.array(batch["id"], dtype=str), "visible": batch["visible"].cpu().numpy()}
    for key, value in (
        ("pred", prediction.keypoints),
        ("target", batch["keypoints"]),
        ("scores", prediction.scores),
        ("difficulty", prediction.difficulty),
        ("pck_norm", pck_norm),
        ("source_scale", batch["affine"][:, :, :2].det().abs().sqrt()),
    ):
        values[key] = value.float().cpu().numpy()
    if "count" in prediction.outputs and "count" in batch:
        values["count_true"] = batch["count"].float().cpu().numpy().reshape(-1)
        values["count_pred"] = prediction.outputs["count"].float().cpu().numpy().reshape(-1)
    return values


def _add(module, values: dict[str, np.ndarray], columns: dict[str, list]) -> None:
    """A batch's values into the module's metrics and the columns (counts in the dataset's unit)."""
    device = next(module.parameters()).device
    tensors = {key: torch.from_numpy(value).to(device) for key, value in values.items() if key != "ids"}
    batch = {"keypoints": tensors["target"], "visible": tensors["visible"]}
    outputs = {}
    if "count_true" in tensors:
        batch["count"], outputs["count"] = tensors["count_true"], tensors["count_pred"]
    module.update_metrics("test", tensors["pred"], batch, outputs)
    scale = module.meta.count_scale or 1.0
    columns["ids"] += values["ids"].tolist()
    for key in COLUMNS:
        if key in values:
            columns[key].append(values[key] * scale if key.startswith("count") else values[key])


class _Batches:
    """predict_split's saved batches: <folder>/batch_<n>.npz, each written to a temporary name and renamed (a kill
    leaves whole files only), and job.json saying what they are the predictions of."""

    def __init__(self, folder: Path, predictor: Predictor, dataset: Dataset, name: str, flip: bool, resume: bool):
        self.folder = Path(folder)
        job = {"checkpoint": str(predictor.checkpoint), "split": name, "flip": flip, "samples": len(dataset)}
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        elif (self.folder / "job.json").is_file():
            before = json.loads((self.folder / "job.json").read_text())
            if before != job:
                raise InputError(
                    f"{self.folder}: cannot resume, the predictions saved there are of {before}, this job is {job}: "
                    f"leave out --resume to start again"
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "job.json").write_text(json.dumps(job))

    def load(self) -> list[dict[str, np.ndarray]]:
        files = sorted(self.folder.glob("batch_*.npz"))
        loaded = []
        for path in files:
            with np.load(path) as data:
                loaded.append({key: data[key] for key in data.files})
        return loaded

    def save(self, values: dict[str, np.ndarray]) -> None:
        path = self.folder / f"batch_{len(list(self.folder.glob('batch_*.npz'))):06d}.npz"
        temporary = self.folder / "writing.npz"
        np.savez(temporary, **values)
        os.replace(temporary, path)


def calibrate(
    predictor: Predictor, dataset: Dataset, flip: bool, alpha: float, batch_size: int
) -> calibration.Calibration:
    """Fit the uncertainty radius on `dataset` (the validation split) and give it to the predictor; stored in the
    predictor's checkpoint file where it has one."""
    val = predict_split(predictor, dataset, flip, batch_size, "val", "calibrating on val")
    fitted = calibration.calibrate(np.nan_to_num(val.errors, nan=0.0), val.difficulty, val.visible, alpha, flip)
    predictor.calibrations[flip] = fitted
    if predictor.checkpoint is not None:
        try:
            calibration.store(predictor.checkpoint, fitted)
        except OSError as error:  # a read-only checkpoint: the report still gets its radius
            log.warning(
                "the calibration is not stored in %s (%s): it is used for this report only",
                predictor.checkpoint,
                error.strerror or error,
            )
        else:
            log.info("stored the %s calibration in %s", calibration.mode(flip), predictor.checkpoint)
    return fitted


def evaluate(
    predictor: Predictor,
    datamodule,
    split: str,
    out: Path,
    flip: bool = False,
    alpha: float = MISS_RATE,
    pck_thresholds=PCK_THRESHOLDS,
    pck_norm: str = "image",
    num_worst: int = WORST_SAMPLES,
    recalibrate: bool = False,
    loggers=(),
    resume: bool = False,
    data: str = "",
) -> dict:
    """Calibrate if needed, predict `split` of the datamodule and write the report into `out` (its header names
    `data`, the data scored); returns its metrics. The predictions are saved batch by batch in out/progress/ until the
    report is written; `resume` goes on from there after a job that stopped."""
    datamodule.setup()
    _check_data_fits(predictor, datamodule)
    predictor.module.build_metrics(tuple(pck_thresholds), pck_norm, sync_on_compute=False)
    batch_size = datamodule.batch_size
    if recalibrate or flip not in predictor.calibrations or predictor.calibrations[flip].alpha != alpha:
        calibrate(predictor, datamodule.splits["val"], flip, alpha, batch_size)
    dataset = _split_dataset(datamodule, split)
    progress = Path(out) / "progress"
    predictions = predict_split(predictor, dataset, flip, batch_size, split, f"evaluating {split}", progress, resume)
    metrics = report.write(predictions, predictor, dataset, split, out, flip, num_worst, loggers, data=data)
    shutil.rmtree(progress)
    return metrics


class _Splits(ConcatDataset):
    """Several splits as one dataset; split_sizes says which rows come from which."""

    def __init__(self, parts: list[tuple[str, Dataset]]):
        super().__init__([dataset for _, dataset in parts])
        self.split_sizes = [(name, len(dataset)) for name, dataset in parts]


def _split_dataset(datamodule, split: str) -> Dataset:
    def one(name: str) -> Dataset:
        if name == "train":  # without the training augmentation: evaluate the images as they are
            return datamodule.dataset(split="train", transform=datamodule.transforms.get("test"))
        return datamodule.splits[name]

    if split == "all":
        return _Splits([(name, one(name)) for name in ("train", "val", "test")])
    return one(split)


def _check_data_fits(predictor: Predictor, datamodule) -> None:
    names = datamodule.meta.names
    if list(names) != list(predictor.meta.names):
        raise ConfigError(
            f"the data has the keypoints {names}, the model predicts {predictor.meta.names}: "
            f"evaluate on data with the same keypoints in the same order"
        )
    shape = tuple(datamodule.splits["val"][0]["image"].shape)
    if shape != predictor.input_shape:
        raise ConfigError(
            f"the data gives {shape} images, the model takes {predictor.input_shape}: set the data's "
            f"size (e.g. data.dataset.width/height) as in training"
        )


def data_config(run: Path, overrides: list[str], config_dir: Path | None = None) -> DictConfig:
    """The run's config with the overrides: dotted keys merged in (each must be a key of the run's config; a new one
    is added as +key=value); a group override composes conf/ afresh (with config_dir's configs). Values are checked
    as kp train checks them."""
    run_dir = RunDir(run)
    if not run_dir.config.is_file():
        raise ConfigError(f"{run}: no {run_dir.config.relative_to(run)}: is this a kp run directory?")
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r}: expected key=value (e.g. data.dataset.root=/data/new)")
    if any("." not in override.split("=", 1)[0] for override in overrides):
        cfg = compose_config(overrides, config_dir)
    else:
        cfg = OmegaConf.load(run_dir.config)
        for override in overrides:
            key = override.split("=", 1)[0]
            if not key.startswith("+") and OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
                near = nearest_keys(cfg, key)
                guess = f"did you mean {' or '.join(near)}?" if near else f"a new key is added as +{override}"
                raise ConfigError(f"{override}: no such key in {run_dir.config}; {guess}")
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([override.lstrip("+") for override in overrides]))
    check_types(cfg)
    return cfg


_ABSENT = object()


def describe_data(data: DictConfig, overrides: list[str] = ()) -> str:
    """The data a report scored, for its header: the loader and its folder or file, and the overrides given."""

    def value(key: str):  # None where unset or where an interpolation cannot be resolved here
        return OmegaConf.select(data, f"dataset.{key}", default=None, throw_on_resolution_failure=False)

    where = next((value(key) for key in ("project", "root", "ann_file") if value(key)), None)
    name = str(value("_target_") or "unknown loader").rsplit(".", 1)[-1]
    text = f"{name} at {where}" if where else name
    return f"{text} ({' '.join(overrides)})" if overrides else f"{text} (the run's own data)"


def report_folder(run: Path, split: str, flip: bool, overrides: list[str]) -> Path:
    """RUN/eval/<split>[-flip][-<data>]: the folder names the split, the flip mode and other data (the overridden
    values' last path parts), so that no evaluation lands on another's (train.py's own report is eval/test)."""
    name = split + ("-flip" if flip else "")
    if overrides:
        values = [Path(override.split("=", 1)[1]).name or "data" for override in overrides]
        name += "-" + re.sub(r"[^A-Za-z0-9._]+", "_", "_".join(values))[:60]
    return RunDir(run).eval_dir(name)


def evaluate_run(
    run: Path,
    split: str = "test",
    flip: bool = False,
    checkpoint: Path | None = None,
    out: Path | None = None,
    overrides: list[str] = (),
    alpha: float = MISS_RATE,
    num_worst: int = WORST_SAMPLES,
    recalibrate: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    config_dir: Path | None = None,
) -> dict:
    """kp evaluate: the report of `split` into `out` (default report_folder). A folder that holds a report already
    is refused unless `overwrite`, so that a run's own report is only replaced when asked."""
    overrides = list(overrides)
    cfg = data_config(run, overrides, config_dir)
    out = Path(out) if out else report_folder(run, split, flip, overrides)
    if (out / "report.md").exists() and not overwrite and not resume:
        raise ConfigError(f"{out} holds a report already: give another --out, or --overwrite to replace it")
    predictor = load(checkpoint or run)
    if predictor.module is None:
        raise ConfigError(f"{checkpoint}: evaluate needs a checkpoint (.ckpt), not an exported model")
    datamodule = instantiate(cfg.data)
    metrics = cfg.get("metrics", {})
    before = _modified(predictor.checkpoint)
    result = evaluate(
        predictor,
        datamodule,
        split,
        out,
        flip,
        alpha,
        metrics.get("pck_thresholds", PCK_THRESHOLDS),
        metrics.get("pck_norm", "image"),
        num_worst,
        recalibrate,
        resume=resume,
        data=describe_data(cfg.data, overrides),
    )
    if _modified(predictor.checkpoint) != before:  # a command that reads like read-only says when it wrote
        log.warning(
            "kp evaluate stored the %s calibration (alpha %g) in %s beside its weights (unchanged), for kp predict's "
            "radius",
            calibration.mode(flip),
            alpha,
            predictor.checkpoint,
        )
    return result


def _modified(path: Path | None) -> int | None:
    return Path(path).stat().st_mtime_ns if path is not None and Path(path).is_file() else None
