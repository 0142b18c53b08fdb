"""Every config option composes, bad configurations fail at start with a clear message."""

import re
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from kp.build import build
from kp.config import CONF_DIR, check_types
from kp.errors import ConfigError, DataError, ModelLoadError, user_errors_in_one_line
from kp.train.loop import flat_config
from tests.helpers import ROOT, TINY_DATA, compose_config

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
OPTIONS = [(group, option.stem) for group in GROUPS for option in sorted((CONF_DIR / group).glob("*.yaml"))]


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_config(f"{group}={option}", output_dir=tmp_path)
    # Resolving every interpolation of the job's config catches typos in cross-group references.
    for key, node in cfg.items():
        if key != "hydra" and OmegaConf.is_config(node):
            OmegaConf.to_container(node, resolve=True)
    # Every node is instantiable through _target_: one object (data, target, model, optimizer, scheduler, trainer)
    # or a dict of named objects (loss terms, loggers, callbacks).
    if group in ("data", "target", "model", "optimizer", "trainer") or (group == "scheduler" and cfg.scheduler):
        assert "_target_" in cfg[group]
    if group in ("loss", "logger", "callbacks"):
        assert cfg[group] and all("_target_" in term for term in cfg[group].values() if term)


def test_groups_the_design_names_exist():
    assert {
        "data",
        "target",
        "model",
        "loss",
        "optimizer",
        "scheduler",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "hydra",
        "experiment",
        "debug",
    } <= set(GROUPS)
    assert {"default", "cpu", "gpu", "ddp"} <= {o for g, o in OPTIONS if g == "trainer"}
    assert {"heatmap", "coords"} <= {o for g, o in OPTIONS if g == "target"}


def test_unknown_option_is_rejected_in_process(tmp_path):
    with pytest.raises(ConfigError, match="model=no_such_model: no such option in model; .*choose one of .*unet"):
        compose_config("model=no_such_model", output_dir=tmp_path)


def test_cli_unknown_option_and_help(tmp_path):
    bad = subprocess.run(
        [sys.executable, "train.py", "model=no_such_model"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"KP_ROOT": str(tmp_path), "PATH": ""},
    )
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1  # one line, listing the valid options
    assert bad.stderr.startswith("configuration error: model=no_such_model: no such option") and "unet" in bad.stderr
    help_text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    for group in ("data", "model", "target", "trainer", "debug"):
        assert f"{group}:" in help_text


def test_keypoint_count_mismatch_fails_before_training(tmp_path):
    cfg = compose_config(*TINY_DATA, "+model.num_keypoints=3", output_dir=tmp_path)
    with pytest.raises(ConfigError, match="num_keypoints=3 but the data .* has 5 keypoints"):
        build(cfg)


def test_cli_reports_a_config_error_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", *TINY_DATA, "+model.num_keypoints=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"KP_ROOT": str(tmp_path), "PATH": ""},
    )
    assert result.returncode == 1
    assert "configuration error: model.num_keypoints=3" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_loss_term_without_its_model_head_fails_before_training(tmp_path):
    cfg = compose_config(*TINY_DATA, "loss=multitask", output_dir=tmp_path)
    with pytest.raises(ConfigError, match="needs the model output 'visibility'.*model.visibility_head=true"):
        build(cfg)


def test_common_trainer_keys_need_no_plus_and_wrong_types_stop_at_start(tmp_path):
    cfg = compose_config(
        *TINY_DATA, "trainer.limit_train_batches=0.1", "trainer.gradient_clip_val=1", output_dir=tmp_path
    )
    check_types(cfg)
    assert cfg.trainer.limit_train_batches == 0.1
    for override, message in (
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': expected an integer"),
        ("trainer.max_epochs=true", "trainer.max_epochs=True: expected an integer"),
        ("trainer.limit_val_batches=all", "expected a number"),
        ("data.batch_size=1.5", "data.batch_size=1.5: expected an integer"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_types(compose_config(*TINY_DATA, override, output_dir=tmp_path))


def test_the_run_config_names_the_presets_chosen(tmp_path):
    flat = flat_config(compose_config("model=simple_cnn", "data=cards", output_dir=tmp_path))
    assert (
        flat["choices/model"] == "simple_cnn"
        and flat["choices/data"] == "cards"
        and flat["choices/target"] == "heatmap"
    )
    assert not any(key.startswith("choices/hydra") for key in flat)


def test_cli_errors_are_one_line_unless_asked_for_the_traceback(tmp_path, monkeypatch):
    wrong_type = subprocess.run(
        [sys.executable, "train.py", "trainer.max_epochs=abc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"KP_ROOT": str(tmp_path), "PATH": "", "OMP_NUM_THREADS": "1"},
    )
    assert wrong_type.returncode == 1
    assert (
        wrong_type.stderr.strip().splitlines()[-1]
        == "configuration error: trainer.max_epochs='abc': expected an integer"
    )
    assert "Traceback" not in wrong_type.stderr
    # what every command wraps its work in: one line of each kind, the traceback when asked for
    for error, line in (
        (DataError("a.csv:3: x is\n not a number"), "data error: a.csv:3: x is not a number"),
        (ModelLoadError("m.ckpt: damaged"), "model error: m.ckpt: damaged"),
    ):
        with pytest.raises(SystemExit) as stop, user_errors_in_one_line():
            raise error
        assert str(stop.value) == line
        with pytest.raises(type(error)), user_errors_in_one_line(verbose=True):
            raise error
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError), user_errors_in_one_line():
        raise ConfigError("x")
