"""What a new user's first runs leave and print: a run that ends without a checkpoint (it failed first, or
debug=fast_dev_run) leaves no run folder; a run's output carries none of Lightning's every-run noise."""

import os
import subprocess
import sys

from tests.helpers import ROOT

SMALL = ["model=simple_cnn", "model.backbone.widths=[4,4,4,4]"]
SYNTHETIC = "data.dataset.sizes={train:16,val:8,test:8}"


def _train(root, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *SMALL, *overrides],
        cwd=ROOT,
        env={**os.environ, "KP_ROOT": str(root), "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_runs_leave_a_folder_only_with_a_model_and_print_no_noise(tmp_path):
    runs = tmp_path / "logs" / "train" / "runs"
    done = _train(tmp_path, SYNTHETIC, "trainer.max_epochs=1")  # 1 batch an epoch, fewer than the logging interval (20)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    for noise in ("GPU available", "TPU available", "smaller than the logging interval", "💡"):
        assert noise not in output, noise
    (kept,) = runs.iterdir()
    assert (kept / "checkpoints" / "last.ckpt").is_file() and (kept / "eval" / "test" / "report.md").is_file()

    smoke = _train(tmp_path, SYNTHETIC, "debug=fast_dev_run")
    assert smoke.returncode == 0 and "Final metrics" in smoke.stdout, smoke.stderr[-3000:]
    assert "no checkpoint was written: removed the run folder" in smoke.stderr
    failed = _train(tmp_path, "data=dlc", f"data.dataset.project={tmp_path / 'nowhere'}")
    assert failed.returncode == 1 and failed.stderr.splitlines()[-1].startswith("data error: "), failed.stderr
    assert list(runs.iterdir()) == [kept]
