"""The configs kp ships and how it composes them.

The Hydra config groups live in the repository's conf/, shipped inside the package as kp.conf and found through
Hydra's `pkg://kp.conf` search path, so an installed kp runs from any folder. A folder of your own joins the search
path: `kp train --config-dir my_conf experiment=my_mice` (Hydra's flag, also taken by every kp command that takes
overrides) or the override `hydra.searchpath=[file:///abs/path/my_conf]`.

A mistake in an override is one ConfigError line naming it, with the nearest valid names (difflib over the composed
config's keys or Hydra's list of a group's options): `modle=unet: no such key; did you mean model?`, `model=unett: no
such option in model; did you mean unet? (choose one of ...)`. `check_command_line` checks kp train's and kp sweep's
command line before Hydra starts a run (every value of a sweep), so that a mistake leaves no run folder behind.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from kp.errors import ConfigError

CONFIG_MODULE = "kp.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"  # for @hydra.main
CONF_DIR = Path(str(files(CONFIG_MODULE)))  # the same folder on disk (conf/ in a checkout): its options can be listed


def compose_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """conf/train.yaml with Hydra overrides (and the configs in config_dir, searched first), composed in-process as
    `kp train <overrides>` would (with the hydra node set, so that interpolations such as ${hydra:runtime.cwd}
    resolve). A misspelt key or option, or an override Hydra cannot parse, is a ConfigError in one line."""
    overrides = list(overrides)
    if config_dir is not None:
        if not Path(config_dir).is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such folder (a folder of configs: model/, data/, ...)")
        overrides.append(f"hydra.searchpath=[file://{Path(config_dir).resolve()}]")
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        try:
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        except HydraException as error:
            raise ConfigError(_explain(error, overrides)) from error
    HydraConfig.instance().set_config(cfg)
    return cfg


def _explain(error: Exception, overrides: list[str]) -> str:
    """Hydra's error as one line about the override at fault, with the nearest valid names."""
    message = str(error)
    bad = next((o for o in overrides if _unparsable(o)), None)
    if bad is not None:
        return f"{bad!r} is not an override: write group=option or key=value (kp train --help lists them)"
    if isinstance(error, MissingConfigException) and error.options:
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        near = difflib.get_close_matches(option, error.options, n=3)
        guess = f"did you mean {' or '.join(near)}? " if near else ""
        return f"{group}={option}: no such option in {group}; {guess}(choose one of {', '.join(error.options)})"
    if message.startswith("Could not override '"):
        key = message.split("'")[1]
        bad = next((o for o in overrides if o.split("=", 1)[0] == key), key)
        rest = [o for o in overrides if o != bad]
        try:
            known = compose("train", overrides=rest, return_hydra_config=True)
        except HydraException:
            known = compose("train", return_hydra_config=True)
        if OmegaConf.select(known, key, default=_ABSENT, throw_on_resolution_failure=False) is not _ABSENT:
            return f"{bad}: {' '.join(message.splitlines()[1:]) or message}"  # the key exists: its value is wrong
        near = nearest_keys(known, key)
        guess = f"did you mean {' or '.join(near)}?" if near else f"a new key is added as +{bad}"
        return f"{bad}: no such key; {guess}"
    cause = str(error.__cause__).splitlines()[0] if error.__cause__ and str(error.__cause__) else ""
    return " ".join(message.split("\n\n")[0].split()) + (f": {cause}" if cause else "")


_ABSENT = object()


def _unparsable(override: str) -> bool:
    try:
        OverridesParser.create().parse_override(override)
    except HydraException:  # the parser's errors, the lexer's included
        return True
    return False


def nearest_keys(cfg: DictConfig, key: str) -> list[str]:
    """The dotted keys of cfg nearest a misspelt one: its first unknown part swapped for the nearest names at that
    level (data.datset.root -> data.dataset.root), else the keys elsewhere that end in its last part (batch_size ->
    data.batch_size)."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            break
        if part in node:
            node = node[part]
            continue
        near = difflib.get_close_matches(part, [str(name) for name in node], n=3)
        if near:
            return [".".join([*parts[:i], name, *parts[i + 1 :]]) for name in near]
        break
    return [path for path in _paths(tree) if path.rsplit(".", 1)[-1] == parts[-1]][:3]


def _paths(node: dict, prefix: str = ""):
    for name, value in node.items():
        yield f"{prefix}{name}"
        if isinstance(value, dict):
            yield from _paths(value, f"{prefix}{name}.")


def check_command_line(args: Sequence[str]) -> None:
    """kp train's and kp sweep's arguments checked before Hydra makes a run folder: each override's key or option,
    its syntax and the values check_types knows, for every value of a sweep (model=unet,unett), as ConfigError.
    Hydra's own flags (--help, --cfg, --info, ...) pass through unchecked; so does a --config-name of your own."""
    from hydra._internal.utils import get_args_parser  # Hydra's own command-line flags, as @hydra.main reads them

    parsed, _ = get_args_parser().parse_known_args(list(args))
    if parsed.help or parsed.hydra_help or parsed.info or parsed.shell_completion or parsed.config_name:
        return
    for overrides in _sweep_variants(parsed.overrides):
        check_types(compose_config(overrides, parsed.config_dir))


def _sweep_variants(overrides: list[str]) -> list[list[str]]:
    """The overrides with every sweep at its first value, then once per other value of each sweep (each value
    composed once, not every combination); an interval sweep (Optuna's) is left to its sweeper."""
    parser = OverridesParser.create()
    values = []
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException as error:  # the parser's errors, the lexer's included
            raise ConfigError(_explain(error, [text])) from error
        if not override.is_sweep_override():
            values.append([text])
            continue
        try:
            values.append([f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()])
        except Exception:  # an interval or other sweep its sweeper draws from
            values.append([])
    first = [options[0] for options in values if options]
    variants = [first]
    for i, options in enumerate(values):
        for value in options[1:]:
            variants.append([*(o[0] for o in values[:i] if o), value, *(o[0] for o in values[i + 1 :] if o)])
    return variants


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
# The least value that can work, for the keys whose library would fail on less only once the run has started.
MINIMUM = {
    "data.batch_size": 1,
    "data.num_workers": 0,
    "trainer.max_epochs": -1,  # -1: no limit
    "trainer.log_every_n_steps": 1,
    "trainer.accumulate_grad_batches": 1,
    "trainer.check_val_every_n_epoch": 1,
    "num_examples": 0,
}


def check_types(cfg: DictConfig) -> None:
    """ConfigError for the first key in TYPES whose value has the wrong type (true is no integer here), or in MINIMUM
    whose value is below the least that works."""
    for key, expected in TYPES.items():
        value = OmegaConf.select(cfg, key, default=None)
        expected = expected if isinstance(expected, tuple) else (expected,)
        if value is None or OmegaConf.is_config(value) and list in expected:
            continue
        if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
            names = dict.fromkeys(_TYPE_NAMES[t] for t in expected if not (t is int and float in expected))
            wanted = " or ".join(names)  # an integer is a number: (int, float) reads "a number"
            raise ConfigError(f"{key}={value!r}: expected {wanted}")
        if key in MINIMUM and value < MINIMUM[key]:
            raise ConfigError(f"{key}={value!r}: expected {MINIMUM[key]} or more")
