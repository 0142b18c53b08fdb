"""Model assembly: from a composed config to the datamodule and the LightningModule, with the checks that catch a
configuration that cannot work before anything trains.

`build(cfg)` is what train.py, sweep.py and the commands use. It also records, on the module, everything inference
needs (`InferenceSpec`: model and codec config, keypoint metadata, input shape, test-time preprocessing), which every
checkpoint then carries, so that `kp.load` rebuilds a trained model with no training data and no config files.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kp.data.base import KeypointMeta, Subset
from kp.data.unlabelled import input_pixel_poses
from kp.errors import ConfigError
from kp.module import KeypointModule
from kp.unsupervised_losses import PRIORS, PosePCALoss, UnlabelledTerm, fit_pose_priors

log = logging.getLogger(__name__)

# The pose priors are fitted on at most this many training frames, evenly spaced: each costs a read of its image, and
# a PCA of a few dozen numbers is settled long before.
PRIOR_FRAMES = 1000


@dataclass
class InferenceSpec:
    """What a checkpoint carries to be used on its own (plain containers: it loads with weights_only=True)."""

    model: dict  # the resolved model config (a partial KeypointNet.from_config, flat options)
    target: dict  # the resolved codec config
    meta: dict  # KeypointMeta as a dict
    input_shape: list[int]  # C, H, W the network takes
    # Test-time preprocessing of a new image: letterboxed into fit_size (width, height) when set, then the data
    # config's test transforms (resolved config, or None); grey when input_shape[0] == 1.
    fit_size: list[int] | None
    transforms: dict | None
    dataset: str  # the _target_ of the dataset it was trained on, for messages
    face_crop: list[float] | None = None  # KeypointDataset.face_crop, for prediction on detected faces
    # The pose priors (kp.unsupervised_losses.fit_pose_priors): each PCA of the training labels, in input pixels, or
    # why it is absent; None in checkpoints from before kp stored them (kp.unsupervised_losses.load_pose_priors).
    pose_priors: dict | None = None

    def keypoint_meta(self) -> KeypointMeta:
        meta = dict(self.meta)
        pairs = meta["flip_pairs"]
        meta["flip_pairs"] = None if pairs is None else [tuple(p) for p in pairs]
        meta["skeleton"] = [tuple(p) for p in meta["skeleton"]]
        meta["norm_pair"] = tuple(meta["norm_pair"]) if meta["norm_pair"] is not None else None
        return KeypointMeta(**meta)


def build(cfg: DictConfig, datamodule=None):
    """Instantiate the datamodule and the LightningModule from the config, checking that the pieces fit.
    datamodule: one already made from cfg.data (scripts/benchmark_training.py times its set-up on its own)."""
    fraction = OmegaConf.select(cfg, "data.train_fraction", default=1.0)
    if not 0 < fraction <= 1:  # here, not only in the datamodule: Hydra would wrap its error in several lines
        raise ConfigError(
            f"data.train_fraction={fraction}: expected a share in (0, 1], e.g. 0.25 for a quarter of the training split"
        )
    datamodule = instantiate(cfg.data) if datamodule is None else datamodule
    meta = datamodule.meta
    channels, height, width = datamodule.input_shape
    num_keypoints = meta.num_keypoints
    wanted = cfg.model.get("num_keypoints")
    if wanted is not None and wanted != num_keypoints:
        raise ConfigError(
            f"model.num_keypoints={wanted} but the data ({cfg.data.dataset._target_}) has "
            f"{num_keypoints} keypoints: {meta.names}"
        )
    test_transforms = (cfg.data.get("transforms") or {}).get("test")
    spec = InferenceSpec(
        model=_container(cfg.model),
        target=_container(cfg.target),
        meta={**asdict(meta), "flip_pairs": None if meta.flip_pairs is None else [list(p) for p in meta.flip_pairs]},
        input_shape=[channels, height, width],
        fit_size=datamodule.splits["test"].fit_size,
        transforms=_container(test_transforms) if test_transforms else None,
        dataset=cfg.data.dataset._target_,
        face_crop=list(datamodule.splits["test"].face_crop) if datamodule.splits["test"].face_crop else None,
    )
    codec, net = build_net(spec)
    spec.model = _weights_from_checkpoint(spec.model)
    losses = {name: instantiate(term) for name, term in cfg.loss.items()}
    _check_losses(net, losses, datamodule, (channels, height, width))
    _prepare_unlabelled(losses, datamodule)
    spec.pose_priors = _fit_pose_priors(losses, datamodule, (height, width))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = KeypointModule(
        net,
        codec,
        losses,
        meta,
        (height, width),
        instantiate(cfg.optimizer),
        scheduler,
        pck_thresholds=tuple(cfg.metrics.pck_thresholds),
        pck_norm=cfg.metrics.pck_norm,
        flip_test=cfg.metrics.get("flip", False),
        spec=asdict(spec),
        channels_last=cfg.get("channels_last", False),
    )
    return datamodule, module


def build_net(spec: InferenceSpec):
    """The codec and the (untrained) network an InferenceSpec describes."""
    channels, height, width = spec.input_shape
    codec = instantiate(spec.target)(input_size=(height, width))
    net = instantiate(_current_model_target(spec.model))(
        num_keypoints=len(spec.meta["names"]),
        input_shape=(channels, height, width),
        target=codec.name,
        stride=codec.stride,
    )
    return codec, net


# Checkpoints saved before KeypointNet grouped its options (2026-12-06) name the class itself, with the same flat
# options that KeypointNet.from_config takes.
_MODEL_TARGETS = {"kp.models.KeypointNet": "kp.models.KeypointNet.from_config"}


def _current_model_target(model: dict) -> dict:
    target = model.get("_target_")
    return {**model, "_target_": _MODEL_TARGETS[target]} if target in _MODEL_TARGETS else model


def _weights_from_checkpoint(model: dict) -> dict:
    """The model config a checkpoint carries: its net gets every weight from the checkpoint, so rebuilding it must
    neither fetch ImageNet weights (backbone.pretrained) nor read init_from's file, which may be gone by then."""
    model = copy.deepcopy(model)
    if "pretrained" in model.get("backbone", {}):
        model["backbone"]["pretrained"] = False
    if "init_from" in model:
        model["init_from"] = None
    return model


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def _check_losses(net, losses, datamodule, input_shape) -> None:
    """Every loss term must find the model output and the data target it reads: say so now, not mid-epoch."""
    if not losses:
        raise ConfigError("the loss group defines no term: nothing to train")
    with torch.no_grad():
        was_training = net.training
        outputs = net.eval()(torch.zeros(1, *input_shape))
        net.train(was_training)
    sample = datamodule.splits["train"][0]
    for name, term in losses.items():
        for key in term.requires:
            if key not in outputs:
                raise ConfigError(
                    f"loss term '{name}' ({type(term).__name__}) needs the model output '{key}', "
                    f"which this model does not produce: set model.{key}_head=true or drop loss.{name}"
                )
        if "count" in term.requires and "count" not in sample:
            raise ConfigError(f"loss term '{name}' needs a 'count' target, which this dataset does not provide")


def _prepare_unlabelled(losses, datamodule) -> None:
    """For a loss with terms that need no labels: decode the unlabelled video into the clip cache (the training
    loader then carries clips)."""
    if any(isinstance(term, UnlabelledTerm) for term in losses.values()):
        datamodule.unlabelled_clips()


def _fit_pose_priors(losses, datamodule, input_size: tuple[int, int]) -> dict:
    """Fit the loss's PCA terms and the pose priors every checkpoint carries (kp.unsupervised_losses.fit_pose_priors)
    on the training split's labels in the model's input pixels (at most PRIOR_FRAMES frames, evenly spaced). Where the
    loader's images are not the model's input, the loss's PCA terms refuse it in one line; the priors are absent."""
    train = datamodule.splits["train"]
    if len(train) > PRIOR_FRAMES:
        train = Subset(train, np.linspace(0, len(train) - 1, PRIOR_FRAMES).round().astype(int).tolist())
    terms = [term for term in losses.values() if isinstance(term, PosePCALoss)]
    try:
        poses = input_pixel_poses(train, input_size)
    except ConfigError:
        if terms:
            raise
        why = "the loader's images are not the model's input (it does not size its frames itself)"
        log.info("no pose priors stored in the checkpoint: %s", why)
        return {name: {"absent": why} for name in PRIORS}
    for term in terms:
        term.fit(datamodule.meta.names, poses)
    return fit_pose_priors(datamodule.meta.names, poses, terms)
