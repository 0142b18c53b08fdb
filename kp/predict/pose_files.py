"""kp predict's pose files for the field's other tools (`--format dlc-poses / slp / nwb`), from the rows of
predictions.csv (kp.predict.writers.Writer.rows).

- dlc-poses: DeepLabCut's pose-estimation output, what `deeplabcut.analyze_videos` writes and analysis tools such as
  movement (`movement.io.load_poses.from_dlc_file`) read: one `<video>DLC_kp.csv` per video, three header rows
  (scorer, bodyparts, coords = x, y, likelihood; with --detect faces a fourth, individuals = face0, face1, ...), then
  one row per frame numbered from 0, so that row i is frame i (frames not predicted, --every or --start, stay empty).
  kp's score is the likelihood. Still images go into `images_DLC_kp.csv`, one row per image named by its path (the
  layout of DeepLabCut's analyze_time_lapse_frames).
- slp: a SLEAP labels file of predicted instances (kp's scores as point scores, their mean as the instance score),
  one video per input video and one image list for the still images: predictions.slp, written by sleap-io.
- nwb: the same predictions as NWB with the ndx-pose extension (PoseEstimation), written by sleap-io: predictions.nwb.
  An existing file is not overwritten (an NWB file often carries a session's other data), and still images have no
  place in it (sleap-io writes NWB predictions of videos): both are refused before predicting.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from kp.data.base import KeypointMeta
from kp.data.slp import sleap_io
from kp.errors import InputError
from kp.formats import dlc_csv

FORMATS = ("dlc-poses", "slp", "nwb")
SCORER = "kp"


def check_targets(out: Path, formats: tuple[str, ...], images: list) -> None:
    """Refuse, before predicting, what the formats cannot write: an existing NWB file, still images in NWB, either
    SLEAP format without sleap-io."""
    if "slp" in formats or "nwb" in formats:
        sleap_io()  # the extra it needs, before the run rather than after it
    if "nwb" not in formats:
        return
    target = out / "predictions.nwb"
    if target.exists():
        raise InputError(f"{target} exists: kp does not overwrite an NWB file: move it away or write to another --out")
    if images:
        raise InputError(
            f"--format nwb holds the predictions of videos, and {len(images)} still image(s) are among the inputs "
            f"(the first: {images[0]}): predict them without --format nwb"
        )


def write(rows: list[dict], meta: KeypointMeta, out: Path, formats: tuple[str, ...]) -> list[Path]:
    """The files of the requested pose formats; their paths."""
    written = []
    if "dlc-poses" in formats:
        written += write_dlc_poses(rows, meta.names, out)
    if "slp" in formats or "nwb" in formats:
        labels = to_labels(rows, meta)
        sio = sleap_io()
        if "slp" in formats:
            sio.save_slp(labels, str(out / "predictions.slp"))
            written.append(out / "predictions.slp")
        if "nwb" in formats:
            sio.save_nwb(labels, str(out / "predictions.nwb"), "predictions")
            written.append(out / "predictions.nwb")
    return written


def write_dlc_poses(rows: list[dict], names: list[str], out: Path) -> list[Path]:
    by_source = defaultdict(list)
    for row in rows:
        if row["keypoints"] is not None:
            by_source[row["file"] if row["frame"] is not None else None].append(row)
    face_numbers = [row["face"] for row in rows if row["face"] is not None]
    faces = max(face_numbers) + 1 if face_numbers else 0  # --detect faces: a column block per face
    written, used = [], set()
    for video, video_rows in by_source.items():
        stem = Path(video).stem if video else "images_"
        name = f"{stem}DLC_{SCORER}.csv"
        while name in used:  # two videos of one name in different folders
            stem += "_"
            name = f"{stem}DLC_{SCORER}.csv"
        used.add(name)
        written.append(_write_dlc_file(out / name, video_rows, names, faces, by_frame=video is not None))
    return written


def _write_dlc_file(path: Path, rows: list[dict], names: list[str], faces: int, by_frame: bool) -> Path:
    individuals = [f"face{i}" for i in range(faces)]
    width = 3 * len(names) * max(faces, 1)
    lines: dict = defaultdict(lambda: [""] * width)
    for row in rows:
        cells = lines[row["frame"] if by_frame else row["file"]]
        start = 3 * len(names) * (row["face"] or 0)
        for k, ((x, y), score) in enumerate(zip(row["keypoints"], row["scores"])):
            cells[start + 3 * k : start + 3 * k + 3] = [f"{x:.3f}", f"{y:.3f}", f"{score:.4f}"]
    keys = range(max(lines) + 1) if by_frame else list(lines)
    table = [[key, *lines[key]] if key in lines else [key] + [""] * width for key in keys]
    return dlc_csv.write(path, SCORER, names, table, coords=("x", "y", "likelihood"), individuals=individuals)


def to_labels(rows: list[dict], meta: KeypointMeta):
    """sleap_io.Labels of predicted instances: a video per input video, one image list for the still images."""
    sio = sleap_io()
    skeleton = sio.Skeleton(
        list(meta.names),
        edges=[(meta.names[i], meta.names[j]) for i, j in meta.skeleton],
        symmetries=[(meta.names[i], meta.names[j]) for i, j in meta.flip_pairs or []],
        name="kp",  # NWB needs a skeleton name
    )
    predicted = [row for row in rows if row["keypoints"] is not None]
    stills = {file: i for i, file in enumerate(dict.fromkeys(r["file"] for r in predicted if r["frame"] is None))}
    sources = dict.fromkeys(r["file"] for r in predicted if r["frame"] is not None)
    videos = {file: sio.Video.from_filename(file) for file in sources}
    if stills:
        videos[None] = sio.Video.from_filename(list(stills))
    frames = defaultdict(list)
    for row in predicted:
        key = (None, stills[row["file"]]) if row["frame"] is None else (row["file"], row["frame"])
        scores = np.asarray(row["scores"], np.float64)
        frames[key].append(
            sio.PredictedInstance.from_numpy(
                np.asarray(row["keypoints"], np.float64), skeleton=skeleton, point_scores=scores, score=scores.mean()
            )
        )
    labelled = [
        sio.LabeledFrame(video=videos[video], frame_idx=index, instances=instances)
        for (video, index), instances in frames.items()
    ]
    return sio.Labels(labeled_frames=labelled, videos=list(videos.values()), skeletons=[skeleton])
