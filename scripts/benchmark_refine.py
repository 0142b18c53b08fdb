"""Does the relabel loop pay? A simulation on labelled data: start from a quarter of the training frames, add frames
in rounds, chosen by kp refine's outlier score (kp.refine.score + kp.refine.pick, no labels used) or at random from
the rest of the training pool, retrain each round from the arm's previous run (model.init_from, as kp refine merge
prints), and compare the test error against the number of labelled frames. "Correcting" a picked frame is reading its
known label.

    nice python scripts/benchmark_refine.py [--project /work/shared/data/mirror_mouse] [--csv-file CollectedData.csv]
        [--rounds 3] [--add 8] [--first-epochs 30] [--epochs 12] [--size 128] [--seeds 4] [--out /tmp/benchmark_refine]

Writes OUT/results.csv, OUT/refine_vs_random.png and prints a Markdown table. The labelled frames are stills (no
time order), so the score uses the signals that need none: low score, calibrated radius, flip disagreement, and the
pose PCA and multi-view PCA errors (the pose priors every run stores; kp.refine.score).
The training set of each round is given to the DeepLabCut loader as a list of image paths (ChosenFrames, below).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kp.data.dlc import DeepLabCutProject  # noqa: E402
from kp.data.io import read_image  # noqa: E402
from kp.inference.load import load  # noqa: E402
from kp.refine.pick import pick, thumbnail  # noqa: E402
from kp.refine.score import FramePredictions, outlier_scores, signals  # noqa: E402

FRACTIONS = "{train:0.6,val:0.1,test:0.3}"  # a larger test split than the default 0.1: 27 of mirror_mouse's frames
MIRROR_MOUSE_PAIRS = "[[paw1LH_top,paw4RH_top],[paw2LF_top,paw3RF_top],[paw1LH_bot,paw4RH_bot],[paw2LF_bot,paw3RF_bot]]"


class ChosenFrames(DeepLabCutProject):
    """kp's DeepLabCut loader whose train split keeps only the frames listed in the file `chosen` (image paths, one
    a line): how each round trains on its own labelled frames while val and test stay the same."""

    def __init__(self, split: str, chosen: str | None = None, **options):
        super().__init__(split, **options)
        if split == "train" and chosen:
            keep = set(Path(chosen).read_text().splitlines())
            kept = [i for i, frame in enumerate(self.frames) if str(frame.image) in keep]
            self.frames, self._groups = [self.frames[i] for i in kept], [self._groups[i] for i in kept]


def train(args, run: Path, chosen: list[str], epochs: int, init_from: Path | None, seed: int) -> dict:
    """One kp training on the `chosen` frames; its test metrics (those of an earlier run of the benchmark where `run`
    already trained on the same frames)."""
    listing = "\n".join(chosen) + "\n"
    if (run / "metrics.json").is_file() and (run / "chosen.txt").read_text() == listing:
        return json.loads((run / "metrics.json").read_text())  # done before: the benchmark resumes where it stopped
    run.mkdir(parents=True, exist_ok=True)
    (run / "chosen.txt").write_text(listing)
    overrides = [
        "experiment=dlc",
        "data.dataset._target_=benchmark_refine.ChosenFrames",
        f"+data.dataset.chosen={run / 'chosen.txt'}",
        f"data.dataset.project={args.project}",
        f"data.dataset.csv_file={args.csv_file}",
        f"data.dataset.width={args.size}",
        f"data.dataset.height={args.size}",
        "data.dataset.split_by=frame",
        f"data.dataset.fractions={FRACTIONS}",
        f"data.dataset.flip_pairs={args.flip_pairs}",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        f"hydra.run.dir={run}",
        f"paths.output_dir={run}",
    ] + ([f"model.init_from={init_from}"] if init_from else [])
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'scripts'}"}
    with open(run / "stdout.log", "w") as log:
        subprocess.run(
            [sys.executable, str(ROOT / "train.py"), *overrides],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=log,
            check=True,
        )
    return json.loads((run / "metrics.json").read_text())


def refine_picks(run: Path, pool: list[str], count: int) -> list[str]:
    """The `count` frames of `pool` kp refine would pick with the model of `run` (no labels read)."""
    predictor = load(run)
    images = [read_image(Path(path)) for path in pool]
    prepared = [predictor.preprocess(image) for image in images]
    batch, affines = torch.stack([t for t, _ in prepared]), np.stack([a for _, a in prepared])
    plain = predictor.predict_with_radius(batch, affines)
    mirrored = predictor.predict_batch(batch, affines, flip=True)[0]
    priors = predictor.pose_prior_errors(plain.keypoints, affines)  # the run's pose PCA signals, as kp refine's
    predictions = FramePredictions(
        np.arange(len(pool)),
        plain.keypoints[None],
        plain.scores[None],
        plain.radius[None],
        flipped=mirrored[None],
        priors={name: errors[None] for name, errors in priors.items()},
    )
    scores, _ = outlier_scores(signals(predictions, temporal=False))
    chosen = pick(scores, np.array([thumbnail(image) for image in images]), count, seed=0)
    return [pool[i] for i in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default="/work/shared/data/mirror_mouse")
    parser.add_argument("--csv-file", default="CollectedData.csv")
    parser.add_argument("--flip-pairs", default=MIRROR_MOUSE_PAIRS, help="Hydra list of body part pairs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of adding frames after the first training")
    parser.add_argument("--add", type=int, default=8, help="frames added per round")
    parser.add_argument("--first-epochs", type=int, default=30, help="epochs of the first training (ImageNet start)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of each later round (from the previous run)")
    parser.add_argument("--size", type=int, default=128, help="frames are fitted into size × size")
    parser.add_argument("--seeds", type=int, default=4, help="repeats, each with its own start frames and draws")
    parser.add_argument("--out", type=Path, default=Path("/tmp/benchmark_refine"))
    args = parser.parse_args()

    train_split = DeepLabCutProject(
        "train",
        args.project,
        csv_file=args.csv_file,
        split_by="frame",
        fractions={"train": 0.6, "val": 0.1, "test": 0.3},
        flip_pairs=[],
    )
    pool = [str(frame.image) for frame in train_split.frames]
    results = []
    for seed in range(args.seeds):
        results += loop(args, pool, seed)
        write(results, args.out)  # after every seed: a partial benchmark still has its table


def loop(args, pool: list[str], seed: int) -> list[tuple]:
    """One repeat: the shared first training, then each arm's rounds; (seed, arm, round, frames, metrics) rows."""
    out = args.out / f"seed{seed}"
    rng = np.random.default_rng(seed)
    start = sorted(rng.choice(pool, size=len(pool) // 4, replace=False).tolist())
    first = train(args, out / "start", start, args.first_epochs, None, seed)
    results = [(seed, "start", 0, len(start), first)]
    for arm in ("refine", "random"):
        chosen, run = list(start), out / "start"
        for round_ in range(1, args.rounds + 1):
            rest = [path for path in pool if path not in chosen]
            added = refine_picks(run, rest, args.add) if arm == "refine" else rng.choice(rest, args.add, False).tolist()
            chosen += added
            previous, run = run, out / f"{arm}_{round_}"
            metrics = train(args, run, chosen, args.epochs, previous, seed)
            results.append((seed, arm, round_, len(chosen), metrics))
            print(
                f"seed {seed}, {arm} round {round_}: {len(chosen)} frames, test NME {metrics['test/nme']:.4f}",
                flush=True,
            )
    return results


def write(results: list, out: Path) -> None:
    """results.csv (every training), the Markdown table (mean and standard deviation over the seeds) and the figure."""
    columns = ("test/nme", "test/rmse", "test/pck_0.05")
    with open(out / "results.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["seed", "arm", "round", "labelled", *columns])
        writer.writerows([seed, arm, r, n, *(f"{m[c]:.4f}" for c in columns)] for seed, arm, r, n, m in results)
    seeds = sorted({row[0] for row in results})
    curves = {}  # arm -> (frames per round, NME seeds × rounds, PCK seeds × rounds)
    for arm in ("refine", "random"):
        rows = [[row for row in results if row[0] == seed and row[1] in ("start", arm)] for seed in seeds]
        frames = [row[3] for row in rows[0]]
        nme = np.array([[row[4]["test/nme"] for row in seed_rows] for seed_rows in rows])
        pck = np.array([[row[4]["test/pck_0.05"] for row in seed_rows] for seed_rows in rows])
        curves[arm] = frames, nme, pck
    print(f"test error over {len(seeds)} seed(s), mean ± standard deviation\n")
    print("| labelled frames | refine NME | random NME | refine PCK@0.05 | random PCK@0.05 |\n|---|---|---|---|---|")
    frames = curves["refine"][0]
    for i, n in enumerate(frames):
        cells = [f"{curves[a][1][:, i].mean():.4f} ± {curves[a][1][:, i].std():.4f}" for a in ("refine", "random")]
        cells += [f"{curves[a][2][:, i].mean():.3f} ± {curves[a][2][:, i].std():.3f}" for a in ("refine", "random")]
        print(f"| {n}{' (start)' if i == 0 else ''} | " + " | ".join(cells) + " |")
    figure, axis = plt.subplots(figsize=(5, 3.4))
    for arm, colour in (("refine", "tab:red"), ("random", "tab:blue")):
        frames, nme, _ = curves[arm]
        for seed_curve in nme:
            axis.plot(frames, seed_curve, "-", color=colour, alpha=0.25, linewidth=1)
        axis.plot(frames, nme.mean(axis=0), "o-", color=colour, label=f"{arm} (mean of {len(nme)})")
    axis.set_xlabel("labelled training frames")
    axis.set_ylabel("test NME (lower is better)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "refine_vs_random.png", dpi=110)


if __name__ == "__main__":
    main()
