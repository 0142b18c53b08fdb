"""Shared test helpers: in-process Hydra composition and the path of the real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from kp import config

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small and quick: what most tests want from the built-in dataset.
TINY_DATA = ["data.dataset.sizes={train:64,val:32,test:32}", "data.batch_size=16"]


def compose_config(*overrides: str, output_dir: Path | None = None) -> DictConfig:
    """Compose conf/train.yaml in-process as `python train.py <overrides>` would, with the run directory at
    output_dir (Hydra's own interpolations are resolvable, as in a real run)."""
    cfg = config.compose_config(overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir / "logs")
    return cfg


def shared_data(name: str) -> Path:
    """../shared/data/<name>, or skip the test with the reason when it is absent (a user's fresh clone)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


def random_weights(cfg: DictConfig) -> DictConfig:
    """Start an ImageNet-pretrained model preset from random weights: the model-zoo tests check wiring and shapes,
    offline and quickly (ResNet's weights would be downloaded); tests/test_pretrained.py checks the weights."""
    model = cfg.model if "model" in cfg else cfg
    if "pretrained" in model.backbone:
        model.backbone.pretrained = False
    return cfg


def write_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """What Hydra writes into a real run's directory: the job's config, without the hydra node."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml({k: cfg[k] for k in cfg if k != "hydra"}))
