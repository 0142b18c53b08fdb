"""What a run directory records beside Hydra's .hydra/ (resolved config, overrides): run_info.json with the git
commit, whether the tree was dirty, the package versions, the command, the process id, the status (running,
completed, failed and its error; a run whose process died reads `killed`, one elsewhere whose heartbeat stopped
`stale`), the checkpoint it resumed from and the wall time. Also finds the checkpoint that `ckpt_path=last`
resumes: the newest single run's."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_only

from kp.run_dir import RunDir

PACKAGES = (
    "torch",
    "lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "numpy",
    "albumentations",
    "opencv-python-headless",
    "wandb",
    "kp",
)
REPO = Path(__file__).resolve().parents[2]  # the checkout kp runs from (no git state for an installed kp)


def git_state(repo: Path = REPO) -> dict:
    """{"commit": sha or None, "dirty": bool or None}: None where the code is not in a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@rank_zero_only  # the other DDP processes share the run directory
def record_start(output_dir: Path) -> None:
    info = {
        "status": "running",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "start_time": time.time(),
        "command": [sys.executable, *sys.argv],
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **git_state(),
        "packages": package_versions(),
    }
    _write(output_dir, info)


@rank_zero_only
def record_end(output_dir: Path, error: BaseException | None = None) -> None:
    info = read(output_dir)
    info["status"] = "failed" if error else "completed"
    if error:
        info["error"] = f"{type(error).__name__}: {error}"
    info["wall_time_s"] = round(time.time() - info.get("start_time", time.time()), 2)
    _write(output_dir, info)


@rank_zero_only
def update(output_dir: Path, **fields) -> None:
    """Add fields to run_info.json (e.g. resumed_from)."""
    _write(output_dir, {**read(output_dir), **fields})


STALE_AFTER_S = 900  # a run on another host whose heartbeat is older than this reads `stale`


class Heartbeat(Callback):
    """Writes the time into run_info.json at most once a minute while training or validating, so that a run killed
    on another host (where its pid cannot be checked) shows as `stale` (conf/callbacks/)."""

    def __init__(self, output_dir: str, every_s: float = 60):
        self.output_dir, self.every_s, self.last = Path(output_dir), every_s, 0.0

    def _beat(self, trainer, *args) -> None:
        if (
            trainer.is_global_zero
            and time.time() - self.last >= self.every_s
            and RunDir(self.output_dir).run_info.exists()
        ):
            self.last = time.time()
            update(self.output_dir, heartbeat=self.last)

    on_train_batch_end = on_validation_batch_end = _beat


def read(output_dir: Path) -> dict:
    """run_info.json. A run that says `running` cannot have written its end: it reads `killed` when its process on
    this host is gone, `stale` when it runs elsewhere and its heartbeat is older than STALE_AFTER_S."""
    path = RunDir(output_dir).run_info
    info = json.loads(path.read_text()) if path.exists() else {}
    if info.get("status") == "running":
        if info.get("host") == socket.gethostname():
            if not _alive(info.get("pid")):
                info["status"] = "killed"
        elif time.time() - info.get("heartbeat", info.get("start_time", time.time())) > STALE_AFTER_S:
            info["status"] = "stale"
    return info


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return True  # written by an older kp: cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(output_dir: Path, info: dict) -> None:
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    RunDir(output_dir).run_info.write_text(json.dumps(info, indent=2))


def newest_last_checkpoint(task_dir: Path, exclude: Path | None = None) -> Path:
    """The most recently written checkpoints/last.ckpt of the single runs under logs/<task_name>/runs/ (a sweep's
    jobs, in multiruns/, train other models: resume one by its ckpt_path=<file>)."""
    candidates = [
        p
        for p in Path(task_dir).glob("runs/*/checkpoints/last.ckpt")
        if exclude is None or Path(exclude).resolve() not in p.resolve().parents
    ]
    if not candidates:
        raise FileNotFoundError(
            f"ckpt_path=last: no runs/*/checkpoints/last.ckpt under {task_dir} (no earlier run of this task_name to "
            "resume; a sweep job's is resumed with ckpt_path=<its file>)"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)
