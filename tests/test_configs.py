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


# Key values of each preset as it composed before the shared base files (data/base/datamodule.yaml,
# model/base/keypoint_net.yaml, loss/multitask.yaml on loss/default.yaml, one file per callback) replaced the copies:
# every option of every group composed to the same config before and after (checked once, 2026-12-06); these keep
# the values a preset must not lose.
DATA_LOADERS = {  # data option -> (batch_size, num_workers, persistent_workers)
    "cards": (32, 2, True),
    "cat": (32, 2, True),
    "coco": (32, 2, True),
    "dlc": (16, 2, True),
    "facial": (32, 2, True),
    "facial68": (32, 2, True),
    "slp": (16, 2, True),
    "synthetic": (32, 0, False),
}
MODEL_HEADS = {  # model option -> (head_width, regression_hidden, dropout); None: HeadOptions' own default
    "cards_unet": (64, None, None),
    "efficientnet_lite0": (64, 256, 0.0),
    "fcn": (64, None, None),
    "hourglass": (64, None, None),
    "hourglass_seed": (64, None, None),
    "mobilenet": (32, 256, 0.0),
    "resnet": (64, 256, 0.0),
    "resnet18": (64, 256, 0.0),
    "simple_cnn": (64, 256, 0.1),
    "simple_cnn_seed": (64, 1024, 0.6),
    "unet": (64, None, None),
    "vgg": (64, 256, 0.1),
}
DEFAULT_CALLBACKS = [
    "model_checkpoint",
    "last_checkpoint",
    "heartbeat",
    "lr_monitor",
    "progress_bar",
    "model_summary",
    "wandb_panels",
    "freeze_pretrained",
]


def _options(group: str) -> list[str]:
    return [option for g, option in OPTIONS if g == group]


def test_the_key_value_tables_name_every_preset():
    assert sorted(DATA_LOADERS) == _options("data") and sorted(MODEL_HEADS) == _options("model")


@pytest.mark.parametrize("option", sorted(DATA_LOADERS))
def test_every_data_config_keeps_the_shared_datamodule_and_its_own_values(option, tmp_path):
    data = compose_config(f"data={option}", output_dir=tmp_path).data
    assert data._target_ == "kp.data.datamodule.KeypointDataModule"
    assert data.dataset._target_.startswith("kp.data.") and data.dataset._partial_ is True
    assert (data.batch_size, data.num_workers, data.persistent_workers) == DATA_LOADERS[option]
    assert (data.pin_memory, data.allow_leaks, data.max_image_megapixels, data.train_fraction) == (
        False,
        False,
        100,
        1.0,
    )
    # the training split always runs the `augment` group, last but for facial68's grey conversion
    steps = OmegaConf.to_container(data.transforms.train.steps)
    assert "${augment}" in steps and data.transforms.train._target_ == "kp.data.transforms.KeypointAugment"


@pytest.mark.parametrize("option", sorted(MODEL_HEADS))
def test_every_model_config_keeps_the_shared_heads_and_its_own_values(option, tmp_path):
    model = compose_config(f"model={option}", output_dir=tmp_path).model
    assert model._target_ == "kp.models.KeypointNet.from_config" and model._partial_ is True
    assert model.backbone._target_.startswith("kp.models.") and model.backbone._partial_ is True
    assert (model.init_from, model.coords_head, model.head_features) == (
        None,
        "auto",
        "bottleneck" if option == "cards_unet" else "features",
    )
    multitask = option == "cards_unet"
    assert (model.visibility_head, model.count_head) == (multitask, multitask)
    assert (model.heatmap_pool, model.head_hidden) == ((4, 128) if multitask else (0, 0))
    width, hidden, dropout = MODEL_HEADS[option]
    assert (model.head_width, model.get("regression_hidden"), model.get("dropout")) == (width, hidden, dropout)


def test_multitask_loss_keeps_the_keypoint_term_and_callbacks_stay_nine(tmp_path):
    cfg = compose_config("loss=multitask", "callbacks=early_stopping", output_dir=tmp_path)
    assert OmegaConf.to_container(cfg.loss) == {
        "keypoints": {"_target_": "kp.losses.MaskedMSE", "weight": 1.0, "intermediate_weight": 1.0},
        "visibility": {"_target_": "kp.losses.VisibilityBCE", "weight": 0.01},
        "count": {"_target_": "kp.losses.CountMSE", "weight": 0.01},
    }
    assert list(cfg.callbacks) == [*DEFAULT_CALLBACKS, "early_stopping"]
    assert list(compose_config(output_dir=tmp_path).callbacks) == DEFAULT_CALLBACKS


@pytest.mark.parametrize(
    "experiment, values",
    [
        ("cards", {"data.dataset._target_": "kp.data.cards.CardPacks", "data.batch_size": 16, "target.stride": 4}),
        ("dlc", {"data.batch_size": 4, "model.backbone._target_": "kp.models.efficientnet_lite.EfficientNetLite0"}),
        ("facial", {"augment.hflip": None, "data.dataset.subset": "all"}),
        ("facial68", {"augment.hflip": None, "data.dataset.crop": "face", "trainer.max_epochs": 20, "target.sigma": 2}),
        ("mirror_mouse", {"augment.hflip": None, "data.dataset.csv_file": "CollectedData.csv"}),
        (
            "synthetic_coords",
            {"target._target_": "kp.codecs.CoordsCodec", "model.backbone._target_": "kp.models.vgg.VGG"},
        ),
        ("synthetic_multitask", {"model.visibility_head": True, "model.count_head": True, "loss.count.weight": 0.01}),
    ],
)
def test_every_experiment_keeps_its_recipe(experiment, values, tmp_path):
    cfg = compose_config(f"experiment={experiment}", output_dir=tmp_path)
    assert {key: OmegaConf.select(cfg, key) for key in values} == values
