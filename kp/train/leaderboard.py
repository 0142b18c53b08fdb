"""The leaderboard of a sweep, built from its job directories alone (so `python sweep.py --summarize <sweep_dir>`
rebuilds it at any time): one row per job with its status (and error), its overrides, the objective (the best
validation value of optimized_metric), the final test metrics, the wall time and the run dir. Printed as a table and
written to the sweep dir as leaderboard.csv, leaderboard.md and objective.png (the objective against each swept
parameter), plus learning_curve.png where the sweep varies data.train_fraction (kp.train.learning_curve).
Where the sweep varies `seed` (`kp sweep -m seed=0,1,2 experiment=X`), the jobs that differ only in seed are also
summarised together: per setting, the number of seeds and of the objective and each test metric the mean and the
spread (the sample standard deviation, as scripts/benchmark_accuracy.py gives it), printed as a second table, written
to leaderboard_seeds.csv and to leaderboard.md. One run is one draw: the spread says how far the next run may land.
LeaderboardCallback does it at the end of every multirun (conf/hydra/default.yaml)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from kp import markdown
from kp.run_dir import RunDir
from kp.train import learning_curve, run_info
from kp.train.learning_curve import PowerLaw
from kp.viz import leaderboard as figures

log = logging.getLogger(__name__)


class Leaderboard:
    """rows: one per job, best objective first, failed jobs last; swept: the override keys whose values differ
    between jobs (all override keys when none do); objective: "<optimized_metric> (<mode>)"."""

    def __init__(self, sweep_dir: Path):
        self.sweep_dir = Path(sweep_dir)
        if not self.sweep_dir.is_dir():
            raise FileNotFoundError(
                f"{sweep_dir}: no such sweep directory (expected logs/<task_name>/multiruns/<time>)"
            )
        jobs = sorted(
            (p for p in self.sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
        )
        if not jobs:
            raise FileNotFoundError(f"{sweep_dir}: no job directories (0/, 1/, ...): is this a multirun directory?")
        rows, override_keys = [], {}
        for job in jobs:
            config = OmegaConf.load(RunDir(job).config)
            overrides = dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
            override_keys.update(dict.fromkeys(overrides))
            metrics_file = RunDir(job).metrics
            metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
            info = run_info.read(job)
            rows.append(
                {
                    "job": int(job.name),
                    # a job killed from outside never wrote its end: run_info.read says "killed" once its process is
                    # gone
                    "status": info.get("status", "completed" if metrics else "unknown"),
                    **overrides,
                    "objective": metrics.get(f"best/{config.optimized_metric}", math.nan),
                    "train_images": metrics.get("train_images", math.nan),
                    # the overall test metrics, not the per-keypoint ones (test/pck_0.05/left_eye)
                    **{k: v for k, v in metrics.items() if k.startswith("test/") and k.count("/") == 1},
                    "wall_time_s": info.get("wall_time_s", math.nan),
                    "error": info.get("error", ""),
                    "run_dir": str(job),
                }
            )
        self.objective = f"{config.optimized_metric} ({config.optimized_mode})"
        self.mode = config.optimized_mode
        table = pd.DataFrame(rows)
        for key in override_keys:  # numbers as numbers (the CSV, sorting, the plot), the rest as written
            try:
                table[key] = pd.to_numeric(table[key])
            except (ValueError, TypeError):
                pass
        self.swept = [k for k in override_keys if table[k].astype(str).nunique() > 1] or list(override_keys)
        # Overrides every job shares are said once (self.common), not repeated per row; the columns keep one order
        # whichever job failed (a failed job has no test metrics, so dict order would move them).
        self.common = {k: _text(table[k].iloc[0]) for k in override_keys if k not in self.swept}
        tests = sorted(c for c in table.columns if c.startswith("test/"))
        self.has_learning_curve = "data.train_fraction" in self.swept
        sizes = ["train_images"] if self.has_learning_curve else []
        table = table[["job", "status", *self.swept, *sizes, "objective", *tests, "wall_time_s", "error", "run_dir"]]
        self.rows = table.sort_values(
            "objective", ascending=config.optimized_mode == "min", na_position="last", kind="stable"
        ).reset_index(drop=True)
        self.over_seeds = self._over_seeds(["objective", *tests]) if "seed" in self.swept else None

    def _over_seeds(self, metrics: list[str]) -> pd.DataFrame:
        """One row per setting of the swept keys other than seed, best mean objective first: `seeds` (how many jobs
        have an objective), then `<metric> mean` and `<metric> spread` (sample standard deviation; empty for one
        seed) of each metric over those jobs. Failed jobs count in no mean."""
        others = [k for k in self.swept if k != "seed"]
        done = self.rows[self.rows["objective"].notna()]
        groups = done.groupby([done[k].astype(str) for k in others], sort=False) if others else [((), done)]
        rows = []
        for values, jobs in groups:
            row = dict(zip(others, values if isinstance(values, tuple) else (values,)))
            row["seeds"] = len(jobs)
            for metric in metrics:
                row[f"{metric} mean"] = jobs[metric].mean()
                row[f"{metric} spread"] = jobs[metric].std(ddof=1) if jobs[metric].count() > 1 else math.nan
            rows.append(row)
        columns = [*others, "seeds", *(f"{m} {s}" for m in metrics for s in ("mean", "spread"))]
        return (
            pd.DataFrame(rows, columns=columns)
            .sort_values("objective mean", ascending=self.mode == "min", na_position="last", kind="stable")
            .reset_index(drop=True)
        )

    def seed_summary(self) -> tuple[list[str], list[list[str]]]:
        """The over-seeds table as text: its header and rows, each metric as `mean ± spread`."""
        table = self.over_seeds
        keys = [c for c in table.columns if not c.endswith((" mean", " spread"))]
        metrics = [c.removesuffix(" mean") for c in table.columns if c.endswith(" mean")]
        rows = []
        for _, row in table.iterrows():
            spreads = [_text(row[f"{m} spread"]) for m in metrics]
            means = [_text(row[f"{m} mean"]) for m in metrics]
            rows.append([_text(row[k]) for k in keys] + [f"{m} ± {s}" if s else m for m, s in zip(means, spreads)])
        return keys + metrics, rows

    def write(self) -> None:
        self.rows.to_csv(self.sweep_dir / "leaderboard.csv", index=False)
        if self.over_seeds is not None:
            self.over_seeds.to_csv(self.sweep_dir / "leaderboard_seeds.csv", index=False)
        (self.sweep_dir / "leaderboard.md").write_text(self.markdown())
        self.plot(self.sweep_dir / "objective.png")
        if self.has_learning_curve:
            self.plot_learning_curve(self.sweep_dir / "learning_curve.png")

    def learning_curves(self) -> list[tuple[str, pd.DataFrame, PowerLaw | None]]:
        """Per combination of the other swept parameters (one curve when only data.train_fraction varies): its label,
        its completed jobs by training-set size, and the power law fitted to their errors."""
        done = self.rows[self.rows["objective"].notna() & self.rows["train_images"].notna()].copy()
        done["error"] = [learning_curve.error_of(v, self.mode) for v in done["objective"]]
        others = [k for k in self.swept if k != "data.train_fraction"]
        groups = done.groupby([done[k].astype(str) for k in others], sort=False) if others else [((), done)]
        curves = []
        for values, jobs in groups:
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join(f"{k}={v}" for k, v in zip(others, values)) or "all jobs"
            jobs = jobs.sort_values("train_images")
            curves.append((label, jobs, PowerLaw.fit(jobs["train_images"].tolist(), jobs["error"].tolist())))
        return curves

    def learning_curve_lines(self) -> list[str]:
        return [
            learning_curve.summary(law, jobs["train_images"].tolist(), label)
            for label, jobs, law in self.learning_curves()
        ]

    def plot_learning_curve(self, path: Path) -> None:
        what = self.objective.split(" (")[0]
        ylabel = f"best validation {what}" if self.mode == "min" else f"1 - best validation {what}"
        figures.learning_curve(self.learning_curves(), ylabel, self.sweep_dir.name, path)

    def markdown(self) -> str:
        columns = list(self.rows.columns)
        common = ", ".join(f"{k}={v}" for k, v in self.common.items())
        lines = [
            f"# Leaderboard: {self.sweep_dir}",
            "",
            f"objective: best validation {self.objective}",
            "",
            *([f"every job: {common}", ""] if common else []),
            *(
                [f"learning curve (learning_curve.png): {line}" for line in self.learning_curve_lines()] + [""]
                if self.has_learning_curve
                else []
            ),
            markdown.table(columns, [[_text(v) for v in row] for row in self.rows.itertuples(index=False)]),
        ]
        if self.over_seeds is not None:
            header, rows = self.seed_summary()
            lines += [
                "Over the seeds (mean ± spread, the sample standard deviation):",
                "",
                markdown.table(header, rows),
            ]
        return "\n".join(lines)

    def print(self) -> None:
        table = Table(title=f"Leaderboard: {self.sweep_dir} (objective: {self.objective})")
        columns = [
            "job",
            "status",
            *self.swept,
            *(["train_images"] if self.has_learning_curve else []),
            "objective",
            *(c for c in self.rows.columns if c.startswith("test/")),
            "wall_time_s",
            "error",
        ]
        for column in columns:  # a name too long for its column wraps rather than losing its end
            table.add_column(
                column, justify="right" if column in ("job", "objective", "wall_time_s") else "left", overflow="fold"
            )
        for _, row in self.rows.iterrows():
            # an error's first 60 characters; leaderboard.csv and .md have it whole
            table.add_row(*(_text(row[c])[:60] if c == "error" else _text(row[c]) for c in columns))
        table.caption = f"run dir of job N: {self.sweep_dir}/N"
        console = Console()  # the terminal's width (80 columns when the output is not a terminal)
        console.print(table)
        if self.over_seeds is not None:
            header, rows = self.seed_summary()
            seeds = Table(
                title=f"Over the seeds: mean ± spread (sample standard deviation); objective {self.objective}"
            )
            for column in header:
                seeds.add_column(column, overflow="fold")
            for row in rows:
                seeds.add_row(*row)
            console.print(seeds)
        if self.has_learning_curve:  # printed rather than logged: `sweep.py --summarize` configures no logging
            for line in self.learning_curve_lines():
                console.print(f"learning curve: {line}", soft_wrap=True)

    def plot(self, path: Path) -> None:
        figures.objective(self.rows, self.swept, self.objective, self.sweep_dir.name, path)


def _text(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def summarize(sweep_dir: Path) -> Leaderboard:
    board = Leaderboard(sweep_dir)
    board.write()
    board.print()
    log.info("leaderboard: %s (.csv, .md) and %s", sweep_dir / "leaderboard", sweep_dir / "objective.png")
    return board


class LeaderboardCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        summarize(Path(config.hydra.sweep.dir))
