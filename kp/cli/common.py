"""What every kp command shares: its parser (the command's own description first, --verbose), the argument types
that check a value before anything runs, and the one-line error wrapper (kp.errors).

Standard library only, like kp.errors: a command imports its work (torch, Lightning, Hydra) inside main(), after its
arguments are parsed, so that `kp <command> --help` and a mistyped argument answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from kp.errors import user_errors_in_one_line

# The one-line error wrapper every command runs in (kp.errors), with the parser and the argument types below.
__all__ = [
    "parser",
    "subcommands",
    "hydra_verbose",
    "user_errors_in_one_line",
    "probability",
    "fraction",
    "count",
    "seconds",
    "batch",
]

OVERRIDES_EPILOG = (
    "Arguments group=option and key=value are Hydra overrides, as for kp train; a misspelt key or option ends in "
    "one line with the nearest names."
)


def parser(prog: str, description: str, overrides: bool = False) -> argparse.ArgumentParser:
    """A command's parser: `description` (its module docstring) as written, --verbose; with `overrides`, the command
    also takes Hydra overrides and --config-dir, a folder of configs of your own (as kp train)."""
    command = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=OVERRIDES_EPILOG if overrides else None,
    )
    command.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    if overrides:
        command.add_argument("--config-dir", metavar="DIR", help="a folder of configs of your own, searched first")
    return command


def subcommands(argv: list[str] | None, default: Callable, **named: Callable) -> None:
    """Run the subcommand that argv's first word names (`kp refine merge JOB PROJECT`: named["merge"](rest)), else
    the command's default form with all of argv. Each has its own parser and --help."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in named:
        named[argv[0]](argv[1:])
    else:
        default(argv)


def _number(text: str, kind: type, ok: Callable[[float], bool], wanted: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def probability(text: str) -> float:
    """A miss rate such as --alpha: strictly between 0 and 1."""
    return _number(text, float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")


def fraction(text: str) -> float:
    """A score threshold or share: from 0 to 1."""
    return _number(text, float, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def seconds(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number of seconds")


def count(text: str) -> int:
    """A number of things (frames, samples, images per batch): 1 or more."""
    return _number(text, int, lambda v: v >= 1, "a positive whole number")


def batch(text: str) -> int | None:
    """A fixed batch size, or 'dynamic' (None)."""
    return None if text == "dynamic" else _number(text, int, lambda v: v >= 1, "'dynamic' or a positive batch size")


def hydra_verbose(argv: list[str]) -> bool:
    """kp train's and kp sweep's `verbose=true` override: tracebacks instead of one-line errors."""
    return any(arg.lstrip("+").lower() in ("verbose=true", "verbose=1") for arg in argv)


def is_model(path: Path) -> bool:
    """Whether a command-line path names a model (a run directory, a .ckpt or an .onnx file): kp predict and kp refine
    take the leading such paths as their runs, the rest as inputs."""
    if path.suffix.lower() in (".ckpt", ".onnx"):
        return True
    try:
        return (path / "checkpoints").is_dir()
    except OSError:  # a name the file system refuses (too long): not a run, the input's own check names it
        return False
