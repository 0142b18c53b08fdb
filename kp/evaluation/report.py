"""The evaluation report (docs/evaluation.md, "Evaluate"): what kp.evaluation.evaluate and the end of train.py write
for a split.

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
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.loggers import WandbLogger

from kp.evaluation import figures
from kp.viz import plot_predictions

PCK_CURVE_MAX = 0.2  # the PCK curve runs from 0 to this fraction of the PCK normalising length
PCK_CURVE_STEPS = 41
MIN_TENTHS_SAMPLES = 10  # the radius adaptivity and the worst tenth's coverage need a tenth of at least one sample
OFFSET_NOTE = 0.25  # the report names a mean signed error above this share of the RMSE: systematic, not noise
_FRAME = re.compile(r"^(.*?)[:#](\d+)$")  # `file:line` (CSV row) and `file#annotation` ids


def write(
    p, predictor, dataset, split: str, out: Path, flip: bool, num_worst: int = 16, loggers=(), data: str = ""
) -> dict:
    """Write the report of SplitPredictions `p` (kp.evaluation.evaluate) into `out`; return its metrics.json content.
    `data` names the data scored (the header's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta, module = predictor.meta, predictor.module
    errors = p.errors
    fitted = predictor.calibrations[flip]
    radius = fitted.radius(p.difficulty)
    covered = np.where(p.visible, errors <= radius, False)
    norm_name = "the normalising pair's distance" if module.pck_norm == "pair" else "the input's longer side"

    thresholds = np.linspace(0, PCK_CURVE_MAX, PCK_CURVE_STEPS)
    curve_mask = p.visible & np.isfinite(p.pck_norm)[:, None]
    scaled = (errors / p.pck_norm[:, None])[curve_mask]
    pck = np.array([(scaled <= t).mean() for t in thresholds]) if scaled.size else np.full(len(thresholds), np.nan)
    auc = float(np.trapezoid(pck, thresholds) / PCK_CURVE_MAX)
    pd.DataFrame({"threshold": thresholds, "pck": pck}).to_csv(out / "pck_curve.csv", index=False)

    visible_errors = errors[p.visible]
    metrics = dict(p.metrics)
    metrics.update(
        {
            f"{split}/auc": auc,
            f"{split}/median_error_px": _quantile(visible_errors, 0.5),
            f"{split}/p90_error_px": _quantile(visible_errors, 0.9),
            # in the source images' pixels (a DeepLabCut frame's, before the loader's resize): rmse as defined above
            # (per coordinate), and the mean distance, which is what DeepLabCut reports as its "RMSE"
            f"{split}/rmse_source_px": _mean(p.source_errors[p.visible] ** 2 / 2) ** 0.5,
            f"{split}/mean_error_source_px": _mean(p.source_errors[p.visible]),
            # the mean signed error: labels drawn in a convention that a mirror does not keep (x + c instead of x)
            # show here as an x offset after mirror augmentation, which cannot learn it (docs: Flip test)
            f"{split}/offset_x_px": _mean((p.pred[..., 0] - p.target[..., 0])[p.visible]),
            f"{split}/offset_y_px": _mean((p.pred[..., 1] - p.target[..., 1])[p.visible]),
            f"{split}/coverage": float(covered.sum() / p.visible.sum()) if p.visible.any() else math.nan,
            f"{split}/median_radius_px": _quantile(radius[p.visible], 0.5),
            f"{split}/radius_adaptivity": radius_adaptivity(errors, radius, p.visible),
            # the adaptivity of a radius equal to each error, for comparison
            f"{split}/error_adaptivity": radius_adaptivity(errors, errors, p.visible),
            f"{split}/coverage_worst_tenth": worst_tenth_coverage(errors, radius, p.visible),
        }
    )
    for k, name in enumerate(meta.names):
        seen = p.visible[:, k]
        metrics[f"{split}/coverage/{name}"] = float(covered[seen, k].mean()) if seen.any() else math.nan
    missing = _missing_reasons(metrics, p, meta, module.pck_norm)
    unlabelled = [sample_id for sample_id, seen in zip(p.ids, p.visible) if not seen.any()]
    table = keypoint_table(p, errors, radius, covered, metrics, split, meta.names, module.metric_names)
    table.to_csv(out / "keypoints.csv", index=False, float_format="%.6g")
    (out / "keypoints.md").write_text(_markdown(table))
    # full precision: coverage recomputed from the file must see the same error <= radius as here
    error_rows(p, errors, radius, meta.names).to_csv(out / "errors.csv", index=False)

    pictures = {
        "pck_curve.png": figures.pck_curve(thresholds, pck, auc, norm_name, out / "pck_curve.png"),
        "keypoint_errors.png": figures.keypoint_errors(
            [errors[p.visible[:, k], k] for k in range(len(meta.names))], meta.names, out / "keypoint_errors.png"
        ),
        "error_vs_score.png": figures.error_against_score(
            visible_errors, p.scores[p.visible], out / "error_vs_score.png"
        ),
    }
    worst = worst_samples(errors, p.visible, num_worst)
    if len(worst):
        pictures["worst.png"] = _gallery(worst, p, errors, radius, dataset, meta, out / "worst.png")
    if p.count_true is not None:
        pictures["counts.png"] = figures.counts(
            p.count_true, p.count_pred, "count" if not meta.count_scale else "cards", out / "counts.png"
        )

    result = {
        key: (None if isinstance(value, float) and math.isnan(value) else value)
        for key, value in sorted(metrics.items())
    }
    result.update(
        {
            "missing": missing,
            "samples": len(p.ids),
            "unlabelled_samples": len(unlabelled),
            "unlabelled_ids": unlabelled,
            "checkpoint": str(predictor.checkpoint) if predictor.checkpoint else None,
            "flip": flip,
            "data": data,
            "calibration": fitted.to_dict(),
            "report": str(out / "report.md"),
        }
    )
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(_report_page(result, split, table, pictures, norm_name))
    _to_wandb(loggers, split, pictures, out / "errors.csv")
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
            reasons[key] = (
                f"fewer than {MIN_TENTHS_SAMPLES} labelled samples"
                if p.visible.any(1).sum() < MIN_TENTHS_SAMPLES
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
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _report_page(result: dict, split: str, table: pd.DataFrame, pictures: dict, norm_name: str) -> str:
    calib = result["calibration"]
    overall = [(key, value) for key, value in result.items() if key.startswith(f"{split}/") and key.count("/") == 1]
    lines = [
        f"# Evaluation: {split} split, flip test {'on' if result['flip'] else 'off'}",
        "",
        f"Data: {result.get('data') or 'not recorded'}. Checkpoint `{result['checkpoint']}`, {result['samples']} "
        "samples. Errors are in the network's input pixels; PCK thresholds are "
        f"fractions of {norm_name}.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [
        f"| {key.split('/', 1)[1]} | {_format(value) if value is not None else 'missing'} |" for key, value in overall
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
    dx, dy, rmse = (result.get(f"{split}/{key}") for key in ("offset_x_px", "offset_y_px", "rmse"))
    if dx is not None and rmse and max(abs(dx), abs(dy)) > OFFSET_NOTE * rmse:
        lines += [
            "",
            f"The predictions sit {_format(dx)} px in x and {_format(dy)} px in y from the labels on average: a "
            f"systematic offset, not noise. An x offset after mirror augmentation means the labels' x is not "
            f"mirror-symmetric (drawn at x + c, which a mirror turns into x - c): train without the mirror "
            f"(`augment.hflip=null`) to learn that convention; see the docs, Evaluation: Flip test.",
        ]
    lines += [
        "",
        "## Uncertainty",
        "",
        f"Each prediction carries a radius meant to hold the true point with probability {1 - calib['alpha']:g} "
        f"(split conformal, calibrated on the validation split, scaled by the prediction's spread"
        f"{' and flip disagreement' if calib['flip'] else ''} and by how low its own and its image's scores are)."
        f" Coverage here: "
        f"**{_format(result[f'{split}/coverage'])}**; median radius {_format(result[f'{split}/median_radius_px'])}"
        f" px; the worst tenth of samples get {_format(result[f'{split}/radius_adaptivity'])}× the radius of "
        f"the best tenth (a circle through each true point would give "
        f"{_format(result[f'{split}/error_adaptivity'])}×), and their coverage is "
        f"{_format(result[f'{split}/coverage_worst_tenth'])}.",
        "",
        "## Per keypoint",
        "",
        _markdown(table),
        "## Figures",
        "",
    ]
    captions = {
        "pck_curve.png": "PCK curve",
        "keypoint_errors.png": "error per keypoint",
        "error_vs_score.png": "error against score",
        "worst.png": "the worst samples (green: truth, red: prediction, cyan: radius)",
        "counts.png": "predicted against true count; count error",
    }
    lines += [f"**{captions[name]}**\n\n![{captions[name]}]({name})\n" for name in pictures]
    lines += ["Every row behind these figures: `errors.csv` (one row per sample and keypoint), `pck_curve.csv`."]
    return "\n".join(lines) + "\n"


def _to_wandb(loggers, split: str, pictures: dict, errors_csv: Path) -> None:
    """With a W&B logger (Lightning's, which kp's subclasses): the pictures as images and errors.csv as a table."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            for name, path in pictures.items():
                logger.log_image(f"{split}/report/{Path(name).stem}", [str(path)])
            logger.log_table(f"{split}/errors", dataframe=pd.read_csv(errors_csv))
