"""Markdown tables for kp's reports (evaluation, label doctor, leaderboard, parity, smoothing): one format, so every
report's tables look alike and a `|` or a line break in a name cannot break a row. Standard library only, at the
bottom of the package map, so any layer may use it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def cell(value: object) -> str:
    """One cell's text: `|` escaped, line breaks as spaces."""
    return str(value).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table with a header row, one line per row and a final newline; cells are str()'d as they are
    (format numbers before)."""
    lines = ["| " + " | ".join(cell(name) for name in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
