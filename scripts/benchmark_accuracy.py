"""The README's accuracy table: train every preset (conf/experiment/<name>.yaml) on its real data, then score its
best checkpoint on the held-out split with and without test-time flip (kp.evaluation.evaluate).

    python scripts/benchmark_accuracy.py [facial68 cards ...] [--out benchmarks/accuracy]
        [--seeds 0 1 2 | --train-seeds 0 1 2] [--quick] [-- key=value ...]

Each preset trains as a user would run it, `python train.py experiment=<name>`, in its own process (run dir
<out>/<name>), then `kp evaluate` writes <out>/<name>/eval/<split>/ and eval/<split>_flip/. The table (printed and
written to <out>/accuracy.md, one row per preset and metric, goal beside it) gives the wall time of training (with
its validation epochs and the end-of-run report), the training images per second (training images × epochs ÷ that
wall time) and the exact command. Presets whose data is absent (../shared/data) are skipped with the reason.

--seeds S [S ...]: train each preset once per split seed (data.dataset.seed=S, run dir <out>/<name>/seed<S>): a
held-out split of a few frames moves a figure more than the recipe does, so the table gives the mean over the seeds,
their standard deviation (`spread`) and each seed's value.
--train-seeds S [S ...]: the same over training seeds (seed=S: initial weights, shuffling, augmentation; run dir
<out>/<name>/train_seed<S>) on the preset's own split: how far the recipe itself moves a figure.

worst_part_ratio (a metric of its own): the largest body part's mean error over the median body part's, in the
frames' pixels (errors.csv), for the left/right confusion that swapped paws show as one part far worse than the rest.

--score-only: score the runs already in <out>/<name> (their wall time from run_info.json, their command from
.hydra/overrides.yaml) without training again.

--quick: one epoch of two batches each (and two validation and test batches): checks that every preset runs end to
end, measures nothing (tests/test_benchmark_accuracy.py). Arguments after `--` go to every train.py (e.g.
`data.dataset.root=...` for the cat preset, whose images are not in ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.errors import user_errors_in_one_line  # noqa: E402
from kp.evaluation.evaluate import evaluate_run  # noqa: E402


class TrainingFailed(RuntimeError):
    """train.py exited with an error (its last lines are in the message)."""


@dataclass
class Preset:
    data: str  # the folder of ../shared/data it needs (None: none there; the cat images are not shipped)
    split: str  # the held-out split its figures are reported on
    goals: dict[str, tuple[str, float]]  # metric -> ("<=" or ">=", goal), metrics as evaluate's metrics.json names them
    overrides: tuple[str, ...] = ()  # what the preset's measured figure needs on top of it


PRESETS = {
    # the Kaggle layout has no person ids: the validation split holds groups of look-alike images (split_by)
    "facial": Preset("facial_kaggle_format", "val", {"rmse": ("<=", 1.30), "nme": ("", 0), "pck_0.05": ("", 0)}),
    "facial68": Preset("facial68", "test", {"nme": ("<=", 0.040), "rmse": ("", 0), "rmse_source_px": ("", 0)}),
    "cards": Preset("cards", "test", {"count_mae": ("<=", 2.0), "rmse": ("<=", 4.0), "pck_0.05": (">=", 0.97)}),
    "dlc": Preset(
        "dlc_reaching",
        "test",
        {
            "rmse_source_px": ("<=", 5.0),
            "mean_error_source_px": ("", 0),
            "rmse": ("", 0),
            "pck_0.05": (">=", 0.95),
            "worst_part_ratio": ("", 0),
        },
        # the demo's body parts name no side: declared mirror-free, so that mirroring and flip test run (data.md)
        ("data.dataset.flip_pairs=[]",),
    ),
    "mirror_mouse": Preset(
        "mirror_mouse",
        "test",
        {"rmse_source_px": ("<=", 5.0), "worst_part_ratio": ("<=", 3.0), "rmse": ("", 0), "pck_0.05": ("", 0)},
    ),
    # the same frames and goals, trained with test_vid.mp4's unlabelled clips beside them (issue 27)
    "mirror_mouse_semi": Preset(
        "mirror_mouse",
        "test",
        {"rmse_source_px": ("<=", 5.0), "worst_part_ratio": ("<=", 3.0), "rmse": ("", 0), "pck_0.05": ("", 0)},
    ),
    "cat": Preset(None, "test", {"pck_0.05": ("", 0), "rmse": ("", 0)}),
}
QUICK = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.num_workers=0",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def data_dir() -> Path:
    return Path(os.environ.get("KP_DATA_DIR", ROOT.parent / "shared" / "data"))


def train(name: str, out: Path, overrides: list[str]) -> tuple[float, str]:
    """Train the preset in its own process; (wall seconds, the command as a user would type it)."""
    args = [f"experiment={name}", *overrides]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={out}"], cwd=ROOT, text=True, capture_output=True
    )
    seconds = time.perf_counter() - started
    if result.returncode:  # train.py's own error is its last line on stderr
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainingFailed(f"{name}: train.py failed (exit {result.returncode}): {last}")
    return seconds, "python train.py " + " ".join(args)


def trained(run: Path) -> tuple[float, str]:
    """(wall seconds, command) of a run trained earlier."""
    if not (run / "metrics.json").exists():
        raise FileNotFoundError(
            f"{run}: no finished run to score (no metrics.json); train it first (drop --score-only)"
        )
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    return json.loads((run / "run_info.json").read_text())["wall_time_s"], "python train.py " + " ".join(
        o for o in overrides if not o.startswith("hydra.")
    )


def worst_part_ratio(errors_csv: Path) -> float:
    """The largest body part's mean error over the median body part's (frames' pixels, labelled points only)."""
    errors = pd.read_csv(errors_csv)
    means = errors[errors["visible"]].groupby("keypoint")["error_source_px"].mean()
    return float(means.max() / means.median())


def score(run: Path, preset: Preset) -> dict[str, tuple[float, float]]:
    """metric -> (value, value with flip test) for the preset's goal metrics."""
    results = {}
    for flip in (False, True):
        out = run / "eval" / f"{preset.split}{'_flip' if flip else ''}"
        # the plain report is the one training wrote, redone the same way (and --score-only reruns both)
        results[flip] = evaluate_run(run, preset.split, flip=flip, out=out, overwrite=True)
        results[flip][f"{preset.split}/worst_part_ratio"] = worst_part_ratio(out / "errors.csv")
    return {
        m: tuple(results[flip].get(f"{preset.split}/{m}", math.nan) for flip in (False, True)) for m in preset.goals
    }


def rows_for(name: str, preset: Preset, runs: list[dict]) -> list[dict]:
    """One row per goal metric: the mean over the runs (one per seed), their spread and each run's value."""
    rows = []
    for metric, (sense, goal) in preset.goals.items():
        values = [run["scores"][metric][0] for run in runs]
        value = statistics.fmean(values)
        met = "" if not sense else ("yes" if (value <= goal if sense == "<=" else value >= goal) else "no")
        rows.append(
            {
                "preset": name,
                "split": preset.split,
                "metric": metric,
                "value": value,
                "spread": statistics.stdev(values) if len(values) > 1 else math.nan,
                "per seed": " / ".join(f"{v:.4g}" for v in values) if len(values) > 1 else "",
                "with flip": statistics.fmean(run["scores"][metric][1] for run in runs),
                "goal": f"{sense} {goal:g}" if sense else "",
                "met": met,
                "minutes": statistics.fmean(run["seconds"] for run in runs) / 60,
                "images/s": statistics.fmean(run["images/s"] for run in runs),
                "command": runs[0]["command"],
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    columns = ["preset", "split", "metric", "value", "spread", "per seed", "with flip", "goal", "met", "minutes"]
    columns += ["images/s", "command"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) and np.isfinite(row[c]) else str(row[c]) for c in columns]
        cells = ["" if c == "nan" else c for c in cells]
        cells[-1] = f"`{cells[-1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _benchmark(name: str, args: argparse.Namespace, extra: list[str]) -> list[dict]:
    """Train (or, with --score-only, find) and score one preset; no rows when its data is absent."""
    preset = PRESETS[name]
    if preset.data and not (data_dir() / preset.data).exists():
        print(f"{name}: skipped, its data {data_dir() / preset.data} is absent")
        return []
    runs = []
    key, folder = ("seed", "train_seed") if args.train_seeds else ("data.dataset.seed", "seed")
    for seed in args.train_seeds or args.seeds or [None]:
        run = args.out / name if seed is None else args.out / name / f"{folder}{seed}"
        overrides = [*preset.overrides, *([] if seed is None else [f"{key}={seed}"])]
        if args.score_only:
            seconds, command = trained(run)
        else:
            seconds, command = train(name, run, [*overrides, *(QUICK if args.quick else []), *extra])
        train_metrics = json.loads((run / "metrics.json").read_text())
        images_per_s = train_metrics["train_images"] * train_metrics["epochs"] / seconds
        runs.append({"scores": score(run, preset), "seconds": seconds, "images/s": images_per_s, "command": command})
        print(
            f"{name}{'' if seed is None else f' {key}={seed}'}: trained in {seconds / 60:.1f} min; "
            + ", ".join(f"{m} {v:.4g} (flip {f:.4g})" for m, (v, f) in runs[-1]["scores"].items())
        )
    return rows_for(name, preset, runs)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", metavar="preset", help=f"any of {', '.join(PRESETS)} (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "accuracy")
    parser.add_argument("--quick", action="store_true", help="one epoch of 2 batches each: checks, measures nothing")
    parser.add_argument("--score-only", action="store_true", help="score the runs already in --out, do not train")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, nargs="+", help="train once per split seed (data.dataset.seed)")
    seeds.add_argument("--train-seeds", type=int, nargs="+", help="train once per training seed (seed)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    unknown = [name for name in args.presets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}: choose from {', '.join(PRESETS)}")
    rows = []
    with user_errors_in_one_line(also=(FileNotFoundError, TrainingFailed)):
        for name in args.presets or list(PRESETS):
            rows += _benchmark(name, args, extra)
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.md").write_text(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
