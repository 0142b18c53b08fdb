"""The configs kp ships and how it composes them.

The Hydra config groups live inside the package (kp/conf), found through Hydra's `pkg://kp.conf` search path, so an
installed kp runs from any folder. A folder of your own joins the search path: `kp train --config-dir my_conf
experiment=my_mice` (Hydra's flag) or the override `hydra.searchpath=[file:///abs/path/my_conf]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kp.errors import ConfigError

CONFIG_MODULE = "kp.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"  # for @hydra.main
CONF_DIR = Path(str(files(CONFIG_MODULE)))  # the same folder on disk (conf/ in a checkout): its options can be listed


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """kp/conf/train.yaml with Hydra overrides, composed in-process as `kp train <overrides>` would (with the hydra
    node set, so that interpolations such as ${hydra:runtime.cwd} resolve)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


# Keys whose value type the Trainer and DataLoader would only trip over mid-run (an empty AssertionError for
# trainer.max_epochs=abc): checked before anything starts. None is always allowed (the library's default).
NUMBER = (int, float)

TYPES = {
    "trainer.max_epochs": int,
    "trainer.min_epochs": int,
    "trainer.max_steps": int,
    "trainer.devices": (int, str, list),
    "trainer.num_nodes": int,
    "trainer.check_val_every_n_epoch": int,
    "trainer.log_every_n_steps": int,
    "trainer.accumulate_grad_batches": int,
    "trainer.limit_train_batches": NUMBER,
    "trainer.limit_val_batches": NUMBER,
    "trainer.limit_test_batches": NUMBER,
    "trainer.val_check_interval": NUMBER,
    "trainer.gradient_clip_val": NUMBER,
    "trainer.overfit_batches": NUMBER,
    "trainer.num_sanity_val_steps": int,
    "trainer.fast_dev_run": (bool, int),
    "trainer.deterministic": (bool, str),
    "data.batch_size": int,
    "data.num_workers": int,
    "optimizer.lr": NUMBER,
    "seed": int,
    "num_examples": int,
    "data.train_fraction": (float, int),
}
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", bool: "true or false"}


def check_types(cfg: DictConfig) -> None:
    """ConfigError for the first key in TYPES whose value has the wrong type (true is no integer here)."""
    for key, expected in TYPES.items():
        value = OmegaConf.select(cfg, key, default=None)
        expected = expected if isinstance(expected, tuple) else (expected,)
        if value is None or OmegaConf.is_config(value) and list in expected:
            continue
        if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
            wanted = " or ".join(dict.fromkeys(_TYPE_NAMES[t] for t in expected))
            raise ConfigError(f"{key}={value!r}: expected {wanted}")
