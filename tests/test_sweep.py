"""sweep.py: grid and Optuna multiruns where a failing job is recorded and the sweep goes on, each job its own run
dir and W&B run grouped by the sweep; the leaderboard (table, CSV, Markdown, plot) and --summarize; SLURM config."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from kp.train.leaderboard import Leaderboard
from tests.helpers import ROOT, TINY_DATA, compose_config
from tests.test_wandb import offline_runs, read_offline_run

TINY = [
    *TINY_DATA,
    "model.backbone.width=4",
    "data.dataset.image_size=32",
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def _sweep(args, root):
    return subprocess.run(
        [sys.executable, "sweep.py", *args, *TINY],
        cwd=ROOT,
        env={**os.environ, "KP_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_grid_sweep_records_a_failing_job_goes_on_and_writes_a_leaderboard(tmp_path):
    # job 1 fails (Adam refuses a negative learning rate) between two that work
    result = _sweep(["-m", "optimizer.lr=0.001,-1,0.003", "logger=[csv,wandb]"], tmp_path)
    # the sweep finishes every job, then says (exit status 1) that one failed
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 job(s) failed" in result.stderr.splitlines()[-1]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()

    for job, lr in (("0", 0.001), ("1", -1), ("2", 0.003)):
        job_dir = sweep_dir / job
        assert OmegaConf.load(job_dir / ".hydra" / "config.yaml").optimizer.lr == lr
        assert f"optimizer.lr={lr}" in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    info = json.loads((sweep_dir / "1" / "run_info.json").read_text())
    assert info["status"] == "failed" and "Invalid learning rate: -1" in info["error"]
    assert not (sweep_dir / "1" / "metrics.json").exists()
    assert "job failed, the sweep goes on" in result.stderr + result.stdout

    # each job its own W&B run, grouped by the sweep; the failed one marked failed
    runs = {job: read_offline_run(offline_runs(sweep_dir / job)[0]) for job in "012"}
    assert {run["run"].run_group for run in runs.values()} == {f"train/multiruns/{sweep_dir.name}"}
    assert runs["1"]["run"].display_name.startswith("1: optimizer.lr=-1 logger=[csv,wandb]")
    assert [runs[job]["exit_code"] for job in "012"] == [0, 1, 0]
    assert len({run["run"].run_id for run in runs.values()}) == 3

    # the leaderboard: best first, the failed job last with its error
    board = pd.read_csv(sweep_dir / "leaderboard.csv")
    metrics = {job: json.loads((sweep_dir / job / "metrics.json").read_text()) for job in "02"}
    best_job = min("02", key=lambda job: metrics[job]["best/val/nme"])
    assert board["job"].tolist()[0] == int(best_job) and board["job"].tolist()[2] == 1
    assert board["status"].tolist()[2] == "failed" and "Invalid learning rate" in board["error"][2]
    row = board.set_index("job").loc[0]
    assert row["objective"] == pytest.approx(metrics["0"]["best/val/nme"])
    assert row["test/rmse"] == pytest.approx(metrics["0"]["test/rmse"])
    assert row["optimizer.lr"] == 0.001 and row["run_dir"] == str(sweep_dir / "0") and row["wall_time_s"] > 0
    # overrides common to every job are said once, not repeated as columns
    assert "logger" not in board.columns and "optimizer.lr" in board.columns
    markdown = (sweep_dir / "leaderboard.md").read_text()
    assert "every job: " in markdown and "logger=[csv,wandb]" in markdown
    assert "| job | status |" in markdown and "ValueError: Invalid learning rate: -1" in markdown
    assert (sweep_dir / "objective.png").stat().st_size > 10_000
    assert "Leaderboard" in result.stdout and "optimizer.lr" in result.stdout

    # --summarize rebuilds the same files from the job directories
    written = (sweep_dir / "leaderboard.csv").read_text()
    for name in ("leaderboard.csv", "leaderboard.md", "objective.png"):
        (sweep_dir / name).unlink()
    rebuilt = subprocess.run(
        [sys.executable, "sweep.py", "summarize", str(sweep_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (sweep_dir / "leaderboard.csv").read_text() == written
    assert (sweep_dir / "leaderboard.md").exists() and (sweep_dir / "objective.png").exists()


@pytest.mark.slow
def test_optuna_search_survives_a_failing_trial(tmp_path):
    # sampler seed 1231 draws lr=0.001 then lr=-1 (the failing one) in the two random start-up trials
    result = _sweep(
        [
            "hparams_search=unet_optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.seed=1231",
            "hydra.sweeper.params={optimizer.lr:'choice(-1,0.001)'}",
        ],
        tmp_path,
    )
    assert result.returncode == 1 and "1 job(s) failed" in result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    board = pd.read_csv(sweep_dir / "leaderboard.csv")
    assert sorted(board["status"]) == ["completed", "failed"]
    assert sorted(board["optimizer.lr"]) == [-1, 0.001]
    completed = board[board["status"] == "completed"].iloc[0]
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_params"]["optimizer.lr"] == 0.001
    assert results["best_value"] == pytest.approx(completed["objective"])


def _fake_job(sweep_dir, number, overrides, objective=None, status="completed", mode="min"):
    job = sweep_dir / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"optimized_metric: val/nme\noptimized_mode: {mode}\n")
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if objective is not None:
        (job / "metrics.json").write_text(
            json.dumps(
                {"best/val/nme": objective, "test/nme": objective + 0.01, "test/nme/nose": 0.5, "best_checkpoint": "x"}
            )
        )
    (job / "run_info.json").write_text(json.dumps({"status": status, "wall_time_s": 1.5}))


def test_leaderboard_orders_by_the_objective_and_plots_each_swept_parameter(tmp_path):
    _fake_job(tmp_path, 0, ["model=unet", "optimizer.lr=0.001", "seed=1"], 0.30)
    _fake_job(tmp_path, 1, ["model=hourglass", "optimizer.lr=0.0001", "seed=1"], 0.10)
    _fake_job(tmp_path, 2, ["model=unet", "optimizer.lr=0.01", "seed=1"], status="failed")
    _fake_job(tmp_path, 10, ["model=hourglass", "optimizer.lr=0.01", "seed=1"], 0.20)
    board = Leaderboard(tmp_path)
    assert board.swept == ["model", "optimizer.lr"]  # seed is the same everywhere
    assert board.objective == "val/nme (min)"
    assert board.rows["job"].tolist() == [1, 10, 0, 2]  # lowest NME first, no objective last
    assert board.rows["test/nme"].tolist()[:3] == pytest.approx([0.11, 0.21, 0.31])
    assert "test/nme/nose" not in board.rows.columns and "best_checkpoint" not in board.rows.columns
    board.write()
    assert (tmp_path / "objective.png").stat().st_size > 10_000
    assert pd.read_csv(tmp_path / "leaderboard.csv")["optimizer.lr"].tolist() == [0.0001, 0.01, 0.001, 0.01]


def test_leaderboard_columns_stay_in_place_when_job_0_fails(tmp_path):
    _fake_job(tmp_path, 0, ["optimizer.lr=0.001", "seed=1"], status="failed")
    _fake_job(tmp_path, 1, ["optimizer.lr=0.01", "seed=1"], 0.2)
    board = Leaderboard(tmp_path)
    assert list(board.rows.columns) == [
        "job",
        "status",
        "optimizer.lr",
        "objective",
        "test/nme",
        "wall_time_s",
        "error",
        "run_dir",
    ]
    assert board.common == {"seed": "1"} and "every job: seed=1" in board.markdown()


def test_leaderboard_of_a_directory_without_jobs_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no job directories"):
        Leaderboard(tmp_path)
    missing = subprocess.run(
        [sys.executable, "sweep.py", "--summarize", str(tmp_path / "nowhere")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [
        f"file not found error: {tmp_path / 'nowhere'}: no such sweep directory "
        "(expected logs/<task_name>/multiruns/<time>)"
    ]
    no_slurm = subprocess.run(
        [sys.executable, "sweep.py", "-m", "hydra/launcher=slurm"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": ""},
    )
    assert no_slurm.returncode == 1 and no_slurm.stderr.strip().splitlines()[-1].startswith(
        "configuration error: hydra/launcher=slurm needs SLURM (no sbatch on PATH)"
    )


def test_slurm_launcher_takes_nodes_and_tasks_from_the_trainer(tmp_path):
    cfg = compose_config(
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu",
        output_dir=tmp_path,
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert launcher["partition"] == "gpu"


def test_learning_curve_fits_the_power_law_and_says_what_the_next_step_needs(tmp_path):
    # errors exactly 2 · n^-0.5 at 100, 200, 400, 800 images; a failed job is left out of the fit
    for job, (fraction, images) in enumerate(((0.125, 100), (0.25, 200), (0.5, 400), (1, 800))):
        _fake_job(tmp_path, job, ["experiment=cards", f"data.train_fraction={fraction}"], 2 * images**-0.5)
        metrics = json.loads((tmp_path / str(job) / "metrics.json").read_text())
        (tmp_path / str(job) / "metrics.json").write_text(json.dumps({**metrics, "train_images": images}))
    _fake_job(tmp_path, 4, ["experiment=cards", "data.train_fraction=0.0625"], status="failed")
    board = Leaderboard(tmp_path)
    assert board.rows["train_images"].tolist()[:4] == [800, 400, 200, 100]
    ((label, jobs, law),) = board.learning_curves()
    assert law.a == pytest.approx(2) and law.b == pytest.approx(0.5) and len(jobs) == 4
    # 10 % below the error at 800 images: (0.9)^-2 = 1.235 times the images
    assert law.images_for(0.9 * law.error_at(800)) == pytest.approx(800 / 0.81)
    board.write()
    assert (tmp_path / "learning_curve.png").stat().st_size > 10_000
    assert "needs about 988 labelled images (1.2x)" in (tmp_path / "leaderboard.md").read_text()


def test_learning_curve_of_a_maximised_metric_fits_its_shortfall_and_says_when_data_does_not_help(tmp_path):
    for job, (fraction, images, pck) in enumerate(((0.5, 100, 0.9), (1, 200, 0.85))):
        _fake_job(tmp_path, job, [f"data.train_fraction={fraction}"], pck, mode="max")
        metrics = json.loads((tmp_path / str(job) / "metrics.json").read_text())
        (tmp_path / str(job) / "metrics.json").write_text(json.dumps({**metrics, "train_images": images}))
    ((_, jobs, law),) = Leaderboard(tmp_path).learning_curves()
    assert jobs["error"].tolist() == pytest.approx([0.1, 0.15]) and law.b < 0
    assert "more labelled images did not lower the error" in Leaderboard(tmp_path).markdown()


def test_leaderboard_gives_the_mean_and_spread_over_seeds_of_each_setting(tmp_path, capsys):
    # two learning rates × three seeds, one job failed: objective (val/nme) and test/nme (objective + 0.01)
    objectives = {(0.001, 0): 0.10, (0.001, 1): 0.20, (0.001, 2): 0.60, (0.01, 0): 0.30, (0.01, 1): 0.40}
    for job, ((lr, seed), objective) in enumerate(objectives.items()):
        _fake_job(tmp_path, job, [f"optimizer.lr={lr}", f"seed={seed}"], objective)
    _fake_job(tmp_path, 5, ["optimizer.lr=0.01", "seed=2"], status="failed")
    board = Leaderboard(tmp_path)
    seeds = board.over_seeds
    assert seeds["optimizer.lr"].tolist() == ["0.001", "0.01"]  # lowest mean first: 0.3 against 0.35
    assert seeds["seeds"].tolist() == [3, 2]  # the failed job counts in no mean
    assert seeds["objective mean"].tolist() == pytest.approx([0.3, 0.35])
    # sample standard deviation (n - 1): sqrt(((-0.2)² + (-0.1)² + 0.3²) / 2) and sqrt(2 · 0.05² / 1)
    assert seeds["objective spread"].tolist() == pytest.approx([0.264575, 0.070711], abs=1e-6)
    assert seeds["test/nme mean"].tolist() == pytest.approx([0.31, 0.36])
    board.write()
    assert pd.read_csv(tmp_path / "leaderboard_seeds.csv")["objective mean"].tolist() == pytest.approx([0.3, 0.35])
    assert "| 0.001 | 3 | 0.3 ± 0.2646 | 0.31 ± 0.2646 |" in (tmp_path / "leaderboard.md").read_text()
    board.print()
    assert "0.3 ± 0.2646" in capsys.readouterr().out


def test_leaderboard_without_a_seed_sweep_has_no_seed_table_and_one_seed_has_no_spread(tmp_path):
    _fake_job(tmp_path, 0, ["optimizer.lr=0.001", "seed=1"], 0.1)
    _fake_job(tmp_path, 1, ["optimizer.lr=0.01", "seed=1"], 0.2)
    assert Leaderboard(tmp_path).over_seeds is None
    _fake_job(tmp_path, 2, ["optimizer.lr=0.001", "seed=2"], 0.3)
    seeds = Leaderboard(tmp_path).over_seeds
    assert seeds["seeds"].tolist() == [2, 1] and seeds["objective spread"].isna().tolist() == [False, True]
    assert Leaderboard(tmp_path).seed_summary()[1][1][2] == "0.2"  # a single seed: its value, no "± nan"


def test_leaderboard_table_takes_the_terminal_width_and_keeps_long_names_whole(tmp_path, monkeypatch, capsys):
    long_value = "experiment_with_a_rather_long_name_that_used_to_be_cut_at_sixty_characters_" + "x" * 120
    _fake_job(tmp_path, 0, [f"task_name={long_value}", "seed=1"], 0.1)
    _fake_job(tmp_path, 1, ["task_name=short", "seed=1"], 0.2)
    monkeypatch.setenv("COLUMNS", "300")
    Leaderboard(tmp_path).print()
    out = capsys.readouterr().out
    assert long_value in out and max(len(line) for line in out.splitlines()) > 200  # one line, past the old 200
    monkeypatch.setenv("COLUMNS", "70")
    Leaderboard(tmp_path).print()
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 70
    # wrapped over several lines, not cut with an ellipsis: all 120 x's are there
    assert "…" not in out and sum(len(run) for run in re.findall("x{2,}", out)) == 120
