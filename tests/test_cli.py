"""The kp command's toolkit (kp/cli/common.py): help that says what each command does, answered (like argument
errors) without importing torch, shared argument types, real subcommands, and choices that agree with the library."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from kp.cli import COMMANDS, common
from tests.helpers import ROOT

# Every command's --help, then argument errors, in one process: which of them imported torch or Lightning.
_PROBE = """
import sys
from kp.cli import main
for argv in {cases!r}:
    sys.argv = ["kp", *argv]
    try:
        main()
    except SystemExit as stop:
        print(stop.code if isinstance(stop.code, str) else "", file=sys.stderr)
    print("HEAVY", argv, sorted(m for m in ("torch", "lightning") if m in sys.modules), file=sys.stderr)
"""
ARGUMENT_ERRORS = [
    ["predict", "run", "a.png", "--threshold", "1.5"],
    ["refine", "run", "v.mp4", "--threshold", "-0.1"],
    ["evaluate", "run", "--alpha", "1"],
    ["export", "run", "--batch", "0"],
    ["smooth", "p.csv", "--method", "kalmann"],
    ["train", "model=unett"],
    ["doctor", "data.datset.root=/x"],
]


def test_help_and_argument_errors_import_no_torch():
    cases = [[name, "--help"] for name in COMMANDS] + [["refine", "merge", "--help"], ["sweep", "summarize", "-h"]]
    cases += ARGUMENT_ERRORS
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(cases=cases)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY")]
    assert len(heavy) == len(cases), done.stderr[-3000:]
    assert all(line.endswith("[]") for line in heavy), "\n".join(heavy)
    errors = done.stderr
    assert "--threshold: expected a number from 0 to 1, got '1.5'" in errors
    assert "--threshold: expected a number from 0 to 1, got '-0.1'" in errors
    assert "--alpha: expected a number between 0 and 1 (exclusive), got '1'" in errors
    assert "--batch: expected 'dynamic' or a positive batch size, got '0'" in errors
    assert "configuration error: model=unett: no such option in model; did you mean unet?" in errors


def _help(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kp", *argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_says_what_each_command_does():
    from kp.cli import refine, sweep, train
    from kp.refine.score import JUMP_WINDOW

    text = _help("train")
    assert text.startswith(train.__doc__.splitlines()[0]) and "powered by Hydra" not in text
    assert text.index("ckpt_path=last") < text.index("== Configuration groups ==") < text.index("\nmodel: ")
    assert "\nmodel: cards_unet, efficientnet_lite0," in text and "/base:" not in text  # no shared parts as groups
    text = _help("sweep")
    assert text.startswith(sweep.__doc__.splitlines()[0]) and "powered by Hydra" not in text
    assert all(word in text for word in ("-m model=", "hparams_search=", "kp sweep summarize", "leaderboard"))
    text = _help("refine")
    assert f"running median over {JUMP_WINDOW} frames" in text and "Kalman" not in text
    assert text.startswith("usage: kp refine") and refine.__doc__.splitlines()[0] in text
    assert _help("refine", "merge").startswith(
        "usage: kp refine merge [-h] [--verbose] [--accept-unreviewed] job project"
    )
    assert _help("sweep", "summarize").startswith("usage: kp sweep summarize [-h] [--verbose] sweep_dir")


def test_no_pointer_to_a_readme_section_that_moved_to_docs():
    """The README keeps a summary; the sections code cites live in docs/."""
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "kp").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "README" in line
    ]
    assert cited == []


def test_argument_types():
    assert common.probability("0.1") == 0.1 and common.fraction("0") == 0.0 and common.fraction("1") == 1.0
    assert common.count("3") == 3 and common.seconds("0.5") == 0.5
    assert common.batch("dynamic") is None and common.batch("8") == 8
    for check, text in (
        (common.probability, "0"),
        (common.probability, "x"),
        (common.fraction, "1.01"),
        (common.count, "0"),
        (common.count, "2.5"),
        (common.seconds, "0"),
        (common.seconds, "nan"),
        (common.batch, "-1"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=f"got '{text}'"):
            check(text)


def test_the_commands_choices_are_the_librarys():
    """Written in kp/cli so that --help loads no torch: they must stay the library's own."""
    from kp.cli import export, predict
    from kp.export.export import FORMATS as EXPORT_FORMATS
    from kp.export.parity import LATENCY_BUDGET_S
    from kp.predict.writers import FORMATS
    from kp.trajectories.smooth import METHODS

    assert predict.FORMATS == FORMATS and predict.METHODS == METHODS
    assert export.FORMATS == tuple(EXPORT_FORMATS) and export.LATENCY_BUDGET_S == LATENCY_BUDGET_S


def test_predict_passes_every_option_by_name(monkeypatch, tmp_path):
    """kp predict's options reach predict_inputs under their own parameter names."""
    import inspect

    from kp.cli import predict
    from kp.predict import predict as library

    parameters = inspect.signature(library.predict_inputs).parameters
    calls = []
    monkeypatch.setattr(library, "predict_inputs", lambda *args, **kw: calls.append((args, kw)))
    predict.main(["run", "a.png", "--threshold", "0.5", "--every", "2", "--format", "dlc", "--smooth", "median"])
    ((args, options),) = calls
    assert args == ("run", ["a.png"], Path("predictions"))
    assert set(options) <= set(parameters)
    assert (options["threshold"], options["every"], options["formats"], options["smooth"]) == (
        0.5,
        2,
        ("dlc",),
        "median",
    )


def test_tables_keep_whole_names_at_80_columns(tmp_path):
    """kp smooth's table on the mirror-mouse labels in an 80-column terminal: every keypoint name whole (folded onto
    the next line where it does not fit), none cut to `paw1LH_t…`."""
    import csv
    import os

    from tests.helpers import shared_data

    labels = shared_data("mirror_mouse") / "CollectedData.csv"
    with open(labels, newline="") as f:
        names = set(list(csv.reader(f))[1][1:]) - {""}
    done = subprocess.run(
        [sys.executable, "-m", "kp", "smooth", str(labels), "--out", str(tmp_path)],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = []
    for line in (done.stdout + done.stderr).splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) > 2 and cells[2]:  # a row: its frame count
            rows.append(cells[1])
        elif len(cells) > 2 and rows:  # the rest of a folded name
            rows[-1] += cells[1]
    assert set(rows) == names and "…" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "argv, line",
    [
        (["batch_size=8"], "batch_size=8: no such key; did you mean data.batch_size?"),
        (
            ["data=dlc", "data.dataset.projekt=x"],
            "data.dataset.projekt=x: no such key; did you mean data.dataset.project?",
        ),
        (["hydra.job.chdir=abc"], "Value 'abc' is not a valid bool"),
        (["trainer.max_epochs=[1"], "'trainer.max_epochs=[1' is not an override: write group=option or key=value"),
        (["-m", "model=unet,hourglas"], "model=hourglas: no such option in model; did you mean hourglass"),
        (["-m", "optimizer.lr=1e-3,abc"], "optimizer.lr='abc': expected a number"),
        (["--config-dir", "nowhere", "model=unet"], "--config-dir nowhere: no such folder"),
        (["data.num_workers=-1"], "data.num_workers=-1: expected 0 or more"),
    ],
)
def test_command_line_mistakes_name_the_override(argv, line, tmp_path, monkeypatch):
    """kp train's and kp sweep's check (kp.config.check_command_line): every value of a sweep, Hydra's own flags."""
    from kp.config import check_command_line
    from kp.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        check_command_line(argv)
    assert line in str(error.value) and "\n" not in str(error.value)
    check_command_line(["-m", "model=unet,hourglass", "optimizer.lr=1e-3,3e-4", "--cfg", "job"])  # all good
