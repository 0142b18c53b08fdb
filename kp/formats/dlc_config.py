"""A DeepLabCut project's config.yaml, the keys kp reads and writes: `scorer` (whose CollectedData_<scorer>.csv files
hold the labels), `bodyparts` and `skeleton` (pairs of body part names). Read by the DeepLabCut loader (kp.data.dlc)
and kp refine's merge; written by kp refine's labelling job."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from kp.data.io import read_text
from kp.errors import DataError


def read(path: Path) -> tuple[str, list[str], list]:
    """scorer, bodyparts and skeleton (pairs of body part names) of a DeepLabCut config.yaml."""
    if not path.is_file():
        raise DataError(
            f"{path}: not found: a DeepLabCut project folder holds config.yaml, or give its one label "
            "file with data.dataset.csv_file=CollectedData.csv"
        )
    try:
        config = yaml.safe_load(read_text(path))
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}: not a DeepLabCut config (expected a mapping with scorer and bodyparts)")
    if config.get("multianimalproject"):
        raise DataError(f"{path}: multi-animal projects (an extra `individuals` header row) are not supported")
    bodyparts = config.get("bodyparts")
    if not config.get("scorer") or not isinstance(bodyparts, list) or not bodyparts:
        raise DataError(f"{path}: needs `scorer` and a non-empty `bodyparts` list")
    return str(config["scorer"]), [str(b) for b in bodyparts], config.get("skeleton") or []


def write(path: Path, scorer: str, bodyparts: Sequence[str], skeleton: Sequence[Sequence[str]]) -> None:
    config = {"scorer": scorer, "bodyparts": list(bodyparts), "skeleton": [list(edge) for edge in skeleton]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
