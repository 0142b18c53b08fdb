"""Evaluate a trained run on a split (`kp evaluate`, kp/cli/evaluate.py): predict it through the one inference path,
calibrate the uncertainty radius on the validation split, and write the report (kp.evaluation.report)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.progress import track
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from kp import calibration
from kp.config import compose_config
from kp.errors import ConfigError
from kp.evaluation import report
from kp.inference.load import load
from kp.inference.predictor import Predictor
from kp.run_dir import RunDir

log = logging.getLogger("kp.evaluation.evaluate")
SPLITS = ("test", "val", "train", "all")


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


def predict_split(
    predictor: Predictor,
    dataset: Dataset,
    flip: bool,
    batch_size: int,
    name: str = "test",
    description: str = "predicting",
) -> SplitPredictions:
    """Predict every sample of `dataset` and accumulate the module's metrics under the name `name`."""
    module = predictor.module
    for metric in [*module.metrics["test"], module.count_mae["test"]]:
        metric.reset()
    device = next(module.parameters()).device
    scale = module.meta.count_scale or 1.0
    columns: dict[str, list] = {
        key: []
        for key in (
            "ids",
            "pred",
            "target",
            "visible",
            "scores",
            "difficulty",
            "pck_norm",
            "source_scale",
            "count_true",
            "count_pred",
        )
    }
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    with torch.no_grad():
        for batch in track(loader, description=description, transient=True, disable=len(loader) < 5):
            batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
            prediction = module.predict_details(batch["image"], flip=flip)
            module.update_metrics("test", prediction.keypoints, batch, prediction.outputs)
            _, pck_norm = module.normalising_lengths(batch["keypoints"], batch["visible"])
            columns["ids"] += list(batch["id"])
            for key, value in (
                ("pred", prediction.keypoints),
                ("target", batch["keypoints"]),
                ("visible", batch["visible"]),
                ("scores", prediction.scores),
                ("difficulty", prediction.difficulty),
                ("pck_norm", pck_norm),
                ("source_scale", batch["affine"][:, :, :2].det().abs().sqrt()),
            ):
                columns[key].append(value.float().cpu().numpy() if key != "visible" else value.cpu().numpy())
            if "count" in prediction.outputs and "count" in batch:
                columns["count_true"].append((batch["count"].float() * scale).cpu().numpy().reshape(-1))
                columns["count_pred"].append((prediction.outputs["count"].float() * scale).cpu().numpy().reshape(-1))
    metrics = {f"{name}/{key.split('/', 1)[1]}": float(value) for key, value in module.compute_metrics("test").items()}
    splits = [split for split, size in getattr(dataset, "split_sizes", [(name, len(dataset))]) for _ in range(size)]
    stacked = {key: np.concatenate(value) if value else None for key, value in columns.items() if key != "ids"}
    return SplitPredictions(ids=columns["ids"], splits=splits, metrics=metrics, **stacked)


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
    return fitted


def evaluate(
    predictor: Predictor,
    datamodule,
    split: str,
    out: Path,
    flip: bool = False,
    alpha: float = 0.1,
    pck_thresholds=(0.05, 0.1),
    pck_norm: str = "image",
    num_worst: int = 16,
    recalibrate: bool = False,
    loggers=(),
) -> dict:
    """Calibrate if needed, predict `split` of the datamodule and write the report into `out`; returns its metrics."""
    datamodule.setup()
    _check_data_fits(predictor, datamodule)
    predictor.module.configure_metrics(tuple(pck_thresholds), pck_norm, sync_on_compute=False)
    batch_size = datamodule.batch_size
    if recalibrate or flip not in predictor.calibrations or predictor.calibrations[flip].alpha != alpha:
        calibrate(predictor, datamodule.splits["val"], flip, alpha, batch_size)
    dataset = _split_dataset(datamodule, split)
    predictions = predict_split(predictor, dataset, flip, batch_size, split, f"evaluating {split}")
    return report.write(predictions, predictor, dataset, split, out, flip, num_worst, loggers)


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


def data_config(run: Path, overrides: list[str]) -> DictConfig:
    """The run's config with the overrides: dotted keys merged in; a group override composes kp/conf/ afresh."""
    run_dir = RunDir(run)
    if not run_dir.config.is_file():
        raise ConfigError(f"{run}: no {run_dir.config.relative_to(run)}: is this a kp run directory?")
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r}: expected key=value (e.g. data.dataset.root=/data/new)")
    if any("." not in override.split("=", 1)[0] for override in overrides):
        return compose_config(overrides)
    return OmegaConf.merge(OmegaConf.load(run_dir.config), OmegaConf.from_dotlist(list(overrides)))


def evaluate_run(
    run: Path,
    split: str = "test",
    flip: bool = False,
    checkpoint: Path | None = None,
    out: Path | None = None,
    overrides: list[str] = (),
    alpha: float = 0.1,
    num_worst: int = 16,
    recalibrate: bool = False,
) -> dict:
    cfg = data_config(run, list(overrides))
    predictor = load(checkpoint or run)
    if predictor.module is None:
        raise ConfigError(f"{checkpoint}: evaluate needs a checkpoint (.ckpt), not an exported model")
    datamodule = instantiate(cfg.data)
    out = Path(out) if out else RunDir(run).eval_dir(split)
    metrics = cfg.get("metrics", {})
    return evaluate(
        predictor,
        datamodule,
        split,
        out,
        flip,
        alpha,
        metrics.get("pck_thresholds", (0.05, 0.1)),
        metrics.get("pck_norm", "image"),
        num_worst,
        recalibrate,
    )
