"""The evaluation report's numbers (kp.evaluation.report writes and draws them): from a split's predictions
(kp.evaluation.evaluate.SplitPredictions) to the metrics, the PCK curve, the uncertainty radius's coverage and
adaptivity, the per-keypoint table and the per-sample rows, with the reason for every metric that cannot be computed.
Nothing here writes a file or draws: the computing half, as MMPose keeps evaluation/functional apart from its metrics.

The label-free error signal: each prediction's distance to its reprojection on the pose priors the checkpoint carries
(kp.unsupervised_losses: the pose PCA and the multi-view PCA of the training labels), per keypoint beside the true
error, and how well it tracks the true error: the Spearman correlation, over the labelled samples, of a sample's mean
prior error with its mean true error (and of 1 - its mean score, the confidence, for comparison). kp refine ranks
frames by the same per-frame mean.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

PCK_CURVE_MAX = 0.2  # the PCK curve runs from 0 to this fraction of the PCK normalising length
PCK_CURVE_STEPS = 41
MIN_TENTHS_SAMPLES = 10  # the radius adaptivity and the worst tenth's coverage need a tenth of at least one sample
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
    priors: dict[str, np.ndarray]  # pose prior name -> N×K error signal, input pixels (NaN: not measured)
    priors_absent: dict[str, str]  # pose prior name -> why the checkpoint has none


def score(p, predictor, split: str, flip: bool) -> Scores:
    """Every figure of the report from SplitPredictions `p`: the PCK curve, the metrics (with why any is missing),
    the uncertainty radius and its coverage, and the per-keypoint table."""
    meta, module = predictor.meta, predictor.module
    radius = predictor.calibrations[flip].radius(p.difficulty)
    covered = np.where(p.visible, p.errors <= radius, False)
    thresholds, pck = pck_curve(p)
    auc = float(np.trapezoid(pck, thresholds) / PCK_CURVE_MAX)
    priors = predictor.pose_prior_errors(p.pred)
    metrics = dict(p.metrics)
    metrics.update(split_metrics(p, radius, covered, auc, split))
    metrics.update(signal_metrics(p, priors, split))
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
        table=keypoint_table(p, p.errors, radius, covered, metrics, split, meta.names, module.metric_names, priors),
        norm_name="the normalising pair's distance" if module.pck_norm == "pair" else "the input's longer side",
        priors=priors,
        priors_absent=predictor.pose_priors_absent,
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


def signal_metrics(p, priors: dict[str, np.ndarray], split: str) -> dict[str, float]:
    """Each pose prior's mean error (input pixels); for it and the confidence (1 - score), the Spearman correlation
    over the labelled samples of the sample's mean signal with its mean true error (module docstring); and for each
    prior, the same over the labelled keypoints it measures, one keypoint at a time, beside the confidence's on the
    same keypoints."""
    labelled, true_error = sample_errors(p.errors, p.visible)
    confidence = 1 - p.scores.astype(np.float64)  # float32 would round scores near 1 into ties
    metrics = {f"{split}/score_spearman": spearman(confidence[labelled].mean(1), true_error)}
    for name, errors in priors.items():
        measured = p.visible & np.isfinite(errors)
        metrics[f"{split}/{name}_px"] = _mean(errors[np.isfinite(errors)])
        # a prior measures the same keypoints in every sample: no sample's mean is over nothing
        metrics[f"{split}/{name}_spearman"] = spearman(np.nanmean(errors[labelled], 1), true_error)
        metrics[f"{split}/{name}_spearman_keypoint"] = spearman(errors[measured], p.errors[measured])
        metrics[f"{split}/{name}_spearman_keypoint_score"] = spearman(confidence[measured], p.errors[measured])
    return metrics


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """The Spearman rank correlation (ties ranked by their mean); NaN with fewer than 3 pairs or a constant side."""
    a, b = rankdata(a), rankdata(b)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


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


def keypoint_table(p, errors, radius, covered, metrics, split, names, metric_names, priors) -> pd.DataFrame:
    """One row per keypoint: its true error over the samples where it is labelled, the metrics, the radius, and each
    pose prior's mean error (input pixels) over every sample, labelled or not (the signal needs no label)."""
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
        for prior, prior_errors in priors.items():
            measured = prior_errors[:, k][np.isfinite(prior_errors[:, k])]
            row[f"{prior}_px"] = _mean(measured)
        rows.append(row)
    return pd.DataFrame(rows)


def error_rows(p, errors, radius, names, priors) -> pd.DataFrame:
    """One row per sample and keypoint, in the network's input pixels (and the error in the source image's), with
    each pose prior's error signal."""
    n, k = errors.shape
    images, frames = zip(*(image_and_frame(sample_id) for sample_id in p.ids)) if n else ((), ())
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
        **{f"{prior}_px": prior_errors.reshape(-1) for prior, prior_errors in priors.items()},
    }
    if p.count_true is not None:
        columns["count_true"], columns["count_pred"] = np.repeat(p.count_true, k), np.repeat(p.count_pred, k)
    return pd.DataFrame(columns)


def image_and_frame(sample_id: str) -> tuple[str, str]:
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
        elif "_spearman" in key:
            reasons[key] = "fewer than 3 labelled samples, or the same signal or error on all of them"
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
