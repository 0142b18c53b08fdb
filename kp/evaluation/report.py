"""The evaluation report (README "Evaluate"): what kp.evaluation.evaluate and the end of train.py write for a split.

metrics.json     the module's metrics (as train.py's test logs them) + PCK AUC, median and p90 error, the coverage
                 of the uncertainty radius (overall, per keypoint, over the worst tenth of samples) and its
                 adaptivity; a metric that cannot be computed is null, with the reason under "missing"; samples
                 with no labelled keypoint are counted and listed
keypoints.csv/md one row per keypoint
errors.csv       one row per sample and keypoint (input pixels, and the error in the source image's pixels)
pck_curve.csv/png, keypoint_errors.png, error_vs_score.png, worst.png, counts.png (count models)
report.md        all of it on one page
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.loggers import WandbLogger

from kp import markdown
from kp.viz import evaluation as figures
from kp.viz import plot_predictions

PCK_CURVE_MAX = 0.2  # the PCK curve runs from 0 to this fraction of the PCK normalising length
PCK_CURVE_STEPS = 41
MIN_TENTHS_SAMPLES = 10  # the radius adaptivity and the worst tenth's coverage need a tenth of at least one sample
OFFSET_NOTE = 0.25  # the report names a mean signed error above this share of the RMSE: systematic, not noise
_FRAME = re.compile(r"^(.*?)[:#](\d+)$")  # `file:line` (CSV row) and `file#annotation` ids


@dataclass
class Scores:
    """What the report computes from a split's predictions, before anything is written or drawn."""

    radius: np.ndarray  # N×K uncertainty radius, input pixels
    covered: np.ndarray  # N×K: a visible keypoint within its radius
    thresholds: np.ndarray  # the PCK curve's thresholds, fractions of the normalising length
    pck: np.ndarray  # PCK at each threshold
    auc: float  # the area under the PCK curve, over PCK_CURVE_MAX
    metrics: dict[str, float]  # "<split>/<name>" -> value; NaN where it cannot be computed
    missing: dict[str, str]  # metric -> why it is NaN
    unlabelled: list[str]  # ids of samples with no labelled keypoint
    table: pd.DataFrame  # one row per keypoint
    norm_name: str  # what PCK thresholds are fractions of


def write(p, predictor, dataset, split: str, out: Path, flip: bool, num_worst: int = 16, loggers=()) -> dict:
    """Write the report of SplitPredictions `p` (kp.evaluation.evaluate) into `out`; return its metrics.json content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = score(p, predictor, split, flip)
    _write_tables(out, p, scores, predictor.meta.names)
    pictures = _draw_figures(out, p, scores, dataset, predictor.meta, num_worst)
    result = _summary(scores, p, predictor, flip, out)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(_report_page(result, split, scores.table, pictures, scores.norm_name))
    _to_wandb(loggers, split, pictures, out / "errors.csv")
    return result


def score(p, predictor, split: str, flip: bool) -> Scores:
    """Every figure of the report from SplitPredictions `p`: the PCK curve, the metrics (with why any is missing),
    the uncertainty radius and its coverage, and the per-keypoint table."""
    meta, module = predictor.meta, predictor.module
    radius = predictor.calibrations[flip].radius(p.difficulty)
    covered = np.where(p.visible, p.errors <= radius, False)
    thresholds, pck = pck_curve(p)
    auc = float(np.trapezoid(pck, thresholds) / PCK_CURVE_MAX)
    metrics = dict(p.metrics)
    metrics.update(split_metrics(p, radius, covered, auc, split))
    for k, name in enumerate(meta.names):
        seen = p.visible[:, k]
        metrics[f"{split}/coverage/{name}"] = float(covered[seen, k].mean()) if seen.any() else math.nan
    return Scores(
        radius=radius,
        covered=covered,
        thresholds=thresholds,
        pck=pck,
        auc=auc,
        metrics=metrics,
        missing=_missing_reasons(metrics, p, meta, module.pck_norm),
        unlabelled=[sample_id for sample_id, seen in zip(p.ids, p.visible) if not seen.any()],
        table=keypoint_table(p, p.errors, radius, covered, metrics, split, meta.names, module.metric_names),
        norm_name="the normalising pair's distance" if module.pck_norm == "pair" else "the input's longer side",
    )


def pck_curve(p) -> tuple[np.ndarray, np.ndarray]:
    """PCK from 0 to PCK_CURVE_MAX of each sample's normalising length (NaN without a labelled keypoint)."""
    thresholds = np.linspace(0, PCK_CURVE_MAX, PCK_CURVE_STEPS)
    scaled = (p.errors / p.pck_norm[:, None])[p.visible & np.isfinite(p.pck_norm)[:, None]]
    pck = np.array([(scaled <= t).mean() for t in thresholds]) if scaled.size else np.full(len(thresholds), np.nan)
    return thresholds, pck


def split_metrics(p, radius: np.ndarray, covered: np.ndarray, auc: float, split: str) -> dict[str, float]:
    """The report's own metrics over the split (the module's come with `p.metrics`)."""
    errors, visible = p.errors, p.visible
    return {
        f"{split}/auc": auc,
        f"{split}/median_error_px": _quantile(errors[visible], 0.5),
        f"{split}/p90_error_px": _quantile(errors[visible], 0.9),
        # in the source images' pixels (a DeepLabCut frame's, before the loader's resize): rmse as defined above
        # (per coordinate), and the mean distance, which is what DeepLabCut reports as its "RMSE"
        f"{split}/rmse_source_px": _mean(p.source_errors[visible] ** 2 / 2) ** 0.5,
        f"{split}/mean_error_source_px": _mean(p.source_errors[visible]),
        # the mean signed error: labels drawn in a convention that a mirror does not keep (x + c instead of x)
        # show here as an x offset after mirror augmentation, which cannot learn it (docs: Flip test)
        f"{split}/offset_x_px": _mean((p.pred[..., 0] - p.target[..., 0])[visible]),
        f"{split}/offset_y_px": _mean((p.pred[..., 1] - p.target[..., 1])[visible]),
        f"{split}/coverage": float(covered.sum() / visible.sum()) if visible.any() else math.nan,
        f"{split}/median_radius_px": _quantile(radius[visible], 0.5),
        f"{split}/radius_adaptivity": radius_adaptivity(errors, radius, visible),
        # the adaptivity of a radius equal to each error, for comparison
        f"{split}/error_adaptivity": radius_adaptivity(errors, errors, visible),
        f"{split}/coverage_worst_tenth": worst_tenth_coverage(errors, radius, visible),
    }


def _write_tables(out: Path, p, scores: Scores, names: list[str]) -> None:
    """pck_curve.csv, keypoints.csv and .md, errors.csv."""
    pd.DataFrame({"threshold": scores.thresholds, "pck": scores.pck}).to_csv(out / "pck_curve.csv", index=False)
    scores.table.to_csv(out / "keypoints.csv", index=False, float_format="%.6g")
    (out / "keypoints.md").write_text(_markdown(scores.table))
    # full precision: coverage recomputed from the file must see the same error <= radius as here
    error_rows(p, p.errors, scores.radius, names).to_csv(out / "errors.csv", index=False)


def _draw_figures(out: Path, p, scores: Scores, dataset, meta, num_worst: int) -> dict[str, Path]:
    """The report's pictures, by file name."""
    errors, visible = p.errors, p.visible
    pictures = {
        "pck_curve.png": figures.pck_curve(
            scores.thresholds, scores.pck, scores.auc, scores.norm_name, out / "pck_curve.png"
        ),
        "keypoint_errors.png": figures.keypoint_errors(
            [errors[visible[:, k], k] for k in range(len(meta.names))], meta.names, out / "keypoint_errors.png"
        ),
        "error_vs_score.png": figures.error_against_score(
            errors[visible], p.scores[visible], out / "error_vs_score.png"
        ),
    }
    worst = worst_samples(errors, visible, num_worst)
    if len(worst):
        pictures["worst.png"] = _gallery(worst, p, errors, scores.radius, dataset, meta, out / "worst.png")
    if p.count_true is not None:
        pictures["counts.png"] = figures.counts(
            p.count_true, p.count_pred, "count" if not meta.count_scale else "cards", out / "counts.png"
        )
    return pictures


def _summary(scores: Scores, p, predictor, flip: bool, out: Path) -> dict:
    """metrics.json's content: the metrics (NaN as null), why any is missing, and what was scored."""
    result = {
        key: (None if isinstance(value, float) and math.isnan(value) else value)
        for key, value in sorted(scores.metrics.items())
    }
    result.update(
        {
            "missing": scores.missing,
            "samples": len(p.ids),
            "unlabelled_samples": len(scores.unlabelled),
            "unlabelled_ids": scores.unlabelled,
            "checkpoint": str(predictor.checkpoint) if predictor.checkpoint else None,
            "flip": flip,
            "calibration": predictor.calibrations[flip].to_dict(),
            "report": str(out / "report.md"),
        }
    )
    return result


def sample_errors(errors: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labelled samples' indices and their mean error over their labelled keypoints."""
    labelled = np.flatnonzero(visible.any(1))
    return labelled, np.nanmean(np.where(visible, errors, np.nan)[labelled], 1)


def tenths(errors: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices of the best and the worst tenth of labelled samples by mean error; None with fewer than
    MIN_TENTHS_SAMPLES."""
    labelled, mean_error = sample_errors(errors, visible)
    if len(labelled) < MIN_TENTHS_SAMPLES:
        return None
    order = labelled[np.argsort(mean_error, kind="stable")]
    tenth = len(order) // 10
    return order[:tenth], order[-tenth:]


def radius_adaptivity(errors: np.ndarray, radius: np.ndarray, visible: np.ndarray) -> float:
    """Median radius of the worst tenth of samples (by mean error) over that of the best tenth: > 1 when the radius
    grows where the model is wrong, 1 for a radius that ignores the sample. NaN with fewer than 10 labelled samples.
    radius = errors gives the adaptivity of a circle through every true point, for comparison."""
    split = tenths(errors, visible)
    if split is None:
        return math.nan
    best, worst = (np.median(np.nanmedian(np.where(visible[part], radius[part], np.nan), 1)) for part in split)
    if not np.isfinite(best):  # an infinite radius (too few calibration points): no ratio to speak of
        return math.nan
    return float(worst / best) if best > 0 else math.inf


def worst_tenth_coverage(errors: np.ndarray, radius: np.ndarray, visible: np.ndarray) -> float:
    """Coverage over the worst tenth of samples (by mean error): whether the circles still catch the model's
    failures (a radius that ignores the sample covers far less there than overall). NaN with fewer than 10
    labelled samples."""
    split = tenths(errors, visible)
    if split is None:
        return math.nan
    worst = split[1]
    return float((errors[worst] <= radius[worst])[visible[worst]].mean())


def worst_samples(errors: np.ndarray, visible: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n labelled samples with the largest mean error, worst first."""
    labelled, mean_error = sample_errors(errors, visible)
    return labelled[np.argsort(-mean_error, kind="stable")[:n]]


def keypoint_table(p, errors, radius, covered, metrics, split, names, metric_names) -> pd.DataFrame:
    rows = []
    for k, name in enumerate(names):
        seen = p.visible[:, k]
        e = errors[seen, k]
        row = {
            "keypoint": name,
            "labelled": int(seen.sum()),
            "mean_px": _mean(e),
            "median_px": _quantile(e, 0.5),
            "p90_px": _quantile(e, 0.9),
        }
        row.update(
            {metric if metric != "rmse" else "rmse_px": metrics[f"{split}/{metric}/{name}"] for metric in metric_names}
        )
        row.update(
            {"coverage": metrics[f"{split}/coverage/{name}"], "median_radius_px": _quantile(radius[seen, k], 0.5)}
        )
        rows.append(row)
    return pd.DataFrame(rows)


def error_rows(p, errors, radius, names) -> pd.DataFrame:
    """One row per sample and keypoint, in the network's input pixels."""
    n, k = errors.shape
    images, frames = zip(*(_image_and_frame(sample_id) for sample_id in p.ids)) if n else ((), ())
    columns = {
        "split": np.repeat(p.splits, k),
        "sample": np.repeat(np.arange(n), k),
        "image": np.repeat(images, k),
        "frame": np.repeat(frames, k),
        "keypoint": np.tile(names, n),
        "visible": p.visible.reshape(-1),
        "gt_x": p.target[..., 0].reshape(-1),
        "gt_y": p.target[..., 1].reshape(-1),
        "pred_x": p.pred[..., 0].reshape(-1),
        "pred_y": p.pred[..., 1].reshape(-1),
        "error_px": errors.reshape(-1),
        "error_source_px": p.source_errors.reshape(-1),
        "score": p.scores.reshape(-1),
        "radius_px": radius.reshape(-1),
    }
    if p.count_true is not None:
        columns["count_true"], columns["count_pred"] = np.repeat(p.count_true, k), np.repeat(p.count_pred, k)
    return pd.DataFrame(columns)


def _image_and_frame(sample_id: str) -> tuple[str, str]:
    match = _FRAME.match(sample_id)
    return (match.group(1), match.group(2)) if match else (sample_id, "")


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else math.nan


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _missing_reasons(metrics: dict, p, meta, pck_norm: str) -> dict[str, str]:
    """Why each NaN metric could not be computed."""
    pair = meta.norm_pair
    pair_reason = (
        f"no sample has both keypoints of the normalising pair ({meta.names[pair[0]]}, {meta.names[pair[1]]}) labelled"
        if pair
        else ""
    )
    reasons = {}
    for key, value in metrics.items():
        if not (isinstance(value, float) and math.isnan(value)):
            continue
        parts = key.split("/")
        name = parts[2] if len(parts) > 2 else None
        seen = p.visible[:, meta.names.index(name)] if name else p.visible
        if not seen.any():
            reasons[key] = f"no visible {name or 'keypoint'} in the split"
        elif "adaptivity" in key or "worst_tenth" in key:  # radius_, error_adaptivity, coverage_worst_tenth
            labelled = int(p.visible.any(1).sum())
            reasons[key] = (
                f"fewer than {MIN_TENTHS_SAMPLES} labelled samples ({labelled} here)"
                if labelled < MIN_TENTHS_SAMPLES
                else "the radius is infinite (too few validation points to calibrate it)"
            )
        elif pair and (parts[1] == "nme" or pck_norm == "pair"):
            reasons[key] = pair_reason
        else:
            reasons[key] = "no labelled keypoint with a normalising length"
    return reasons


def _gallery(indices, p, errors, radius, dataset, meta, path: Path) -> Path:
    images = torch.stack([dataset[int(i)]["image"] for i in indices]).float()
    titles = [
        f"{Path(_image_and_frame(p.ids[i])[0]).name[:28]} {_image_and_frame(p.ids[i])[1]}\n"
        f"mean error {np.nanmean(errors[i]):.1f} px"
        for i in indices
    ]
    return plot_predictions(
        images,
        torch.from_numpy(p.target[indices]),
        torch.from_numpy(p.visible[indices]),
        torch.from_numpy(p.pred[indices]),
        meta,
        path,
        radius=torch.from_numpy(radius[indices]),
        titles=titles,
    )


def _format(value) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _markdown(table: pd.DataFrame) -> str:
    return markdown.table(table.columns, ([_format(v) for v in row] for row in table.itertuples(index=False)))


def _report_page(result: dict, split: str, table: pd.DataFrame, pictures: dict, norm_name: str) -> str:
    sections = [
        _overview_section(result, split, norm_name),
        _offset_note(result, split),
        _uncertainty_section(result, split),
        ["", "## Per keypoint", "", _markdown(table)],
        _figures_section(pictures),
    ]
    return "\n".join(line for section in sections for line in section) + "\n"


def _overview_section(result: dict, split: str, norm_name: str) -> list[str]:
    overall = [
        (key.split("/", 1)[1], _format(value) if value is not None else "missing")
        for key, value in result.items()
        if key.startswith(f"{split}/") and key.count("/") == 1
    ]
    lines = [
        f"# Evaluation: {split} split",
        "",
        f"Checkpoint `{result['checkpoint']}`, {result['samples']} samples, flip test "
        f"{'on' if result['flip'] else 'off'}. Errors are in the network's input pixels; PCK thresholds are "
        f"fractions of {norm_name}.",
        "",
        markdown.table(["metric", "value"], overall).rstrip("\n"),
    ]
    if result["missing"]:
        lines += ["", "Missing metrics:", *(f"- `{key}`: {reason}" for key, reason in result["missing"].items())]
    if result["unlabelled_samples"]:
        listed = ", ".join(f"`{i}`" for i in result["unlabelled_ids"][:20])
        more = " …" if result["unlabelled_samples"] > 20 else ""
        lines += [
            "",
            f"{result['unlabelled_samples']} samples have no labelled keypoint and are left out of every "
            f"average: {listed}{more}",
        ]
    return lines


def _offset_note(result: dict, split: str) -> list[str]:
    """A paragraph when the mean signed error is a sizeable share of the RMSE: a systematic offset."""
    dx, dy, rmse = (result.get(f"{split}/{key}") for key in ("offset_x_px", "offset_y_px", "rmse"))
    if dx is None or not rmse or max(abs(dx), abs(dy)) <= OFFSET_NOTE * rmse:
        return []
    return [
        "",
        f"The predictions sit {_format(dx)} px in x and {_format(dy)} px in y from the labels on average: a "
        f"systematic offset, not noise. An x offset after mirror augmentation means the labels' x is not "
        f"mirror-symmetric (drawn at x + c, which a mirror turns into x - c): train without the mirror "
        f"(`augment.hflip=null`) to learn that convention; see the docs, Evaluation: Flip test.",
    ]


def _uncertainty_section(result: dict, split: str) -> list[str]:
    """The radius's promise, its coverage here and how it grows on the worst samples; a value that could not be
    computed is named with the reason (too few samples, no labelled keypoint), never printed as None."""
    calib = result["calibration"]

    def value(key: str) -> str | None:
        number = result[f"{split}/{key}"]
        return None if number is None else _format(number)

    def reason(key: str) -> str:
        return result["missing"].get(f"{split}/{key}", "not computed")

    coverage = (
        f"Coverage here: **{value('coverage')}**; median radius {value('median_radius_px')} px"
        if value("coverage") is not None
        else f"Coverage is not measured here: {reason('coverage')}"
    )
    tenths = ("radius_adaptivity", "error_adaptivity", "coverage_worst_tenth")
    if all(value(key) is not None for key in tenths):
        worst = (
            f"; the worst tenth of samples get {value('radius_adaptivity')}× the radius of the best tenth (a circle "
            f"through each true point would give {value('error_adaptivity')}×), and their coverage is "
            f"{value('coverage_worst_tenth')}."
        )
    else:
        key = next(key for key in tenths if value(key) is None)
        worst = f". The worst tenth of samples is not compared with the best tenth: {reason(key)}."
    return [
        "",
        "## Uncertainty",
        "",
        f"Each prediction carries a radius meant to hold the true point with probability {1 - calib['alpha']:g} "
        f"(split conformal, calibrated on the validation split, scaled by the prediction's spread"
        f"{' and flip disagreement' if calib['flip'] else ''} and by how low its own and its image's scores are)."
        f" {coverage}{worst}",
    ]


def _figures_section(pictures: dict) -> list[str]:
    captions = {
        "pck_curve.png": "PCK curve",
        "keypoint_errors.png": "error per keypoint",
        "error_vs_score.png": "error against score",
        "worst.png": "the worst samples (green: truth, red: prediction, cyan: radius)",
        "counts.png": "predicted against true count; count error",
    }
    return [
        "## Figures",
        "",
        *(f"**{captions[name]}**\n\n![{captions[name]}]({name})\n" for name in pictures),
        "Every row behind these figures: `errors.csv` (one row per sample and keypoint), `pck_curve.csv`.",
    ]


def _to_wandb(loggers, split: str, pictures: dict, errors_csv: Path) -> None:
    """With a W&B logger (Lightning's, which kp's subclasses): the pictures as images and errors.csv as a table."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            for name, path in pictures.items():
                logger.log_image(f"{split}/report/{Path(name).stem}", [str(path)])
            logger.log_table(f"{split}/errors", dataframe=pd.read_csv(errors_csv))
