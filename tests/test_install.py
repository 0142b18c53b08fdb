"""kp as a user gets it: the wheel built from this checkout, installed into a fresh virtual environment without the
checkout on the path, runs `kp train`, `kp sweep` and `kp predict` from an empty folder (the configs, conf/ in the
checkout, ship inside the package as kp.conf), and a config folder of the user's own joins the search path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow
TINY = ["data.dataset.sizes={train:32,val:16,test:16}", "data.batch_size=16"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the kp wheel; the other dependencies come from this interpreter's site-packages
    through a .pth line (installing torch again would take minutes). That line adds the folder alone: the editable
    install's own .pth there is not run, so the checkout never joins the path."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    for folder in ("kp", "conf"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    wheel = next((work / "dist").glob("kp-*.whl"))
    env = work / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(
        subprocess.run(
            [env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*pip, "--python", str(env / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env


def kp(env: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "KP_ROOT")}
    result = subprocess.run(
        [str(env / "bin" / "kp"), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_the_wheel_runs_from_an_empty_folder(installed, tmp_path):
    where = subprocess.run(
        [
            installed / "bin" / "python",
            "-c",
            "import kp, kp.config; print(kp.__file__); print(sorted(p.name for p in kp.config.CONF_DIR.iterdir()))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert Path(where[0]).is_relative_to(installed) and "train.yaml" in where[1] and "experiment" in where[1]

    kp(installed, tmp_path, "train", "debug=fast_dev_run", *TINY)
    sweep = kp(installed, tmp_path, "sweep", "-m", "model=simple_cnn,unet", "debug=fast_dev_run", *TINY)
    sweep_dir = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    assert (sweep_dir / "leaderboard.csv").is_file(), sweep.stdout[-1000:]

    kp(installed, tmp_path, "train", "debug=limit", "trainer.max_epochs=1", *TINY, "hydra.run.dir=run")
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    kp(installed, tmp_path, "predict", "run", str(image), "--out", "predicted", "--workers", "0")
    rows = (tmp_path / "predicted" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith(str(image))


def test_a_config_folder_of_ones_own_joins_the_search_path(installed, tmp_path):
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "my_mice.yaml").write_text("# @package _global_\ntask_name: my_mice\nmodel:\n  head_width: 32\n")
    kp(
        installed,
        tmp_path,
        "train",
        "--config-dir",
        "my_conf",
        "experiment=my_mice",
        "debug=fast_dev_run",
        *TINY,
        "model=simple_cnn",
    )
    assert (tmp_path / "logs" / "my_mice" / "runs").is_dir()
