"""The evaluation report (docs: Evaluation): what kp.evaluation.evaluate and the end of train.py write for a split.
The numbers come from kp.evaluation.scores, the figures from kp.viz.evaluation; this module writes and lays them out.

metrics.json     the module's metrics (as train.py's test logs them) + PCK AUC, median and p90 error, the coverage
                 of the uncertainty radius (overall, per keypoint, over the worst tenth of samples) and its
                 adaptivity; the label-free error signal's mean and its Spearman correlation with the true error
                 (kp.evaluation.scores); a metric that cannot be computed is null, with the reason under "missing";
                 samples with no labelled keypoint are counted and listed
keypoints.csv/md one row per keypoint (with each pose prior's mean error signal)
errors.csv       one row per sample and keypoint (input pixels, and the error in the source image's pixels; each
                 pose prior's error signal)
pck_curve.csv/png, keypoint_errors.png, error_vs_score.png, worst.png, counts.png (count models)
report.md        all of it on one page
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.loggers import WandbLogger

from kp import markdown
from kp.defaults import WORST_SAMPLES
from kp.evaluation.scores import Scores, error_rows, image_and_frame, score, worst_samples
from kp.unsupervised_losses import PRIORS
from kp.viz import evaluation as figures
from kp.viz import plot_predictions

OFFSET_NOTE = 0.25  # the report names a mean signed error above this share of the RMSE: systematic, not noise


def write(
    p, predictor, dataset, split: str, out: Path, flip: bool, num_worst: int = WORST_SAMPLES, loggers=(), data: str = ""
) -> dict:
    """Write the report of SplitPredictions `p` (kp.evaluation.evaluate) into `out`; return its metrics.json content.
    `data` names the data scored (the header's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = score(p, predictor, split, flip)
    _write_tables(out, p, scores, predictor.meta.names)
    pictures = _draw_figures(out, p, scores, dataset, predictor.meta, num_worst)
    result = _summary(scores, p, predictor, flip, out) | {"data": data}
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(_report_page(result, split, scores.table, pictures, scores.norm_name))
    _to_wandb(loggers, split, pictures, out / "errors.csv")
    return result


def _write_tables(out: Path, p, scores: Scores, names: list[str]) -> None:
    """pck_curve.csv, keypoints.csv and .md, errors.csv."""
    pd.DataFrame({"threshold": scores.thresholds, "pck": scores.pck}).to_csv(out / "pck_curve.csv", index=False)
    scores.table.to_csv(out / "keypoints.csv", index=False, float_format="%.6g")
    (out / "keypoints.md").write_text(_markdown(scores.table))
    # full precision: coverage recomputed from the file must see the same error <= radius as here
    error_rows(p, p.errors, scores.radius, names, scores.priors).to_csv(out / "errors.csv", index=False)


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
            "pose_priors_absent": scores.priors_absent,
            "report": str(out / "report.md"),
        }
    )
    return result


def _gallery(indices, p, errors, radius, dataset, meta, path: Path) -> Path:
    images = torch.stack([dataset[int(i)]["image"] for i in indices]).float()
    titles = [
        f"{Path(image_and_frame(p.ids[i])[0]).name[:28]} {image_and_frame(p.ids[i])[1]}\n"
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


def _optional(value) -> str:
    """A metrics.json value for the page: null (not computed) as —."""
    return "—" if value is None else _format(value)


def _markdown(table: pd.DataFrame) -> str:
    return markdown.table(table.columns, ([_format(v) for v in row] for row in table.itertuples(index=False)))


def _report_page(result: dict, split: str, table: pd.DataFrame, pictures: dict, norm_name: str) -> str:
    sections = [
        _overview_section(result, split, norm_name),
        _offset_note(result, split),
        _uncertainty_section(result, split),
        _signal_section(result, split),
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
        f"# Evaluation: {split} split, flip test {'on' if result['flip'] else 'off'}",
        "",
        f"Data: {result.get('data') or 'not recorded'}. Checkpoint `{result['checkpoint']}`, {result['samples']} "
        "samples. Errors are in the network's input pixels; PCK thresholds are "
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


def _signal_section(result: dict, split: str) -> list[str]:
    """The pose priors' label-free error signal (kp.evaluation.scores) and how well it tracks the true error here,
    beside the confidence's; why a prior is absent."""
    lines = ["", "## Label-free error signal", ""]
    score = result.get(f"{split}/score_spearman")
    for name in PRIORS:
        if name in result["pose_priors_absent"]:
            lines.append(f"- `{name}`: not measured: {result['pose_priors_absent'][name]}.")
            continue
        key = f"{split}/{name}_spearman"
        rho, per_keypoint, its_score = (result.get(key + end) for end in ("", "_keypoint", "_keypoint_score"))
        tracks = (
            f"per labelled sample, the Spearman correlation of its mean {name} error with its mean true error is "
            f"**{_format(rho)}** (the confidence's, 1 - mean score: {_optional(score)}); per labelled keypoint it "
            f"measures, {_optional(per_keypoint)} (the confidence's: {_optional(its_score)})"
            if rho is not None
            else f"its correlation with the true error is not measured: {result['missing'].get(key)}"
        )
        lines.append(f"- `{name}`: mean {_format(result[f'{split}/{name}_px'])} px; {tracks}.")
    return [
        *lines,
        "",
        "Each predicted keypoint's distance to its reprojection on a PCA of the training labels (pose: the whole "
        "pose; multi-view: each body part's views), fitted at training and carried by the checkpoint. It needs no "
        "label (`kp refine` ranks video frames by it); here the labels say how far to trust it. Per keypoint: the "
        "`*_pca_px` columns below, input pixels, over every sample.",
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
