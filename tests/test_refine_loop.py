"""The relabelling loop you can trust: kp refine merge takes reviewed frames only (a frame still holding the model's
labels is left out and named, --accept-unreviewed takes it) and records which job each came from; Label Studio's
tasks carry the model's points and the frame's outlier score, its export merges back, another config's export is
refused; and refine -> label -> merge -> retrain on a copy of mirror_mouse keeps the split."""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import kp.refine.refine as refine_module
from kp.cli.refine import main as main_refine
from kp.data.base import KeypointMeta
from kp.data.splits import read_recorded
from kp.errors import DataError
from kp.formats import dlc_csv, labelstudio
from kp.inference.predictor import Predictions, Predictor
from kp.refine.labelling_job import MACHINE, RECORD, Pick, merge, write_job
from kp.train.loop import train
from tests.helpers import compose_config, random_weights, shared_data
from tests.test_refine import NAMES, SIZE, DotModel, dlc_project, make_job, read_rows


def test_a_job_nobody_reviewed_is_refused_and_taken_only_when_asked(tmp_path, capsys):
    job = make_job(tmp_path, {3: [[10, 11], [5, 59]], 8: [[20, 21], [30, 31]]}, reviewed=False)
    project = dlc_project(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main_refine(["merge", str(job), str(project)])
    assert "none of its 2 frame(s) was changed from the model's labels" in str(exit.value)
    assert "\n" not in str(exit.value) and not (project / "labeled-data" / "clip").exists()
    assert not (project / RECORD).exists()
    main_refine(["merge", str(job), str(project), "--accept-unreviewed"])
    out = capsys.readouterr().out
    assert "merged 2 frame(s)" in out and "2 frame(s) nobody changed, merged as the model labelled them" in out
    record = read_rows(project / RECORD)
    assert record[0] == ["merged_at", "job", "image", "review"]
    assert [row[1:] for row in record[1:]] == [
        [str(job.resolve()), "labeled-data/clip/img00003.png", "accepted unreviewed"],
        [str(job.resolve()), "labeled-data/clip/img00008.png", "accepted unreviewed"],
    ]


def test_only_the_reviewed_frames_are_merged_and_the_others_named(tmp_path, capsys):
    job = make_job(tmp_path, {3: [[10, 11], [5, 59]], 8: [[20, 21], [30, 31]]}, reviewed=False)
    label_file = job / "labeled-data" / "clip" / "CollectedData_kp.csv"
    rows = read_rows(label_file)
    rows[3][1:3] = ["12.50", "11.00"]  # frame 3's nose moved by a person; frame 8 left as the model put it
    with open(label_file, "w", newline="") as file:
        csv.writer(file).writerows(rows)
    project = dlc_project(tmp_path)
    main_refine(["merge", str(job), str(project)])
    out = capsys.readouterr().out
    assert "merged 1 frame(s)" in out
    assert "1 frame(s) nobody changed, left out (--accept-unreviewed takes them): labeled-data/clip/img00008.png" in out
    merged = read_rows(project / "labeled-data" / "clip" / "CollectedData_me.csv")
    assert [row[0] for row in merged[3:]] == ["labeled-data/clip/img00003.png"] and merged[3][3:5] == ["12.50", "11.00"]
    assert [row[2:] for row in read_rows(project / RECORD)[1:]] == [["labeled-data/clip/img00003.png", "reviewed"]]
    assert (job / MACHINE).is_file()


def labelstudio_job(tmp_path, outliers=(4.0, 9.0)):
    picks = [
        Pick(
            tmp_path / "clip.mp4",
            frame,
            np.full((SIZE, SIZE + 16, 3), frame, np.uint8),  # 80 wide, 64 high
            np.array([[10.0 + frame, 11.0], [5.0, 59.0]]),
            np.array([0.9, 0.1]),  # the tail below the threshold: no pre-annotation
            outlier,
            "score 0.5",
        )
        for frame, outlier in zip((3, 8), outliers)
    ]
    job = tmp_path / "job"
    write_job(job, picks, DotModel.meta, [str(tmp_path / "run")], threshold=0.3, formats=("labelstudio",))
    return job


def test_labelstudio_tasks_carry_the_models_points_and_the_outlier_score(tmp_path):
    job = labelstudio_job(tmp_path)
    tasks = json.loads((job / "labelstudio" / "tasks.json").read_text())
    assert [t["data"]["kp_image"] for t in tasks] == [
        "labeled-data/clip/img00003.png",
        "labeled-data/clip/img00008.png",
    ]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=job/labeled-data/clip/img00003.png"
    assert tasks[0]["data"]["kp_job"] == str(job.resolve())
    assert [t["predictions"][0]["score"] for t in tasks] == [4.0, 9.0]
    (result,) = tasks[0]["predictions"][0]["result"]  # the tail scored 0.1 is left out
    assert result["type"] == "keypointlabels" and result["value"]["keypointlabels"] == ["nose"]
    assert (result["original_width"], result["original_height"]) == (80, 64)
    assert result["value"]["x"] == pytest.approx(13.5 / 80 * 100) and result["value"]["y"] == pytest.approx(
        11.5 / 64 * 100
    )
    config = ET.fromstring((job / "labelstudio" / "config.xml").read_text())
    labels = config.find("KeyPointLabels")
    assert labels.get("name") == result["from_name"] and labels.get("toName") == result["to_name"]
    assert [label.get("value") for label in labels] == NAMES
    assert config.find("Image").get("name") == "image" and config.find("Image").get("value") == "$image"


def export(job, tmp_path, moved: dict[int, dict], name="export.json"):
    """Label Studio's JSON export: task i annotated with its prediction's points moved by moved[i] (label -> dx in
    percent), the other tasks not annotated."""
    tasks = json.loads((job / "labelstudio" / "tasks.json").read_text())
    for i, task in enumerate(tasks):
        if i in moved:
            result = json.loads(json.dumps(task["predictions"][0]["result"]))
            for item in result:
                item["value"]["x"] += moved[i].get(item["value"]["keypointlabels"][0], 0)
            task["annotations"] = [{"id": 1, "result": result, "was_cancelled": False}]
        else:
            task["annotations"] = []
    (tmp_path / name).write_text(json.dumps(tasks))
    return tmp_path / name


def test_labelstudio_export_merges_the_reviewed_frames_back(tmp_path, capsys):
    job = labelstudio_job(tmp_path)
    project = dlc_project(tmp_path)
    with pytest.raises(SystemExit, match="none of its 2 frame"):  # exported before anyone labelled
        main_refine(["merge", str(export(job, tmp_path, {})), str(project)])
    with pytest.raises(SystemExit, match="none of its 2 frame"):  # submitted as predicted: not reviewed either
        main_refine(["merge", str(export(job, tmp_path, {0: {}, 1: {}})), str(project)])
    main_refine(["merge", str(export(job, tmp_path, {0: {"nose": 10.0}})), str(project)])  # 8 px to the right
    out = capsys.readouterr().out
    assert (
        "merged 1 frame(s)" in out
        and "left out (--accept-unreviewed takes them): labeled-data/clip/img00008.png" in out
    )
    rows = read_rows(project / "labeled-data" / "clip" / "CollectedData_me.csv")
    assert rows[3] == ["labeled-data/clip/img00003.png", "", "", "21.00", "11.00"]  # tail, nose: 13 + 8 px
    assert read_rows(project / RECORD)[1][1:] == [str((tmp_path / "export.json").resolve()), rows[3][0], "reviewed"]


def test_an_export_of_another_labelling_config_is_refused_in_one_line(tmp_path):
    job = labelstudio_job(tmp_path)
    path = export(job, tmp_path, {0: {"nose": 10.0}})
    tasks = json.loads(path.read_text())
    tasks[0]["annotations"][0]["result"][0]["value"]["keypointlabels"] = ["ear"]
    path.write_text(json.dumps(tasks))
    with pytest.raises(DataError) as error:
        merge(path, dlc_project(tmp_path))
    assert "export.json: labeled-data/clip/img00003.png: labelled with another labelling config" in str(error.value)
    assert "label 'ear'" in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "other.json").write_text(json.dumps([{"data": {"image": "x.png"}, "annotations": []}]))
    with pytest.raises(DataError, match="other.json: not a Label Studio export of kp refine's tasks"):
        merge(tmp_path / "other.json", dlc_project(tmp_path / "p"))


def test_labelstudio_percent_and_pixels_round_trip(tmp_path):
    names = ["a", "b"]
    task = labelstudio.Task(
        "/j",
        "labeled-data/v/img.png",
        "u",
        (396, 406),
        np.array([[0.0, 0.0], [395.0, 405.0]]),
        np.array([True, True]),
        1.0,
    )
    written = labelstudio._task(task, names)
    path = tmp_path / "export.json"
    path.write_text(json.dumps([{**written, "annotations": [{"result": written["predictions"][0]["result"]}]}]))
    keypoints, labelled = labelstudio.read_export(path, names)["labeled-data/v/img.png"]
    assert labelled.all() and np.allclose(keypoints, task.keypoints, atol=1e-3)


class BrightestPixel:
    """A stand-in for the trained model in kp refine: every body part near the frame's brightest pixel."""

    pose_priors: dict = {}  # no label-free PCA signal: refine ranks by the other signals
    pose_priors_absent: dict = {}
    pose_prior_errors = Predictor.pose_prior_errors  # kp's own, on the priors above

    def __init__(self, names):
        self.meta = KeypointMeta(names=names, flip_pairs=[], skeleton=[])

    def preprocess(self, image):
        return torch.from_numpy(image[..., 0].astype(np.float32)), np.eye(3)[:2]

    def predict_with_radius(self, images, affines=None, flip=False):
        width = images.shape[-1]
        flat = images.flatten(1).argmax(1).numpy()
        spot = np.stack([flat % width, flat // width], -1).astype(float)
        keypoints = spot[:, None] + np.arange(len(self.meta.names))[None, :, None]
        n, k = keypoints.shape[:2]
        return Predictions(keypoints, np.full((n, k), 0.9), np.full((n, k), np.nan))

    def predict_batch(self, images, affines=None, flip=False):
        return self.predict_with_radius(images, affines, flip)[:2]


QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "debug=fast_dev_run", "data.batch_size=4"]


@pytest.mark.slow
def test_refine_label_merge_retrain_on_a_copy_of_mirror_mouse_keeps_the_split(tmp_path, monkeypatch, capsys):
    source = shared_data("mirror_mouse")
    project = tmp_path / "mirror_mouse"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("videos"))
    run = tmp_path / "run"
    overrides = ["experiment=mirror_mouse", f"data.dataset.project={project}", "data.num_workers=0"]
    train(random_weights(compose_config(*overrides, *QUIET, output_dir=run)))
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    before = read_recorded(run)
    assert len(before) == 90 and sum(split == "test" for split in before.values()) >= 9

    names = dlc_csv.bodyparts(project / "CollectedData.csv")
    monkeypatch.setattr(refine_module, "load", lambda path: BrightestPixel(names))
    video = source / "videos" / "test_vid.mp4"
    job = tmp_path / "job"
    main_refine([str(run), str(video), "--every", "50", "--frames", "5", "--format", "labelstudio", "--out", str(job)])
    tasks = json.loads((job / "labelstudio" / "tasks.json").read_text())
    assert len(tasks) == 5 and [t["predictions"][0]["score"] for t in tasks] == sorted(
        (t["predictions"][0]["score"] for t in tasks), reverse=True
    )
    with pytest.raises(SystemExit, match="none of its 5 frame"):  # nobody labelled: refused, the project untouched
        main_refine(["merge", str(export(job, tmp_path, {})), str(project)])
    assert not (project / "labeled-data" / "test_vid").exists()

    capsys.readouterr()
    corrected = export(job, tmp_path, {i: {names[0]: 1.0} for i in range(5)})
    main_refine(["merge", str(corrected), str(project)])
    printed = capsys.readouterr().out
    assert "merged 5 frame(s)" in printed
    command = printed.split("retrain from the run:")[1].split()
    assert command[:2] == ["kp", "train"] and f"data.dataset.splits_from={run}" in command
    # fast_dev_run saved no weights to start from: the rest of the command as printed
    retrain = [arg for arg in command[2:] if not arg.startswith("model.init_from=")] + ["data.num_workers=0"]
    train(random_weights(compose_config(*retrain, *QUIET, output_dir=tmp_path / "retrain")))
    after = read_recorded(tmp_path / "retrain")
    assert {name: after[name] for name in before} == before  # every old frame on its side: the test set kept
    new = sorted(set(after) - set(before))
    assert len(new) == 5 and all(name.startswith("labeled-data/test_vid/") for name in new)
    assert {after[name] for name in new} == {"train"}


def test_a_job_without_machine_labels_merges_only_when_unreviewed_frames_are_accepted(tmp_path):
    job = make_job(tmp_path, {3: [[10, 11], [5, 59]]})
    (job / MACHINE).unlink()  # a job written by an older kp
    project = dlc_project(tmp_path)
    with pytest.raises(DataError, match="machine_labels.csv: not found \\(a job from an older kp\\)"):
        merge(job, project)
    done = merge(job, project, accept_unreviewed=True)
    assert (done.added, done.unreviewed) == (1, ["labeled-data/clip/img00003.png"])
    assert read_rows(project / RECORD)[1][2:] == ["labeled-data/clip/img00003.png", "accepted unreviewed"]
