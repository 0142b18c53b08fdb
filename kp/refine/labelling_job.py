"""A labelling job in DeepLabCut's layout, and its merge into the user's project.

The job folder (kp refine --out) is a small DeepLabCut project:
  config.yaml                                   scorer, bodyparts, skeleton (DeepLabCut's keys)
  labeled-data/<video>/img<frame>.png           the frames to label, as decoded
  labeled-data/<video>/CollectedData_kp.csv     the model's predictions as machine labels: three header rows
                                                (scorer, bodyparts, coords), then one row per frame indexed by its
                                                path (labeled-data/<video>/img<frame>.png, as kp predict --format dlc
                                                writes); a point scored below the threshold is left empty
  machine_labels.csv                            the model's labels as written (the same layout): merge compares
                                                each corrected frame with them, and leaves out a frame nobody
                                                changed
  labelstudio/tasks.json, labelstudio/config.xml  with --format labelstudio: the frames as Label Studio tasks, the
                                                model's points as scored pre-annotations, and the labelling config
                                                (kp.formats.labelstudio)
  refine.csv                                    per frame: video, frame, outlier score, why it was picked
  refine.json                                   the runs that predicted, to retrain from
  refine.png                                    the contact sheet
Open it in napari-deeplabcut (drag labeled-data/<video> in) or DeepLabCut's GUI, correct the points, save, then
`kp refine merge JOB PROJECT`; or import labelstudio/ into Label Studio, correct, export as JSON, then
`kp refine merge EXPORT.json PROJECT`. The project keeps a record of what was merged from which job:
kp_merges.csv beside its labels (time, job, image, reviewed or accepted unreviewed).
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import yaml

from kp.data.base import KeypointMeta
from kp.data.dlc import DeepLabCutProject
from kp.data.splits import SPLITS_FILE
from kp.errors import DataError
from kp.formats import dlc_config, dlc_csv, labelstudio

SCORER = "kp"  # the job's labels are the model's until someone corrects them
SAME = 0.01  # px: labels closer than this are the same label
MACHINE = "machine_labels.csv"  # the model's labels as the job was written, to tell reviewed frames from the rest
RECORD = "kp_merges.csv"  # in the project: which frames came from which job


@dataclass
class Pick:
    """One frame chosen for labelling."""

    video: Path
    frame: int
    image: np.ndarray  # H×W×3 RGB
    keypoints: np.ndarray  # K×2 pixels
    scores: np.ndarray  # K
    outlier: float  # the outlier score (kp.refine.score)
    reason: str

    @property
    def index(self) -> str:
        """The frame's path in the project: labeled-data/<video>/img<frame>.png."""
        return f"labeled-data/{self.video.stem}/{dlc_csv.frame_image(self.frame)}"


def write_job(
    out: Path, picks: list[Pick], meta: KeypointMeta, runs: list[str], threshold: float, formats: tuple[str, ...] = ()
) -> None:
    """The job folder (see the module's doc); formats: ("labelstudio",) adds Label Studio's tasks and config."""
    out.mkdir(parents=True, exist_ok=True)
    skeleton = [[meta.names[i], meta.names[j]] for i, j in meta.skeleton]
    dlc_config.write(out / "config.yaml", SCORER, meta.names, skeleton)
    machine = []
    for video in dict.fromkeys(pick.video.stem for pick in picks):
        rows = []
        for pick in (p for p in picks if p.video.stem == video):
            (out / pick.index).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / pick.index), cv2.cvtColor(pick.image, cv2.COLOR_RGB2BGR))
            rows.append([pick.index] + _cells(pick.keypoints, pick.scores >= threshold))
        dlc_csv.write(out / "labeled-data" / video / f"CollectedData_{SCORER}.csv", SCORER, meta.names, rows)
        machine += rows
    dlc_csv.write(out / MACHINE, SCORER, meta.names, machine)
    if "labelstudio" in formats:
        _write_labelstudio(out, picks, meta.names, threshold)
    with open(out / "refine.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["video", "frame", "image", "outlier_score", "reason"])
        writer.writerows([str(p.video), p.frame, p.index, f"{p.outlier:.3f}", p.reason] for p in picks)
    (out / "refine.json").write_text(json.dumps({"runs": runs, "bodyparts": list(meta.names)}, indent=1))


def _write_labelstudio(out: Path, picks: list[Pick], names: list[str], threshold: float) -> None:
    """labelstudio/: tasks.json and config.xml. Each image's URL is its path below the job's parent folder, which
    Label Studio serves as LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (docs/refine.md)."""
    (out / "labelstudio").mkdir(exist_ok=True)
    job = out.resolve()
    tasks = [
        labelstudio.Task(
            str(job),
            pick.index,
            f"{labelstudio.URL}{job.name}/{pick.index}",
            (pick.image.shape[1], pick.image.shape[0]),
            pick.keypoints,
            pick.scores >= threshold,
            pick.outlier,
        )
        for pick in picks
    ]
    labelstudio.write(out / "labelstudio" / "tasks.json", out / "labelstudio" / "config.xml", tasks, names)


def read_job(job: Path) -> DeepLabCutProject:
    """The job's frames through kp's DeepLabCut loader (all of them: one split)."""
    if not (job / "refine.json").is_file():
        raise DataError(f"{job}: not a kp refine job (no refine.json): give the folder kp refine --out wrote")
    return DeepLabCutProject(
        "train", str(job), split_by="frame", fractions={"train": 1.0, "val": 0.0, "test": 0.0}, flip_pairs=[]
    )


@dataclass
class Merged:
    added: int  # frames added to the project
    already: int  # frames already there with the same labels
    unreviewed: list[str]  # frames nobody changed, left out (or taken, with accept_unreviewed)
    retrain: str  # the command that retrains from the run


def merge(job: Path, project: Path, accept_unreviewed: bool = False) -> Merged:
    """Add the job's reviewed frames (images and labels) to `project`: a DeepLabCut project folder (config.yaml), a
    single-CSV folder (one CollectedData*.csv at its root) or that CSV file. job: the job folder (its labels
    corrected in napari-deeplabcut or DeepLabCut) or Label Studio's JSON export of its tasks. A frame whose labels are
    still the model's (machine_labels.csv) is left out unless accept_unreviewed; a job with no reviewed frame is
    refused. Existing rows are kept byte for byte; kp_merges.csv beside the labels records each frame's job."""
    export = job if job.suffix.lower() == ".json" else None
    job = labelstudio.job_of(export) if export else job
    frames = read_job(job)
    names = frames.meta.names
    machine = dlc_csv.labels_by_index(job / MACHINE)
    if not machine and not accept_unreviewed:
        raise DataError(
            f"{job / MACHINE}: not found (a job from an older kp), so reviewed frames cannot be told from the "
            "model's: merge with --accept-unreviewed to take every frame as it is"
        )
    corrected, unreviewed = _corrected(job, frames, export, machine)
    if not corrected:
        raise DataError(f"{job}: no labelled frame to merge ({'; '.join(frames.issues) or 'empty label files'})")
    if len(unreviewed) == len(corrected) and not accept_unreviewed:
        raise DataError(
            f"{export or job}: none of its {len(corrected)} frame(s) was changed from the model's labels (nobody "
            "reviewed them?): correct them first, or merge with --accept-unreviewed to take the model's labels"
        )
    root, label_file_of, parts, extra = _project(project)
    if sorted(parts) != sorted(names):
        raise DataError(
            f"{project}: body parts {parts} differ from the job's {names} (a model of another keypoint set)"
        )
    order = [names.index(part) for part in parts]
    new: dict[Path, list[list[str]]] = {}
    tables: dict[Path, dict] = {}
    already = 0
    for index, (keypoints, labelled) in corrected.items():
        if index in unreviewed and not accept_unreviewed:
            continue
        label_file = label_file_of(index)
        cells = _cells(keypoints[order], labelled[order])
        existing = tables.setdefault(label_file, dlc_csv.labels_by_index(label_file))
        if index in existing:
            if not _same(existing[index][1], cells):
                raise DataError(
                    f"{label_file}:{existing[index][0]}: {index} is already labelled, differently: rename the job's "
                    "frame or remove that row, then merge again"
                )
            already += 1
            continue
        target = root / index
        if target.exists() and target.read_bytes() != (job / index).read_bytes():
            raise DataError(f"{target}: another image with this name is already in the project; rename one of them")
        new.setdefault(label_file, []).append([index] + cells)
    if not new:
        raise DataError(f"{job}: already merged into {project} (all {already} frames are there with the same labels)")
    for label_file, rows in new.items():
        for row in rows:
            (root / row[0]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job / row[0], root / row[0])
        dlc_csv.append(label_file, SCORER, parts, rows)
    _record(root / RECORD, export or job, [row[0] for rows in new.values() for row in rows], unreviewed)
    return Merged(sum(len(rows) for rows in new.values()), already, unreviewed, _retrain_command(job, project, root))


def _corrected(
    job: Path, frames: DeepLabCutProject, export: Path | None, machine: dict[str, tuple[int, list[str]]]
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """(index -> (K×2 pixels, K labelled): the job's labels as corrected, from its label files or from Label Studio's
    export; the frames nobody changed). A frame is unchanged where its label row (or its submitted annotation) holds
    the machine labels' cells as written, before the loader's checks, or where nobody submitted its task."""
    labels = {f.image.relative_to(job).as_posix(): (f.keypoints, f.labelled) for f in frames.frames}
    if not machine:  # a job from an older kp: nothing tells a reviewed frame (merged only with accept_unreviewed)
        return labels, list(labels)
    if export is None:
        rows = {}
        for label_file in sorted(job.glob(f"labeled-data/*/CollectedData_{SCORER}.csv")):
            rows.update(dlc_csv.labels_by_index(label_file))
        same = [i for i in labels if i in machine and i in rows and _same(machine[i][1], rows[i][1])]
        return labels, same
    found = labelstudio.read_export(export, frames.meta.names)
    missing = sorted(set(found) - set(labels))
    if missing:
        raise DataError(f"{export}: task {missing[0]} is not a frame of the job {job}")
    same = [i for i, got in found.items() if got is None or i in machine and _same(machine[i][1], _cells(*got))]
    return {index: found[index] or labels[index] for index in found}, same


def _record(path: Path, job: Path, added: list[str], unreviewed: list[str]) -> None:
    """Append to the project's kp_merges.csv: when, which job, which frame, reviewed or taken unreviewed."""
    new = not path.is_file()
    with open(path, "a", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        if new:
            writer.writerow(["merged_at", "job", "image", "review"])
        when = datetime.now(UTC).isoformat(timespec="seconds")
        writer.writerows(
            [when, str(job.resolve()), index, "accepted unreviewed" if index in unreviewed else "reviewed"]
            for index in added
        )


def _project(project: Path):
    """(root folder, index -> its label file, the project's body parts in column order, data overrides)."""
    if (project / "config.yaml").is_file():
        scorer, parts, _ = dlc_config.read(project / "config.yaml")
        return project, lambda index: project / Path(index).parent / f"CollectedData_{scorer}.csv", parts, []
    label_file = project if project.is_file() else None
    if project.is_dir():
        found = sorted(path for path in project.glob("*.csv") if path.name != RECORD)
        if len(found) != 1:
            raise DataError(
                f"{project}: neither a DeepLabCut project (config.yaml) nor a folder with one label CSV "
                f"({len(found)} CSV files): give the label file itself"
            )
        label_file = found[0]
    if label_file is None:
        raise DataError(f"{project}: no such file or folder")
    parts = dlc_csv.bodyparts(label_file)
    return label_file.parent, lambda index: label_file, parts, [f"data.dataset.csv_file={label_file.name}"]


def _cells(keypoints: np.ndarray, labelled: np.ndarray) -> list[str]:
    """x, y cells as a label file holds them (empty where not labelled)."""
    return [f"{v:.2f}" if ok else "" for point, ok in zip(keypoints, labelled) for v in point]


def _same(a: list[str], b: list[str]) -> bool:
    """Two rows of x, y cells hold the same labels (empty where the other is empty, numbers within SAME px)."""
    return len(a) == len(b) and all(
        (x.strip() == "") == (y.strip() == "") and (not x.strip() or abs(float(x) - float(y)) < SAME)
        for x, y in zip(a, b)
    )


def _retrain_command(job: Path, project: Path, root: Path) -> str:
    """kp train with the first run's own overrides (its .hydra/overrides.yaml), the merged project, the run's weights
    as the start and, where the run recorded it (splits.csv), its split: every old frame stays on its side, the new
    ones go to training (kp.data.splits.recorded_split)."""
    run = Path(json.loads((job / "refine.json").read_text())["runs"][0])
    overrides_file = run / ".hydra" / "overrides.yaml"
    # the project and the start weights are new; where the run wrote is the run's own
    mine = ("data.dataset.project=", "data.dataset.csv_file=", "model.init_from=", "data=", "paths.", "hydra.")
    mine += ("data.dataset.splits_from=", "+data.dataset.splits_from=")  # either spelling a user gave
    kept = [
        o
        for o in (yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else [])
        if not o.startswith(mine)
    ]
    _, _, _, extra = _project(project)
    if (run / SPLITS_FILE).is_file():
        extra.append(f"data.dataset.splits_from={run}")
    return " ".join(
        ["kp train data=dlc", *kept, f"data.dataset.project={root.resolve()}", *extra, f"model.init_from={run}"]
    )
