"""The label doctor: `kp doctor data=<name> [overrides] [--run RUN] [--out DIR] [--worst N]`."""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import open_dict
from rich import get_console
from rich.progress import track

from kp import markdown
from kp.data.datamodule import SPLITS
from kp.data.splits import NEAR_BITS, difference_hash
from kp.errors import ModelLoadError
from kp.inference.load import load
from kp.viz import doctor as figures
from kp.viz.doctor import Panel

SWAP_RATIO = 0.5  # a pair is a swap suspect when swapping it at least halves its distance to the mean shape


@dataclass
class Sample:
    split: str
    id: str
    image: np.ndarray  # H×W×C uint8, as the loader gives it
    keypoints: np.ndarray  # K×2 in the image's pixels
    labelled: np.ndarray  # K bool


@dataclass
class Findings:
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (images, labelled keypoints)
    coverage: dict[str, np.ndarray] = field(default_factory=dict)  # split -> K fractions labelled
    exact_duplicates: list[list[tuple[str, str]]] = field(default_factory=list)  # groups of (split, id)
    near_duplicates: list[tuple[tuple[str, str], tuple[str, str], int]] = field(default_factory=list)  # a, b, bits
    outside: list[tuple[str, str, str]] = field(default_factory=list)  # split, id, keypoint name
    unit_suspects: list[tuple[str, str]] = field(default_factory=list)
    swaps: list[tuple[str, str, str, str, float]] = field(default_factory=list)  # split, id, name a, name b, ratio
    outliers: list[tuple[str, str, float, str]] = field(default_factory=list)  # split, id, score, worst point
    disagreements: list[tuple[str, str, float, str]] = field(default_factory=list)  # split, id, px error, worst point
    # with a model: per keypoint, its mean disagreement with the labels and each pose prior's mean error signal (px)
    keypoint_disagreement: np.ndarray | None = None  # K
    prior_errors: dict[str, np.ndarray] = field(default_factory=dict)  # pose prior name -> K
    priors_absent: dict[str, str] = field(default_factory=dict)  # pose prior name -> why the model has none
    issues: list[str] = field(default_factory=list)  # samples and points the loader left out

    def across_splits(self) -> list[list[tuple[str, str]]]:
        return [group for group in self.exact_duplicates if len({split for split, _ in group}) > 1]


def read_samples(datamodule) -> list[Sample]:
    samples = []
    for split in SPLITS:
        data = datamodule.splits[split]
        # no bar where output is not a terminal: rich would leave a blank line per split
        bar = get_console().is_terminal
        for i in track(range(len(data)), description=f"reading {split}", transient=True, disable=not bar):
            raw = data.load(i)
            image = np.asarray(raw.image)
            if image.dtype != np.uint8:
                image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
            samples.append(
                Sample(
                    split,
                    raw.id or f"{split}#{i}",
                    image if image.ndim == 3 else image[:, :, None],
                    np.asarray(raw.keypoints, np.float64),
                    np.asarray(raw.visible, bool) & np.isfinite(raw.keypoints).all(axis=1),
                )
            )
    return samples


def find_duplicates(samples: list[Sample], findings: Findings) -> None:
    exact = defaultdict(list)
    for s in samples:
        exact[hashlib.blake2b(s.image.tobytes() + str(s.image.shape).encode(), digest_size=16).digest()].append(s)
    # A split that is another by design (facial: test = val) is not a leak: the same id twice is one image.
    findings.exact_duplicates = [
        [(s.split, s.id) for s in group] for group in exact.values() if len({s.id for s in group}) > 1
    ]
    hashes = np.array([difference_hash(s.image) for s in samples], np.uint64)
    ids = [s.id for s in samples]
    exact_pairs = {frozenset((a, b)) for group in findings.exact_duplicates for _, a in group for _, b in group}
    for i in range(len(samples)):
        xor = hashes[i + 1 :] ^ hashes[i]
        bits = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for j in np.flatnonzero(bits <= NEAR_BITS) + i + 1:
            if ids[i] != ids[j] and frozenset((ids[i], ids[j])) not in exact_pairs:
                findings.near_duplicates.append(
                    ((samples[i].split, ids[i]), (samples[j].split, ids[j]), int(bits[j - i - 1]))
                )


def align(shape: np.ndarray, mean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """shape (K×2) moved by the similarity (shift, scale, rotation; no reflection) that best fits its `mask` points
    onto the same points of `mean` (least squares, Umeyama)."""
    a, b = shape[mask], mean[mask]
    ca, cb = a.mean(0), b.mean(0)
    a0, b0 = a - ca, b - cb
    u, sigma, vt = np.linalg.svd(b0.T @ a0)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, d]) @ vt
    scale = (sigma * [1, d]).sum() / max((a0**2).sum(), 1e-12)
    return (shape - ca) @ rotation.T * scale + cb


def mean_shape(samples: list[Sample], k: int, iterations: int = 5) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Generalised Procrustes over the samples with at least 3 labelled points: the mean shape (centred, unit
    size) and each sample aligned to it (None where it has too few points)."""
    usable = [s.labelled.sum() >= 3 for s in samples]
    complete = [s for s, ok in zip(samples, usable) if ok and s.labelled.all()]
    start = complete[0] if complete else next(s for s, ok in zip(samples, usable) if ok)
    mean = np.where(start.labelled[:, None], start.keypoints, np.nan)
    aligned: list[np.ndarray | None] = [None] * len(samples)
    for _ in range(iterations):
        mean = mean - np.nanmean(mean, axis=0)
        mean = mean / np.sqrt(np.nansum(mean**2) / np.isfinite(mean[:, 0]).sum())
        filled = np.where(np.isfinite(mean), mean, 0.0)
        for n, (s, ok) in enumerate(zip(samples, usable)):
            mask = s.labelled & np.isfinite(mean[:, 0])
            if ok and mask.sum() >= 3:
                aligned[n] = np.where(s.labelled[:, None], align(s.keypoints, filled, mask), np.nan)
        stacked = np.stack([a for a in aligned if a is not None])
        mean = np.nanmean(stacked, axis=0) if len(stacked) else mean
    return mean, aligned


def find_shape_problems(samples, meta, findings: Findings, worst: int) -> tuple[np.ndarray, list]:
    if not any(s.labelled.sum() >= 3 for s in samples):
        return np.zeros((meta.num_keypoints, 2)), [None] * len(samples)
    mean, aligned = mean_shape(samples, meta.num_keypoints)
    residuals = np.stack(
        [np.linalg.norm(a - mean, axis=1) if a is not None else np.full(len(mean), np.nan) for a in aligned]
    )
    # One misplaced point hardly moves a shape's overall distance: rank by the worst point instead, in units of that
    # point's usual residual (eyes sit tight, jaw ends wander with the pose).
    typical = np.nanmedian(residuals, axis=0)
    typical = np.where(np.isfinite(typical) & (typical > 0), typical, np.nanmedian(typical))
    distances = []
    pairs = np.array(meta.flip_pairs or [], int).reshape(-1, 2)
    for s, a, residual in zip(samples, aligned, residuals):
        if a is None:
            continue
        score = residual / typical
        distances.append((s.split, s.id, float(np.nanmax(score)), meta.names[int(np.nanargmax(score))]))
        if pairs.size:
            i, j = pairs[:, 0], pairs[:, 1]
            keep = np.linalg.norm(a[i] - mean[i], axis=1) + np.linalg.norm(a[j] - mean[j], axis=1)
            swap = np.linalg.norm(a[i] - mean[j], axis=1) + np.linalg.norm(a[j] - mean[i], axis=1)
            for n in np.flatnonzero(swap < SWAP_RATIO * keep):  # NaN (a point unlabelled) compares False
                findings.swaps.append((s.split, s.id, meta.names[i[n]], meta.names[j[n]], float(swap[n] / keep[n])))
    findings.outliers = sorted(distances, key=lambda d: -d[2])[:worst]
    return mean, aligned


def find_outside_and_units(samples: list[Sample], meta, findings: Findings) -> None:
    for s in samples:
        height, width = s.image.shape[:2]
        points = s.keypoints[s.labelled]
        if len(points) >= 2 and points.min() >= 0 and points.max() <= 1 and min(width, height) >= 8:
            findings.unit_suspects.append((s.split, s.id))
        outside = s.labelled & (
            (s.keypoints[:, 0] < -0.5)
            | (s.keypoints[:, 0] > width - 0.5)
            | (s.keypoints[:, 1] < -0.5)
            | (s.keypoints[:, 1] > height - 0.5)
        )
        findings.outside += [(s.split, s.id, meta.names[k]) for k in np.flatnonzero(outside)]


def find_disagreements(samples: list[Sample], run: str, meta, findings: Findings, worst: int) -> list:
    predictor = load(run)
    if predictor.meta.names != meta.names:
        raise ModelLoadError(
            f"--run {run} predicts {predictor.meta.names}, the data has {meta.names}: pick a run trained on this data"
        )
    errors, predictions, priors = [], [], defaultdict(list)
    for start in track(range(0, len(samples), 32), description="predicting"):
        images, affines = predictor.prepare([s.image for s in samples[start : start + 32]])
        keypoints, _ = predictor.predict_batch(images, affines)
        predictions += list(keypoints)
        for name, prior_errors in predictor.pose_prior_errors(keypoints, affines).items():
            priors[name].append(prior_errors)
    labelled = np.array([s.labelled for s in samples])
    distances = np.linalg.norm(np.array(predictions) - np.array([s.keypoints for s in samples]), axis=-1)
    with warnings.catch_warnings():  # a keypoint labelled nowhere, or a prior that does not measure it: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        findings.keypoint_disagreement = np.nanmean(np.where(labelled, distances, np.nan), axis=0)
        findings.prior_errors = {name: np.nanmean(np.concatenate(parts), axis=0) for name, parts in priors.items()}
    findings.priors_absent = predictor.pose_priors_absent
    for s, predicted in zip(samples, predictions):
        if s.labelled.any():
            distance = np.linalg.norm(predicted - s.keypoints, axis=1)
            distance[~s.labelled] = -1
            errors.append((s.split, s.id, float(distance[s.labelled].mean()), meta.names[int(distance.argmax())]))
    findings.disagreements = sorted(errors, key=lambda e: -e[2])[:worst]
    return predictions


def _back_to_image(mean: np.ndarray, sample: Sample) -> np.ndarray:
    """The mean shape laid over a sample: aligned onto its labelled points."""
    mask = sample.labelled & np.isfinite(mean[:, 0])
    return align(np.where(np.isfinite(mean), mean, 0.0), sample.keypoints, mask)[mask]


def diagnose(cfg, run: str | None = None, out: str | Path = "doctor", worst: int = 8) -> tuple[Path, Findings]:
    with open_dict(cfg):
        cfg.data.transforms = {}  # the loader's own samples, no augmentation
        cfg.data.allow_leaks = True  # the doctor reports leaks rather than stopping at them
        cfg.data.num_workers = 0
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    meta = datamodule.meta
    samples = read_samples(datamodule)
    findings = Findings(issues=datamodule.issues)
    for split in SPLITS:
        members = [s for s in samples if s.split == split]
        labelled = np.array([s.labelled for s in members]).reshape(-1, meta.num_keypoints)
        findings.counts[split] = (len(members), int(labelled.sum()))
        findings.coverage[split] = labelled.mean(axis=0) if len(members) else np.zeros(meta.num_keypoints)
    find_duplicates(samples, findings)
    find_outside_and_units(samples, meta, findings)
    mean, _ = find_shape_problems(samples, meta, findings, worst)
    predictions = find_disagreements(samples, run, meta, findings, worst) if run else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _pictures(out, samples, meta, findings, mean, predictions)
    report = out / "report.md"
    report.write_text(_markdown(cfg, meta, findings, run))
    return report, findings


def _pictures(out: Path, samples, meta, findings: Findings, mean, predictions) -> None:
    """coverage.png and a grid per finding (duplicates, swaps, outliers, and disagreements with a model)."""
    by_id = {(s.split, s.id): n for n, s in enumerate(samples)}

    def panel(key, title, overlays=()):
        s = samples[by_id[key]]
        return Panel(s.image, s.keypoints, s.labelled, title, list(overlays))

    def pair_points(key, a, b):
        return samples[by_id[key]].keypoints[[meta.names.index(a), meta.names.index(b)]]

    figures.coverage(out / "coverage.png", findings.coverage, meta.names)
    pairs = [group[:2] for group in findings.exact_duplicates][:6] + [[a, b] for a, b, _ in findings.near_duplicates][
        : max(0, 6 - len(findings.exact_duplicates))
    ]
    figures.grid(
        out / "duplicates.png", [panel(key, f"{key[0]}: {Path(key[1]).name}") for pair in pairs for key in pair]
    )
    figures.grid(
        out / "swaps.png",
        [
            panel(
                (split, id_), f"{Path(id_).name}: {a} / {b}? (red)", [(pair_points((split, id_), a, b), "red", "pair")]
            )
            for split, id_, a, b, _ in findings.swaps[:8]
        ],
    )
    figures.grid(
        out / "outliers.png",
        [
            panel(
                (split, id_),
                f"{Path(id_).name}: {d:.1f}× at {worst_point}",
                [(_back_to_image(mean, samples[by_id[(split, id_)]]), "red", "mean shape")],
            )
            for split, id_, d, worst_point in findings.outliers
        ],
    )
    if predictions is not None:
        figures.grid(
            out / "disagreements.png",
            [
                panel(
                    (split, id_),
                    f"{Path(id_).name}: {e:.1f} px, worst {worst_point}",
                    [(predictions[by_id[(split, id_)]], "red", "model")],
                )
                for split, id_, e, worst_point in findings.disagreements
            ],
        )


def _picture(name: str) -> list[str]:
    """report.md's lines showing <name>.png."""
    return ["", f"![{name}]({name}.png)", ""]


def _name(split: str, id_: str) -> str:
    return f"`{id_}` ({split})"


def _markdown(cfg, meta, findings: Findings, run: str | None) -> str:
    """report.md: one section per check, in the order the doctor runs them."""
    sections = [
        _overview_section(cfg, meta, findings),
        _coverage_section(meta, findings),
        _duplicates_section(findings),
        _outside_section(findings),
        _swaps_section(meta, findings),
        _outliers_section(findings),
        _disagreements_section(meta, findings, run) if run else [],
        _left_out_section(findings),
    ]
    return "\n".join(line for section in sections for line in section) + "\n"


def _overview_section(cfg, meta, findings: Findings) -> list[str]:
    pairs = "unknown" if meta.flip_pairs is None else len(meta.flip_pairs)
    counts = markdown.table(
        ["split", "images", "labelled keypoints"], [(split, n, k) for split, (n, k) in findings.counts.items()]
    )
    return [
        f"# Label doctor: {cfg.data.dataset._target_}",
        "",
        f"{meta.num_keypoints} keypoints; flip pairs: {pairs}",
        "",
        counts.rstrip("\n"),
    ]


def _coverage_section(meta, findings: Findings) -> list[str]:
    train = findings.coverage["train"]
    low = [(meta.names[k], float(train[k])) for k in range(meta.num_keypoints) if train[k] < 0.5]
    return [
        "",
        "## Label coverage per keypoint",
        "",
        "![coverage](coverage.png)",
        "",
        f"- labelled in under half the training images: {', '.join(f'{n} ({c:.0%})' for n, c in low)}"
        if low
        else "- every keypoint is labelled in at least half the training images",
        "",
    ]


def _duplicates_section(findings: Findings) -> list[str]:
    across = findings.across_splits()
    near_across = [(a, b, bits) for a, b, bits in findings.near_duplicates if a[0] != b[0]]
    return [
        "## Duplicates",
        "",
        f"- exact duplicates (same pixels): {len(findings.exact_duplicates)} group(s), "
        f"{len(across)} across splits (a leak: validation and test see training images)",
        *(f"  - {' = '.join(_name(*key) for key in group)}" for group in findings.exact_duplicates[:20]),
        f"- near-duplicates (difference hash ≤ {NEAR_BITS} bits apart): {len(findings.near_duplicates)} pair(s), "
        f"{len(near_across)} across splits",
        *(
            f"  - {_name(*a)} ~ {_name(*b)} ({bits} bits)"
            for a, b, bits in (near_across or findings.near_duplicates)[:20]
        ),
        *_picture("duplicates"),
    ]


def _outside_section(findings: Findings) -> list[str]:
    return [
        "## Keypoints outside the image and unit suspects",
        "",
        f"- labelled keypoints outside their image: {len(findings.outside)}",
        *(f"  - {_name(split, id_)}: {kp}" for split, id_, kp in findings.outside[:20]),
        f"- samples whose coordinates all lie within [0, 1] (normalised, not pixels?): {len(findings.unit_suspects)}",
        *(f"  - {_name(*key)}" for key in findings.unit_suspects[:20]),
    ]


def _swaps_section(meta, findings: Findings) -> list[str]:
    unknown = ["- not checked: the dataset's flip pairs are unknown (data.dataset.flip_pairs)"]
    return [
        "",
        "## Suspected left/right swaps",
        "",
        *(unknown if meta.flip_pairs is None else []),
        f"- {len(findings.swaps)} pair(s) whose points each lie nearer the other's place in the mean shape",
        *(
            f"  - {_name(split, id_)}: {a} / {b} (swapped is {ratio:.2f}× the distance)"
            for split, id_, a, b, ratio in findings.swaps[:20]
        ),
        *_picture("swaps"),
    ]


def _outliers_section(findings: Findings) -> list[str]:
    return [
        "## Shape outliers",
        "",
        "After Procrustes alignment to the mean shape, each sample's point farthest from its place, in units of "
        "that point's median distance over the dataset (eyes sit tight, jaw ends wander), the worst first:",
        "",
        *(f"- {_name(split, id_)}: {d:.1f}× at {worst_point}" for split, id_, d, worst_point in findings.outliers),
        *_picture("outliers"),
    ]


def _disagreements_section(meta, findings: Findings, run: str) -> list[str]:
    return [
        "## Where the model disagrees with the labels",
        "",
        f"model: `{run}`",
        "",
        *(
            f"- {_name(split, id_)}: {e:.1f} px mean error, worst point {p}"
            for split, id_, e, p in findings.disagreements
        ),
        *_picture("disagreements"),
        *_keypoint_signal_section(meta, findings),
    ]


def _keypoint_signal_section(meta, findings: Findings) -> list[str]:
    """Per keypoint, the model's mean disagreement with the labels beside the mean label-free error signal of its
    pose priors (kp.unsupervised_losses: its distance to the PCA of the training labels), in the images' pixels."""
    priors = list(findings.prior_errors)
    columns = [findings.keypoint_disagreement, *(findings.prior_errors[p] for p in priors)]
    rows = [
        (name, *(f"{column[k]:.2f}" if np.isfinite(column[k]) else "—" for column in columns))
        for k, name in enumerate(meta.names)
    ]
    return [
        "Per keypoint, the mean distance between the model and the labels, and the mean of its label-free error "
        "signal: each prediction's distance to its reprojection on the PCA of the training labels the model carries "
        "(pose: the whole pose; multi-view: each body part's views), in the images' pixels, over every image.",
        "",
        markdown.table(["keypoint", "disagreement px", *(f"{p} px" for p in priors)], rows).rstrip("\n"),
        "",
        *(f"- `{name}`: not measured: {why}." for name, why in findings.priors_absent.items()),
    ]


def _left_out_section(findings: Findings) -> list[str]:
    return [
        "## What the loader left out",
        "",
        f"{len(findings.issues)} bad sample(s) or point(s)",
        *(f"- {issue}" for issue in findings.issues[:50]),
    ]
