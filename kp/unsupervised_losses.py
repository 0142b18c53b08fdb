"""Loss terms that need no labels, for frames of unlabelled video (after lightning-pose, Biderman et al. 2024), and the
subspaces they measure poses against.

Each term reads predicted keypoints in input pixels (soft_argmax of the heatmaps, or the coordinates codec's decode:
both pass gradients) and their confidences, and has a weight with a warm-up: `weight_at(epoch)` is zero for the first
`warmup_start` epochs, then rises linearly to `weight` over `warmup_epochs`. Rectified terms are epsilon-insensitive:
only the part of an error beyond the allowance ε costs, so an error of the size the labels themselves show is free.

  temporal       per keypoint, the frame-to-frame distance beyond ε over a clip's T consecutive frames
  pose_pca       the distance of each keypoint to its reprojection on a PCA of the labelled poses
  multiview_pca  the same for each body part seen in V views: its 2·V coordinates lie in a 3-D subspace

The PCA terms are fitted once from the training labels (`fit(names, poses)`) before they are used; the same fit gives
a label-free error signal per keypoint for any predicted poses (`keypoint_errors`).

In training (kp.module), the terms see the keypoints of clips of unlabelled video (kp.data.unlabelled) as B×T×K×2:
the temporal term over each clip's T frames, the PCA terms on every frame.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import torch

from kp.errors import ConfigError
from kp.losses import LossTerm

log = logging.getLogger(__name__)

# View suffixes guess_views recognises: `_top`/`_bot` (a mirror rig), `_cam1`/`_cam2`, `_view1`, `_side`/`_front`.
VIEW_SUFFIX = re.compile(r"^(?P<stem>.+)_(?P<view>top|bot|bottom|side|front|cam\d+|view\d+)$", re.IGNORECASE)
MULTIVIEW_COMPONENTS = 3  # a point in 3-D seen through affine cameras: 2·V coordinates, 3 degrees of freedom


class UnlabelledTerm(LossTerm):
    """A loss on predicted keypoints with a warm-up (module docstring); forward(keypoints, scores) -> scalar."""

    requires = ("keypoints",)

    def __init__(self, weight: float = 1.0, warmup_start: int = 0, warmup_epochs: int = 0):
        super().__init__(weight)
        if warmup_start < 0 or warmup_epochs < 0:
            raise ConfigError(f"warmup_start and warmup_epochs must be >= 0, got {warmup_start}, {warmup_epochs}")
        self.warmup_start, self.warmup_epochs = warmup_start, warmup_epochs

    def weight_at(self, epoch: int) -> float:
        """The weight at a (0-based) epoch: 0 before warmup_start, then weight × (epochs in + 1) / warmup_epochs."""
        if epoch < self.warmup_start:
            return 0.0
        return self.weight * min(1.0, (epoch - self.warmup_start + 1) / max(self.warmup_epochs, 1))


class TemporalLoss(UnlabelledTerm):
    """Mean over keypoints and consecutive frame pairs of max(0, |p_t+1 - p_t| - epsilon), pixels; a pair counts only
    where both frames' confidence is at least `score_threshold`. keypoints ...×T×K×2 (T frames of a clip, in order),
    scores ...×T×K."""

    def __init__(self, epsilon: float = 0.0, score_threshold: float = 0.0, **warmup):
        super().__init__(**warmup)
        self.epsilon, self.score_threshold = epsilon, score_threshold

    def forward(self, keypoints: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        jump = (keypoints[..., 1:, :, :] - keypoints[..., :-1, :, :]).float().norm(dim=-1)
        confident = scores >= self.score_threshold
        counted = confident[..., 1:, :] & confident[..., :-1, :]
        excess = torch.where(counted, (jump - self.epsilon).clamp(min=0), torch.zeros_like(jump))
        return excess.sum() / counted.sum().clamp(min=1)


@dataclass
class Subspace:
    """A linear subspace of vectors of D numbers: mean D, components D×C (orthonormal columns), and epsilon, the
    `percentile` of the fitting vectors' own reprojection errors per point (px)."""

    mean: torch.Tensor
    components: torch.Tensor
    explained: float  # the share of the variance the components hold
    epsilon: float = 0.0

    def residual(self, vectors: torch.Tensor) -> torch.Tensor:
        """...×D: each vector minus its projection on the subspace."""
        centred = vectors - self.mean.to(vectors)
        components = self.components.to(vectors)
        return centred - centred @ components @ components.T


def fit_subspace(vectors: np.ndarray, variance: float | None = 0.99, components: int | None = None) -> Subspace:
    """PCA of N×D vectors (centred): the first `components`, or as many as hold `variance` of the variance."""
    vectors = np.asarray(vectors, np.float64)
    mean = vectors.mean(0)
    _, singular, vt = np.linalg.svd(vectors - mean, full_matrices=False)
    shares = np.cumsum(singular**2) / max((singular**2).sum(), 1e-300)
    count = components if components is not None else int(np.searchsorted(shares, variance - 1e-12) + 1)
    return Subspace(
        torch.as_tensor(mean),
        torch.as_tensor(vt[:count].T.copy()),
        float(shares[min(count, len(shares)) - 1]),
    )


def point_errors(residual: torch.Tensor) -> torch.Tensor:
    """...×2P residuals of P points (x, y interleaved) -> ...×P distances."""
    return residual.unflatten(-1, (-1, 2)).norm(dim=-1)


class PosePCALoss(UnlabelledTerm):
    """Mean over keypoints of max(0, d - epsilon), d a keypoint's distance (px) to its reprojection on the pose PCA:
    the labelled poses (complete frames only) as 2K vectors, centred, `variance` of their variance kept; epsilon the
    `percentile` of the labelled keypoints' own distances. keypoints B×K×2 (scores are not used: a PCA needs every
    keypoint of a pose)."""

    prior = "pose_pca"  # its name among the pose priors a checkpoint carries (fit_pose_priors)

    def __init__(self, variance: float = 0.99, percentile: float = 99.0, **warmup):
        super().__init__(**warmup)
        self.variance, self.percentile = variance, percentile
        self.subspace: Subspace | None = None

    def samples(self, names: list[str], poses: np.ndarray) -> tuple[np.ndarray, str]:
        """The vectors the PCA is fitted on (the complete poses, 2K numbers each), and why they are too few ('' when
        they are enough)."""
        complete = np.isfinite(poses).all(axis=(1, 2))
        needed = 2 * len(names)  # at least as many poses as numbers in a pose, or the PCA is fitted to noise
        too_few = (
            f"{complete.sum()} of {len(poses)} labelled frames are complete (every keypoint labelled); a PCA of "
            f"{len(names)} keypoints needs at least {needed}"
        )
        return poses[complete].reshape(int(complete.sum()), -1), too_few if complete.sum() < needed else ""

    def fit(self, names: list[str], poses: np.ndarray) -> PosePCALoss:
        """Fit on the labelled poses N×K×2 (NaN where a keypoint is not labelled), in the pixels the predictions
        will be in (the model's input)."""
        vectors, too_few = self.samples(names, poses)
        if too_few:
            raise ConfigError(f"loss pose_pca: {too_few}: label more frames fully or drop the term (~loss.pose_pca)")
        self.subspace = fit_subspace(vectors, self.variance)
        own = point_errors(self.subspace.residual(torch.as_tensor(vectors)))
        self.subspace.epsilon = float(np.percentile(own.numpy(), self.percentile))
        log.info(
            "pose_pca: %d components hold %.1f%% of the variance of %d complete frames; epsilon %.2f px",
            self.subspace.components.shape[1],
            100 * self.subspace.explained,
            len(vectors),
            self.subspace.epsilon,
        )
        return self

    def errors(self, keypoints: torch.Tensor) -> torch.Tensor:
        """...×K×2 -> ...×K distance of each keypoint to its reprojection, px."""
        if self.subspace is None:
            raise RuntimeError(f"{type(self).__name__} is used before fit(names, poses)")
        return point_errors(self.subspace.residual(keypoints.flatten(-2).float()))

    def keypoint_errors(self, keypoints: torch.Tensor) -> torch.Tensor:
        """B×K×2 -> B×K: each keypoint's distance to its reprojection, px (NaN for one the term does not measure)."""
        return self.errors(keypoints)

    def forward(self, keypoints: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        return (self.errors(keypoints) - self.subspace.epsilon).clamp(min=0).mean()

    def state(self) -> dict:
        """The fit as plain numbers, in the model's input pixels (kp.build.InferenceSpec.pose_priors: a checkpoint,
        an ONNX file's metadata): the mean, the components (D×C), the share of the variance they hold and epsilon;
        `from_state` rebuilds the fitted term."""
        s = self.subspace
        return {
            "mean": s.mean.tolist(),
            "components": s.components.tolist(),
            "explained": s.explained,
            "epsilon": s.epsilon,
        }

    @classmethod
    def from_state(cls, state: dict) -> PosePCALoss:
        term = cls()
        mean = torch.tensor(state["mean"], dtype=torch.float64)
        components = torch.tensor(state["components"], dtype=torch.float64).reshape(len(mean), -1)
        term.subspace = Subspace(mean, components, float(state["explained"]), float(state["epsilon"]))
        return term


class MultiviewPCALoss(PosePCALoss):
    """For each body part seen in V views, its stacked coordinates (2·V numbers) lie in a 3-D subspace fitted on the
    labelled frames (every body part of every frame where all its views are labelled is one sample); the loss is the
    mean of max(0, d - epsilon) over the views' keypoints. `views`: one list of keypoint names per body part, in the
    same view order (e.g. [[nose_top, nose_bot], [tail_top, tail_bot]]); None: guessed from the names."""

    prior = "multiview_pca"

    def __init__(self, views: list[list[str]] | None = None, percentile: float = 99.0, **warmup):
        super().__init__(percentile=percentile, **warmup)
        self.views = views
        self.index: torch.Tensor | None = None  # P×V keypoint indices

    def samples(self, names: list[str], poses: np.ndarray) -> tuple[np.ndarray, str]:
        """Every body part of every frame where all its views are labelled, 2·V numbers each, and why they are too
        few ('' when they are enough)."""
        groups = resolve_views(names, self.views)
        self.index = torch.tensor(groups)
        samples = poses[:, np.array(groups)].reshape(-1, 2 * self.index.shape[1])  # (N·P)×2V
        samples = samples[np.isfinite(samples).all(axis=1)]
        needed = 2 * self.index.shape[1]
        too_few = (
            f"{len(samples)} body parts labelled in every view; a PCA of {needed} coordinates needs at least {needed}"
        )
        return samples, too_few if len(samples) < needed else ""

    def fit(self, names: list[str], poses: np.ndarray) -> MultiviewPCALoss:
        samples, too_few = self.samples(names, poses)
        if too_few:
            raise ConfigError(
                f"loss multiview_pca: {too_few}: label more frames or drop the term (~loss.multiview_pca)"
            )
        self.subspace = fit_subspace(samples, components=MULTIVIEW_COMPONENTS)
        own = point_errors(self.subspace.residual(torch.as_tensor(samples)))
        self.subspace.epsilon = float(np.percentile(own.numpy(), self.percentile))
        log.info(
            "multiview_pca: %d body parts in %d views, 3 components hold %.1f%% of the variance; epsilon %.2f px",
            *self.index.shape,
            100 * self.subspace.explained,
            self.subspace.epsilon,
        )
        return self

    def errors(self, keypoints: torch.Tensor) -> torch.Tensor:
        """...×K×2 -> ...×P×V distance of each body part's view to its reprojection, px (P body parts, V views)."""
        if self.subspace is None:
            raise RuntimeError(f"{type(self).__name__} is used before fit(names, poses)")
        stacked = keypoints[..., self.index.to(keypoints.device), :].flatten(-2).float()  # ...×P×2V
        return point_errors(self.subspace.residual(stacked))

    def keypoint_errors(self, keypoints: torch.Tensor) -> torch.Tensor:
        per_view = self.errors(keypoints)
        out = torch.full(keypoints.shape[:2], float("nan"), dtype=per_view.dtype, device=per_view.device)
        out[:, self.index.flatten().to(out.device)] = per_view.flatten(1)
        return out

    def state(self) -> dict:
        """PosePCALoss.state plus the views: the P×V keypoint indices of each body part's views."""
        return {**super().state(), "views": self.index.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> MultiviewPCALoss:
        term = super().from_state(state)
        term.index = torch.tensor(state["views"])
        return term


def resolve_views(names: list[str], views: list[list[str]] | None) -> list[list[int]]:
    """Keypoint indices per body part (P×V) from declared names, or guessed from view suffixes when None."""
    if views is None:
        views = guess_views(names)
        if not views:
            raise ConfigError(
                "loss multiview_pca: no views declared and none found in the keypoint names (suffixes _top/_bot, "
                "_cam1/_cam2, ...): set loss.multiview_pca.views, one list of names per body part"
            )
    views = [list(group) for group in views]
    if len({len(group) for group in views}) != 1 or len(views[0]) < 2:
        raise ConfigError(f"loss multiview_pca: views must all name the same number (>= 2) of keypoints, got {views}")
    missing = [name for group in views for name in group if name not in names]
    if missing:
        raise ConfigError(
            f"loss multiview_pca: views name {', '.join(missing)}, not a keypoint of the data ({', '.join(names)})"
        )
    return [[names.index(name) for name in group] for group in views]


def guess_views(names: list[str]) -> list[list[str]]:
    """Body parts seen in every view, from names `<stem>_<view>` (VIEW_SUFFIX): one list per stem, views in the order
    they first appear; logs the views, the parts found and the names left out."""
    by_stem: dict[str, dict[str, str]] = {}
    view_order: list[str] = []
    for name in names:
        match = VIEW_SUFFIX.match(name)
        if match:
            view = match["view"].lower()
            view_order += [view] if view not in view_order else []
            by_stem.setdefault(match["stem"], {})[view] = name
    groups = [[seen[view] for view in view_order] for seen in by_stem.values() if len(seen) == len(view_order)]
    if len(view_order) < 2 or not groups:
        return []
    left_out = [name for name in names if not any(name in group for group in groups)]
    log.info(
        "multiview_pca: views %s guessed from the names; %d body parts in every view: %s; left out: %s",
        "/".join(view_order),
        len(groups),
        ", ".join(stem for stem, seen in by_stem.items() if len(seen) == len(view_order)),
        ", ".join(left_out) or "none",
    )
    return groups


def pca_keypoint_errors(term: PosePCALoss, poses: np.ndarray) -> np.ndarray:
    """A label-free error signal: for predicted poses N×K×2, each keypoint's distance (px) to its reprojection on a
    fitted pose_pca or multiview_pca term, N×K (NaN where the term does not measure a keypoint, and for every keypoint
    of a pose with a missing one)."""
    with torch.no_grad():
        return term.keypoint_errors(torch.as_tensor(np.asarray(poses, np.float32))).numpy()


# The pose priors every checkpoint carries (kp.build.InferenceSpec.pose_priors), by name: the PCA terms fitted on the
# run's training labels, whatever its loss, so that kp evaluate, kp doctor and kp refine have the label-free error
# signal of any run.
PRIORS = {"pose_pca": PosePCALoss, "multiview_pca": MultiviewPCALoss}
NO_PRIORS = "the checkpoint carries no pose priors (trained before kp stored them): retrain the run to get them"


def fit_pose_priors(names: list[str], poses: np.ndarray, fitted: list[PosePCALoss] = ()) -> dict[str, dict]:
    """Every prior's state for a checkpoint, from the training split's labelled poses N×K×2 (input pixels): the
    loss's own term where it has one (`fitted`, already fitted on these poses), else one fitted here with the default
    settings (multiview_pca on views guessed from the names); {"absent": why} where it cannot be fitted, with one log
    line saying why."""
    own = {term.prior: term for term in fitted}
    states = {}
    for name, kind in PRIORS.items():
        term, why = (own[name], "") if name in own else _default_prior(kind, names, poses)
        if why:
            log.info("%s: not stored in the checkpoint (no %s error signal for this run): %s", name, name, why)
        states[name] = {"absent": why} if why else term.state()
    return states


def _default_prior(kind: type[PosePCALoss], names: list[str], poses: np.ndarray) -> tuple[PosePCALoss | None, str]:
    """(the prior fitted with the default settings, '') or (None, why it cannot be fitted)."""
    if kind is MultiviewPCALoss:
        views = guess_views(names)
        if not views:
            return None, "no views in the keypoint names (suffixes _top/_bot, _cam1/_cam2, ...)"
        term = MultiviewPCALoss(views=views)
    else:
        term = kind()
    _, too_few = term.samples(names, poses)
    return (None, too_few) if too_few else (term.fit(names, poses), "")


def load_pose_priors(states: dict | None) -> tuple[dict[str, PosePCALoss], dict[str, str]]:
    """The fitted priors a checkpoint carries (`fit_pose_priors`' states; None for a checkpoint from before kp stored
    them), and why each of the others is absent."""
    if states is None:
        return {}, {name: NO_PRIORS for name in PRIORS}
    terms = {name: PRIORS[name].from_state(state) for name, state in states.items() if "absent" not in state}
    return terms, {name: state["absent"] for name, state in states.items() if "absent" in state}
