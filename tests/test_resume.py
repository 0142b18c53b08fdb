"""Resume and faults: a training killed with SIGKILL mid-epoch resumes with ckpt_path=last and ends as an
uninterrupted one does; a NaN loss stops the run with a clear message and keeps the last good checkpoint."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback
from omegaconf import open_dict

from kp.errors import ConfigError, NonFiniteLossError
from kp.train import run_info
from kp.train.loop import train
from kp.train.run_info import newest_last_checkpoint
from tests.helpers import ROOT, compose_config

# 16 training steps an epoch (long enough to be killed inside one), one validation batch
RUN = [
    "data.dataset.sizes={train:256,val:32,test:32}",
    "data.batch_size=16",
    "model.backbone.width=4",
    "data.dataset.image_size=32",
    "trainer.max_epochs=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "seed=3",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def _checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _wait_for_first_checkpoint(job, log_dir, timeout_s=240):
    """(path, content) of the run's last.ckpt once it is complete (loadable); None if the run ended without one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and job.poll() is None:
        for path in log_dir.glob("train/runs/*/checkpoints/last.ckpt"):
            try:
                return path, _checkpoint(path)
            except Exception:  # still being written
                pass
        time.sleep(0.05)
    return None


@pytest.mark.slow
def test_sigkill_mid_epoch_then_ckpt_path_last_ends_like_an_uninterrupted_run(tmp_path):
    killed_root = tmp_path / "killed"
    job = subprocess.Popen(
        [sys.executable, "train.py", *RUN],
        cwd=ROOT,
        env={**os.environ, "KP_ROOT": str(killed_root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        found = _wait_for_first_checkpoint(job, killed_root / "logs")
        job.send_signal(signal.SIGKILL)  # now inside epoch 1: no chance to save anything more
    finally:
        job.kill()
        output = job.communicate()[0]
    assert found, output[-3000:]
    path, checkpoint = found
    assert job.returncode == -signal.SIGKILL
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 16)
    assert not (path.parents[1] / "metrics.json").exists()  # it did not get to the end
    assert json.loads((path.parents[1] / "run_info.json").read_text())["status"] == "running"
    assert run_info.read(path.parents[1])["status"] == "killed"  # its process is gone

    resumed = compose_config(*RUN, "ckpt_path=last", output_dir=tmp_path / "resumed")
    with open_dict(resumed):
        resumed.paths.log_dir = str(killed_root / "logs")  # where the killed run lives
    resumed_best = train(resumed)
    assert run_info.read(tmp_path / "resumed")["resumed_from"] == str(path.resolve())
    full_best = train(compose_config(*RUN, output_dir=tmp_path / "full"))

    full_end = _checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")
    resumed_end = _checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert (resumed_end["epoch"], resumed_end["global_step"]) == (full_end["epoch"], full_end["global_step"]) == (2, 48)
    for key in ("optimizer_states", "lr_schedulers"):
        assert len(resumed_end[key]) == len(full_end[key]) == 1
    assert resumed_end["lr_schedulers"][0]["last_epoch"] == full_end["lr_schedulers"][0]["last_epoch"] == 3
    for name, weight in full_end["state_dict"].items():
        assert torch.allclose(resumed_end["state_dict"][name], weight, rtol=1e-3, atol=1e-5), name
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    again = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert resumed_best == pytest.approx(full_best, abs=1e-6)
    for key in ("test/rmse", "test/nme", "test/pck_0.1", "test/loss"):
        assert again[key] == pytest.approx(full[key], rel=1e-3, abs=1e-6), key


class PoisonWeightsAtEpoch(Callback):
    """Test double for a diverging model: NaN weights at the start of `epoch`."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            next(pl_module.parameters()).data.fill_(float("nan"))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = compose_config(
        *RUN,
        "data.dataset.sizes.train=32",
        "+callbacks.poison._target_=" + __name__ + ".PoisonWeightsAtEpoch",
        "+callbacks.poison.epoch=1",
        output_dir=tmp_path,
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(
        NonFiniteLossError,
        match=rf"training loss is nan at epoch 1, step 2 .*gradient clipping.*"
        rf"epochs before are kept in {last.parent}",
    ):
        train(cfg)
    checkpoint = _checkpoint(last)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 2
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith("NonFiniteLossError: training loss is nan")


def test_resume_points_at_a_missing_file_or_no_earlier_run(tmp_path):
    cfg = compose_config(*RUN, f"ckpt_path={tmp_path / 'nope.ckpt'}", output_dir=tmp_path)
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        train(cfg)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: no runs/\*/checkpoints/last.ckpt under"):
        newest_last_checkpoint(tmp_path / "logs" / "train")
    with pytest.raises(ConfigError, match=r"ckpt_path=last: no runs/\*/checkpoints/last.ckpt"):  # the CLI's one line
        train(compose_config(*RUN, "ckpt_path=last", output_dir=tmp_path / "first"))


def test_ckpt_path_last_takes_the_newest_single_run_of_the_task(tmp_path):
    """A sweep job trains another model: even when newer, it is not the run ckpt_path=last resumes."""
    for run, mtime in (("runs/a", 100), ("runs/b", 300), ("multiruns/t/0", 400)):
        path = tmp_path / run / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        os.utime(path, (mtime, mtime))
    assert newest_last_checkpoint(tmp_path) == tmp_path / "runs/b/checkpoints/last.ckpt"
    assert newest_last_checkpoint(tmp_path, exclude=tmp_path / "runs/b") == tmp_path / "runs/a/checkpoints/last.ckpt"


def test_a_checkpoint_callback_in_a_new_run_dir_keeps_the_best_score_it_resumes(tmp_path):
    from kp.train.callbacks import ResumableCheckpoint

    old = ResumableCheckpoint(dirpath=tmp_path / "old", monitor="val/nme", mode="min")
    old.best_model_score = torch.tensor(0.02)
    old.best_model_path = str(tmp_path / "old" / "epoch_000.ckpt")
    old.best_k_models = {old.best_model_path: torch.tensor(0.02)}
    old.kth_best_model_path, old.kth_value = old.best_model_path, torch.tensor(0.02)

    new = ResumableCheckpoint(dirpath=tmp_path / "new", monitor="val/nme", mode="min")
    new.load_state_dict(old.state_dict())
    assert new.best_model_score.item() == pytest.approx(0.02)
    assert new.best_k_models == old.best_k_models and new.best_model_path == old.best_model_path
    assert new.dirpath == str(tmp_path / "new")  # it still writes into its own run dir
    # a worse epoch is not the new best (a one-process trainer: the decision needs no reduction)
    trainer = SimpleNamespace(strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, **_: decision))
    assert not new.check_monitor_top_k(trainer, current=torch.tensor(0.05))
    assert new.check_monitor_top_k(trainer, current=torch.tensor(0.01))


def test_a_checkpoint_to_resume_is_checked_before_training(tmp_path):
    from kp.errors import ModelLoadError
    from tests.bad_inputs import checkpoints

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(ModelLoadError, match="garbage.ckpt: not a checkpoint"):
        train(compose_config(*RUN, f"ckpt_path={garbage}", output_dir=tmp_path / "a"))
    other = checkpoints.valid(tmp_path / "other")  # a checkpoint of another model
    with pytest.raises(
        ModelLoadError,
        match=r"model.ckpt: does not fit the model of this config: layer net\.backbone\."
        r".* is not in the checkpoint \(its model: kp.models.vgg.VGG on tests\)",
    ):
        train(compose_config(*RUN, f"ckpt_path={other}", output_dir=tmp_path / "b"))
    info = run_info.read(tmp_path / "b")
    assert info["status"] == "failed" and info["resumed_from"] == str(other.resolve())


def test_a_run_that_never_wrote_its_end_reads_killed_or_stale(tmp_path):
    def write(**info):
        (tmp_path / "run_info.json").write_text(json.dumps({"status": "running", "start_time": time.time(), **info}))
        return run_info.read(tmp_path)["status"]

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = socket.gethostname()
    assert write(host=here, pid=int(dead.stdout)) == "killed"
    assert write(host=here, pid=os.getpid()) == "running"
    assert write(host="elsewhere", pid=1, heartbeat=time.time() - run_info.STALE_AFTER_S - 5) == "stale"
    assert write(host="elsewhere", pid=1, heartbeat=time.time()) == "running"
