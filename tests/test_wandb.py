"""logger=wandb: offline on its own without an API key, and the offline run files hold the flattened config, the
metrics, the prediction images and the best values."""

import json
import struct
import time
from pathlib import Path

import pytest

from kp.train.loop import train
from kp.train.wandb_logging import offline_reason
from tests.helpers import TINY_DATA, compose_config

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]
TINY_MODEL = ["model.backbone.width=4", "data.dataset.image_size=32"]


def read_offline_run(run_dir: Path, wait_s: float = 60) -> dict:
    """read_run_file once W&B's service process has written the run's exit record (it may lag behind finish())."""
    deadline = time.monotonic() + wait_s
    while True:
        run = read_run_file(run_dir)
        if run["exit_code"] is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def read_run_file(run_dir: Path) -> dict:
    """An offline W&B run read back from its run-<id>.wandb file: {"run": the run record, "config": {key: value},
    "history": [{key: value} per log call], "summary": {key: value}, "artifacts": [artifact records], "exit_code": int
    or None}. The file is a
    LevelDB-style log (32 KiB blocks of CRC/length/type-framed chunks) of protobuf Records; W&B ships the protobuf
    classes but, since its Go core, no reader."""
    from wandb.proto import wandb_internal_pb2

    data = next(Path(run_dir).glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    result = {"config": {}, "history": [], "summary": {}, "artifacts": [], "exit_code": None}
    position, record, block = 7, b"", 32768  # after the 7-byte file header
    while position + 7 <= len(data):
        left_in_block = block - position % block
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left_in_block < 7 or (kind == 0 and length == 0):  # block padding
            position += left_in_block
            continue
        record += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind not in (1, 4):  # FIRST or MIDDLE chunk: the record goes on
            continue
        message = wandb_internal_pb2.Record()
        message.ParseFromString(record)
        record = b""
        kind_name = message.WhichOneof("record_type")
        if kind_name == "run":
            result["run"] = message.run
            result["config"].update({item.key: json.loads(item.value_json) for item in message.run.config.update})
        elif kind_name == "config":
            result["config"].update({item.key: json.loads(item.value_json) for item in message.config.update})
        elif kind_name == "history":
            result["history"].append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in message.history.item}
            )
        elif kind_name == "summary":
            result["summary"].update(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in message.summary.update}
            )
        elif kind_name == "artifact":
            result["artifacts"].append(message.artifact)
        elif kind_name == "exit":
            result["exit_code"] = message.exit.exit_code
    return result


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "wandb").glob("offline-run-*"))


@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path):
    """As on a fresh machine: no WANDB_MODE, no API key, no ~/.netrc."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    yield
    monkeypatch.setenv("WANDB_MODE", "offline")  # the W&B logger sets it for the process: leave the tests offline


def test_offline_reason(monkeypatch, tmp_path, no_wandb_account):
    assert "no API key" in offline_reason()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:1")  # nothing listens: refused at once
    assert "127.0.0.1 cannot be reached" in offline_reason()
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's explicit choice wins
    assert offline_reason() is None


def test_wandb_run_offline_holds_config_metrics_images_and_best_values(tmp_path, no_wandb_account, caplog):
    cfg = compose_config(
        "logger=[csv,wandb]",
        "logger.wandb.tags=[smoke]",
        "logger.wandb.name=tiny",
        "logger.wandb.group=tests",
        "callbacks.wandb_panels.images_every_n_epochs=2",
        "callbacks.wandb_panels.num_images=4",
        "logger.wandb.log_model=true",
        "debug=limit",
        "trainer.max_epochs=3",
        *TINY_DATA,
        *TINY_MODEL,
        *QUIET,
        output_dir=tmp_path,
    )
    best = train(cfg)

    (run_dir,) = offline_runs(tmp_path)
    assert "W&B runs offline: no API key" in caplog.text
    assert f"wandb sync {run_dir}" in caplog.text
    run = read_offline_run(run_dir)
    assert (run["run"].display_name, run["run"].run_group, list(run["run"].tags)) == ("tiny", "tests", ["smoke"])
    assert run["exit_code"] == 0
    # the whole resolved config, flattened
    assert run["config"]["model.backbone.width"] == 4
    assert run["config"]["data.dataset.sizes.train"] == 64
    assert run["config"]["optimized_metric"] == "val/nme"
    assert run["config"]["paths.output_dir"] == str(tmp_path)
    # the presets chosen, to group and filter runs by
    assert run["config"]["choices/data"] == "synthetic" and run["config"]["choices/target"] == "heatmap"
    # every metric, per step
    val_nme = [row["val/nme"] for row in run["history"] if "val/nme" in row]
    val_loss = [row["val/loss"] for row in run["history"] if "val/loss" in row]
    assert len(val_nme) == 3 and len(val_loss) == 3
    assert any("test/pck_0.05/left_eye" in row for row in run["history"])
    assert len([row for row in run["history"] if "train/loss_epoch" in row]) == 3
    # best values in the summary
    assert run["summary"]["best/val/nme"] == pytest.approx(min(val_nme)) == pytest.approx(best)
    assert run["summary"]["best/val/loss"] == pytest.approx(min(val_loss))
    # the checkpoints as artifacts, the best one with its score
    artifacts = {json.loads(a.metadata)["original_filename"]: a for a in run["artifacts"] if a.type == "model"}
    best_name = Path(json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]).name
    assert {best_name, "last.ckpt"} == set(artifacts)  # (the errors table is an artifact too)
    assert json.loads(artifacts[best_name].metadata)["score"] == pytest.approx(best)
    # prediction pictures at validation epochs 0 and 2
    images = [row for row in run["history"] if "val/predictions/filenames" in row]
    assert [row["val/predictions/captions"] for row in images] == [["epoch 0"], ["epoch 2"]]
    for row in images:
        (name,) = row["val/predictions/filenames"]
        assert name.endswith(".png") and (run_dir / "files" / name).stat().st_size > 5_000
    # the evaluation report: its pictures as images, errors.csv as a table (one row per sample and keypoint)
    logged = {key for row in run["history"] for key in row}
    assert {"test/report/pck_curve/filenames", "test/report/worst/filenames"} <= logged
    (table,) = [row for row in run["history"] if "test/errors/nrows" in row]
    assert table["test/errors/_type"] == "table-file" and table["test/errors/nrows"] == 32 * 5
    assert table["test/errors/ncols"] == 15  # errors.csv, with pose_pca_px (no views: no multiview_pca_px)
