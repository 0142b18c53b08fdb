"""Pairs of keypoints by name: the left/right pairs a mirror swaps, guessed from the names or listed in the config
(`flip_pairs_from_names`, `resolve_pairs`, and `mirror_note`, the run's one log line about them), and skeleton edges
given by name."""

from __future__ import annotations

import re
from collections.abc import Sequence

# A side marker: left/right in any case anywhere (left_eye, LeftHand, leftear); an upper-case L or R that no capital
# precedes and no lower-case letter follows (L_Eye, eyeL, forelegR1, LHip, paw1LH_top: left hind); or a lone l/r
# (l_eye, paw_r1). "Lip", "Rump" and "tailBase" carry none.
_SIDE = re.compile(r"(?i:left|right)|(?<![A-Z])[LR](?![a-z])|(?<![A-Za-z])[lr](?![A-Za-z])")


def _mirror_name(name: str) -> tuple[str, str] | None:
    """(side "l" or "r", the name in lower case with its side marker(s) blanked), or None where the name carries no
    side, or two that disagree (left_to_right)."""
    sides = {match.group(0)[0].lower() for match in _SIDE.finditer(name)}
    if len(sides) != 1:
        return None
    return sides.pop(), _SIDE.sub("\0", name).lower()


def guess_flip_pairs(names: Sequence[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Pairs (i, j) of names that differ only by their side marker, case aside (left_eye/Right_Eye, L_Eye/R_Eye,
    eyeL/eyeR); then, among the names still alone, by their side marker and digits, where that match is unique
    (paw1LH_top/paw4RH_top, lightning-pose's numbered paws). Also returns the names that carry a side and found no
    partner: mirroring would keep such a point's label on the wrong side."""
    sided = {i: side_and_rest for i, name in enumerate(names) if (side_and_rest := _mirror_name(name))}
    pairs: list[tuple[int, int]] = []
    for rest_of in (lambda rest: rest, lambda rest: re.sub(r"\d+", "", rest)):
        alone = [i for i in sided if all(i not in pair for pair in pairs)]
        by_rest: dict[tuple[str, str], list[int]] = {}
        for i in alone:
            side, rest = sided[i]
            by_rest.setdefault((side, rest_of(rest)), []).append(i)
        for (side, rest), left in by_rest.items():
            right = by_rest.get(("r", rest), [])
            if side == "l" and len(left) == 1 and len(right) == 1:
                pairs.append(tuple(sorted((left[0], right[0]))))
    paired = {i for pair in pairs for i in pair}
    return sorted(pairs), [names[i] for i in sided if i not in paired]


def flip_pairs_from_names(names: Sequence[str]) -> list[tuple[int, int]] | None:
    """The left/right pairs guessed from the names (guess_flip_pairs); None (unknown, see KeypointMeta.flip_pairs)
    where none was found or a name with a side has no partner."""
    pairs, alone = guess_flip_pairs(names)
    return pairs if pairs and not alone else None


def mirror_note(names: Sequence[str], pairs: Sequence[tuple[int, int]] | None) -> str:
    """The one log line a run gives about mirroring: which pairs it swaps (and whether the names gave them), that
    none are needed, or that they are unknown, so mirror augmentation and flip test are off, and how to declare them."""
    declare = (
        "declare them with data.dataset.flip_pairs=[[left_x, right_x], ...], or data.dataset.flip_pairs=[] "
        "where no keypoint has a mirror partner"
    )
    if pairs is None:
        _, alone = guess_flip_pairs(names)
        why = f"no partner for {', '.join(alone)}" if alone else "none found among the names"
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        return (
            f"mirror augmentation and flip test are OFF: the left/right pairs of the keypoints ({shown}) are "
            f"unknown ({why}); {declare}"
        )
    if not pairs:
        return "flip pairs: none needed (flip_pairs: []): mirroring keeps every keypoint's label"
    source = "guessed from the names" if list(pairs) == flip_pairs_from_names(names) else "as listed"
    swapped = ", ".join(f"{names[i]}<->{names[j]}" for i, j in pairs)
    return (
        f"flip pairs {source}: {swapped} (mirror augmentation and flip test swap them; data.dataset.flip_pairs sets "
        "them)"
    )


def resolve_pairs(pairs: Sequence[Sequence], names: Sequence[str], what: str) -> list[tuple[int, int]]:
    """Config pairs given by keypoint name (or by 0-based index) -> index pairs."""
    index = {name: i for i, name in enumerate(names)}
    resolved = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"{what}: {list(pair)} is not a pair")
        ids = [p if isinstance(p, int) else index.get(p) for p in pair]
        if any(i is None or not 0 <= i < len(names) for i in ids):
            raise ValueError(f"{what}: {list(pair)} names an unknown keypoint; keypoints are {list(names)}")
        resolved.append(tuple(ids))
    return resolved
