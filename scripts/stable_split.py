"""How many old frames change split when frames are added to a project, dealt again and with the recorded split
(data.dataset.splits_from): `python scripts/stable_split.py [--frames 100 300 500 700 900]`.

A copy of ../shared/data/mirror_mouse (90 labelled frames, split_by=auto: groups of look-alike frames) is split and
its split recorded (splits.csv, as a training run writes it); the given frames of its session video are added to the
copy's CollectedData.csv (with the last row's labels: only their number matters here); the grown project is split
again, once dealt afresh and once from the record. Prints where the old test frames went.
"""

from __future__ import annotations

import argparse
import csv
import functools
import shutil
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.data.datamodule import KeypointDataModule  # noqa: E402
from kp.data.dlc import DeepLabCutProject  # noqa: E402
from kp.data.splits import SPLITS  # noqa: E402
from kp.data.video import read_frames  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mirror_mouse"


def splits(project: Path, **options) -> tuple[dict[str, str], KeypointDataModule]:
    """(frame -> split, the datamodule) of the project as data=dlc splits it (split_by=auto)."""
    dataset = functools.partial(
        DeepLabCutProject, project=str(project), width=48, height=32, csv_file="CollectedData.csv", **options
    )
    data = KeypointDataModule(dataset)
    data.setup()
    return {name: split for split in SPLITS for name, _ in data.splits[split].image_sources()}, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 300, 500, 700, 900])
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA}: absent (the real data lives in ../shared/data beside the checkout)")
    work = Path(tempfile.mkdtemp())
    project = work / "mirror_mouse"
    shutil.copytree(DATA, project, ignore=shutil.ignore_patterns("videos"))
    before, data = splits(project, split_by="auto")
    data.write_splits(work / "splits.csv")
    with open(project / "CollectedData.csv", newline="") as file:
        rows = list(csv.reader(file))
    (project / "labeled-data" / "test_vid").mkdir()
    for frame, image in read_frames(DATA / "videos" / "test_vid.mp4", sorted(args.frames)):
        name = f"labeled-data/test_vid/img{frame:05d}.png"
        cv2.imwrite(str(project / name), image[:, :, ::-1])
        rows.append([name, *rows[-1][1:]])
    with open(project / "CollectedData.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    old_test = {name for name, split in before.items() if split == "test"}
    print(f"{len(before)} frames, {len(old_test)} in test; {len(args.frames)} frames added")
    for how, options in [("dealt again", {}), ("splits_from", {"splits_from": str(work / "splits.csv")})]:
        after, _ = splits(project, split_by="auto", **options)
        moved = sum(after[name] != split for name, split in before.items())
        print(
            f"{how}: old test frames still in test {sum(after[n] == 'test' for n in old_test)}/{len(old_test)}, "
            f"now in train {sum(after[n] == 'train' for n in old_test)}; old frames that changed split "
            f"{moved}/{len(before)}"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
