"""The split of a dataset into train, val and test by groups (videos, people, images) so that near-duplicates never
straddle two splits; groups of look-alike images where a dataset has no ids (`similarity_groups`); and the nested
subsets of data.train_fraction."""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from kp.defaults import SPLITS
from kp.errors import DataError


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def every_split_gets_one(groups: int, fractions: Mapping[str, float]) -> bool:
    """Whether dealing `groups` groups out by `fractions` (as split_groups does) leaves no split with a share empty."""
    ends = np.round(np.cumsum([fractions[s] for s in SPLITS]) * groups).astype(int)
    return all(end > start or fractions[s] == 0 for s, start, end in zip(SPLITS, [0, *ends[:-1]], ends))


def choose_groups(
    split_by: str,
    videos: Sequence[str],
    look_alikes: Callable[[], Sequence[str]],
    singles: Sequence[str],
    fractions: Mapping[str, float],
) -> tuple[str, list[str], str]:
    """(split_by, each sample's group, what auto saw) for the video projects (DeepLabCut, SLEAP): split_by=auto takes
    whole videos where there are enough for one in every split, else groups of look-alike frames (computed only then)
    where there are enough of those, else single frames."""
    if split_by == "video" or split_by == "auto" and every_split_gets_one(len(set(videos)), fractions):
        return "video", list(videos), ""
    why = f" ({len(set(videos))} video(s), too few for one in every split)" if split_by == "auto" else ""
    if split_by in ("similarity", "auto"):
        groups = list(look_alikes())
        if split_by == "similarity" or every_split_gets_one(len(set(groups)), fractions):
            return "similarity", groups, why
        why = f"{why[:-1]}, and {len(set(groups))} group(s) of look-alike frames, too few as well)"
    return "frame", list(singles), why


def split_groups(
    groups: Sequence[str],
    split: str,
    fractions: Mapping[str, float],
    seed: int,
    what: str,
    fractions_of: str = "groups",
) -> list[int]:
    """Indices (ascending) of the samples that fall into `split`, where groups[i] is sample i's group (video, image,
    person). Whole groups are shuffled with `seed` and handed out in that order, so near-duplicate frames of one group
    never straddle two splits. `what` names the data and its groups for the error messages (e.g. "cardpoints.csv by
    videoId"); a split left empty is a DataError.

    fractions_of says what `fractions` count:
      - "groups": of the groups; the first train share of the shuffled groups is train, then val, then test (a split
        whose share rounds to no group is empty);
      - "samples": of the samples; groups fill test, then val, until each holds its share of the samples (the last
        group may overshoot it), and the rest is train. Any split with a share above 0 gets a group while groups last,
        and the sizes follow the sample counts where groups differ much in size (people with 1 or 50 photos)."""
    check_split(split)
    if (
        set(fractions) != set(SPLITS)
        or any(fractions[s] < 0 for s in SPLITS)
        or not math.isclose(sum(fractions[s] for s in SPLITS), 1.0, abs_tol=1e-6)
    ):
        raise ValueError(f"fractions must give train, val and test, each >= 0 and summing to 1; got {dict(fractions)}")
    if fractions_of not in ("groups", "samples"):
        raise ValueError(f"fractions_of must be 'groups' or 'samples', got {fractions_of!r}")
    unique = sorted(set(groups))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    if fractions_of == "groups":
        ends = np.round(np.cumsum([fractions[s] for s in SPLITS]) * len(unique)).astype(int)
        k = SPLITS.index(split)
        chosen = set(order[(ends[k - 1] if k else 0) : ends[k]])
    else:
        size = Counter(groups)
        wanted = {s: fractions[s] * len(groups) for s in ("test", "val")}
        filled = {"test": 0, "val": 0}
        chosen = set()
        for group in order:
            goes_to = next((s for s in ("test", "val") if filled[s] < wanted[s]), "train")
            if goes_to != "train":
                filled[goes_to] += size[group]
            if goes_to == split:
                chosen.add(group)
    indices = [i for i, group in enumerate(groups) if group in chosen]
    if not indices:
        raise DataError(
            f"The {split} split of {what} is empty: {len(unique)} group(s) dealt out by fractions {dict(fractions)} "
            f"of the {fractions_of}. Add data or change the fractions (or split_by, where the dataset has it)."
        )
    return indices


# Difference hashes at most this many of 64 bits apart count as near-duplicates (the doctor's and split_by=similarity's
# rule): re-encoded, slightly shifted or brightened copies and frames a few milliseconds apart.
NEAR_BITS = 4


def difference_hash(image: np.ndarray) -> int:
    """64 bits: whether each pixel of a 9×8 grey thumbnail is brighter than its right neighbour (robust to
    re-encoding, resizing and small brightness changes). image: H×W, H×W×1 (grey) or H×W×3 (RGB)."""
    grey = (
        image if image.ndim == 2 else image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    )
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def similarity_groups(images: Iterable[np.ndarray], near_bits: int = NEAR_BITS) -> list[str]:
    """Per image, its group for split_groups where a dataset has no person or video ids (split_by=similarity): images
    whose difference hashes are at most near_bits apart share a group, and so, transitively, do their look-alikes."""
    hashes = np.array([difference_hash(image) for image in images], np.uint64)
    parent = np.arange(len(hashes))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in np.flatnonzero(np.bitwise_count(hashes[i + 1 :] ^ hashes[i]) <= near_bits) + i + 1:
            parent[root(j)] = root(i)
    return [f"look-alikes#{root(i)}" for i in range(len(hashes))]


def nested_subset(groups: Sequence[str], fraction: float, seed: int = 0) -> list[int]:
    """Indices (ascending) of about `fraction` of the samples, in whole groups (groups[i] is sample i's group). The
    groups are shuffled with `seed` whatever the fraction and taken in that order until the share is reached, so the
    subsets are nested: the 25 % one lies inside the 50 % one, and a learning curve compares like with like."""
    unique = sorted(set(groups))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    size, wanted, chosen, taken = Counter(groups), fraction * len(groups), set(), 0
    for group in order:
        if chosen and taken >= wanted - 1e-9:
            break
        chosen.add(group)
        taken += size[group]
    return [i for i, group in enumerate(groups) if group in chosen]


# The split a run trained with, one row per sample (kp.data.datamodule writes it into the run directory): a retrain
# on a project that grew reads it back (data.dataset.splits_from) so that no frame changes sides.
SPLITS_FILE = "splits.csv"


def read_recorded(path: str | Path) -> dict[str, str]:
    """sample -> split from a run's splits.csv (path: the file or the run directory that holds it)."""
    path = Path(path)
    if path.is_dir():
        path = path / SPLITS_FILE
    if not path.is_file():
        raise DataError(
            f"{path}: not found (data.dataset.splits_from: a run directory with {SPLITS_FILE}, or the file)"
        )
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows or rows[0] != ["split", "sample"]:
        raise DataError(f"{path}: not a kp {SPLITS_FILE} (its header should be split,sample)")
    recorded = {}
    for line, row in enumerate(rows[1:], 2):
        if len(row) != 2 or row[0] not in SPLITS:
            raise DataError(f"{path}:{line}: expected a split ({', '.join(SPLITS)}) and a sample, got {row}")
        if recorded.setdefault(row[1], row[0]) != row[0]:
            raise DataError(f"{path}:{line}: {row[1]} is recorded in both {recorded[row[1]]} and {row[0]}")
    return recorded


def write_recorded(path: Path, samples: Mapping[str, Sequence[str]]) -> None:
    """splits.csv: split, sample for every sample of every split (samples: split -> its samples' names)."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["split", "sample"])
        writer.writerows([split, name] for split in SPLITS for name in samples.get(split, []))


def recorded_split(
    names: Sequence[str], groups: Sequence[str], split: str, recorded: Mapping[str, str], what: str
) -> list[int]:
    """Indices (ascending) of the samples in `split` when the split is the recorded one: a recorded sample keeps its
    split; a new one goes where the recorded samples of its group went (a new frame of a held-out video, or a
    look-alike of a held-out frame, stays out of training; where its group holds several, the most held-out: test,
    then val), and to train where its group is new. So adding frames moves no frame to another split."""
    check_split(split)
    rank = {"train": 0, "val": 1, "test": 2}
    of_group: dict[str, str] = {}
    for name, group in zip(names, groups):
        if name in recorded and rank[recorded[name]] >= rank[of_group.get(group, "train")]:
            of_group[group] = recorded[name]
    indices = [
        i
        for i, (name, group) in enumerate(zip(names, groups))
        if recorded.get(name, of_group.get(group, "train")) == split
    ]
    if not indices:
        raise DataError(
            f"The {split} split of {what} is empty in the recorded split ({len(recorded)} recorded samples, "
            f"{sum(name in recorded for name in names)} of them in the data): check data.dataset.splits_from"
        )
    return indices


def describe_recorded(names: Sequence[str], recorded: Mapping[str, str], source: str) -> str:
    """One log line: how many samples kept their recorded split, how many are new and how many recorded are gone."""
    kept = sum(name in recorded for name in names)
    gone = len(recorded) - kept
    return (
        f"split as recorded in {source}: {kept} sample(s) keep their split, {len(names) - kept} new one(s) go to "
        f"train unless their video or look-alikes are held out"
        + (f"; {gone} recorded sample(s) are gone" if gone else "")
    )


def deal_or_reuse(
    names: Sequence[str],
    groups: Sequence[str],
    split: str,
    fractions: Mapping[str, float],
    seed: int,
    what: str,
    fractions_of: str = "groups",
    splits_from: str | None = None,
    log: logging.Logger | None = None,
) -> list[int]:
    """The indices of `split`'s samples: dealt by split_groups, or, where `splits_from` names a run (or its
    splits.csv), that run's recorded split kept (recorded_split; said once, for the training split, in `log`)."""
    if not splits_from:
        return split_groups(groups, split, fractions, seed, what, fractions_of=fractions_of)
    recorded = read_recorded(splits_from)
    if split == "train" and log:
        log.info("%s: %s", what, describe_recorded(names, recorded, splits_from))
    return recorded_split(names, groups, split, recorded, what)
