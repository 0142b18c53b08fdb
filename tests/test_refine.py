"""kp refine: the outlier score finds an injected bad frame, the picker spreads its picks, the job is a DeepLabCut
project kp's loader reads, and merge adds frames once, keeps existing rows and refuses conflicting ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import kp.refine.refine as refine_module
from kp.cli.refine import main as main_refine
from kp.data.base import KeypointMeta
from kp.data.dlc import DeepLabCutProject
from kp.data.video import read_frames
from kp.errors import DataError
from kp.formats import dlc_csv
from kp.inference.predictor import Predictions, Predictor
from kp.refine.labelling_job import Pick, merge, read_job, write_job
from kp.refine.pick import pick
from kp.refine.score import FramePredictions, outlier_scores, robust_z, signals
from kp.unsupervised_losses import PosePCALoss, pca_keypoint_errors

NAMES = ["nose", "tail"]
SIZE = 64
BAD = 17  # the frame where the fake model jumps away


def test_the_picker_spreads_its_picks_over_different_frames():
    # 20 near-identical frames of one bad second score worst; 10 other frames, each different, score a little less
    rng = np.random.default_rng(0)
    same = np.tile(rng.normal(size=8), (20, 1)) + rng.normal(scale=1e-3, size=(20, 8))
    others = rng.normal(scale=3, size=(10, 8))
    scores = np.r_[np.full(20, 10.0) + rng.random(20), np.full(10, 5.0) + rng.random(10)]
    chosen = pick(scores, np.r_[same, others], 5)
    assert len(chosen) == len(set(chosen)) == 5
    assert (chosen < 20).sum() == 1  # one frame of the bad second, not five
    assert chosen[0] == np.argmax(scores[:20])  # and that one its worst, first
    assert list(pick(scores[:3], np.r_[same, others][:3], 5)) == [int(i) for i in np.argsort(-scores[:3])]
    with pytest.raises(ValueError, match="at least 1"):
        pick(scores, np.r_[same, others], 0)


def test_the_score_ranks_a_bad_frame_first_whatever_its_signal():
    n, k = 60, 2
    t = np.arange(n)
    keypoints = np.stack([np.stack([10 + t, 20 + 0.5 * t], -1), np.stack([40 - 0.3 * t, 30 + 0 * t], -1)], 1)
    rng = np.random.default_rng(1)
    keypoints = keypoints + rng.normal(scale=0.3, size=keypoints.shape)
    scores = 0.9 + rng.normal(scale=0.01, size=(n, k))
    radius = 3 + rng.normal(scale=0.1, size=(n, k))
    for frame, change in [(12, "jump"), (30, "score"), (45, "radius")]:
        data = FramePredictions(t, keypoints[None].copy(), scores[None].copy(), radius[None].copy())
        if change == "jump":
            data.keypoints[0, frame, 1] += 15  # one point leaves its track
        elif change == "score":
            data.scores[0, frame] = 0.2
        else:
            data.radius[0, frame] = 30
        found = signals(data)
        assert set(found) == {"jump", "score", "radius"}
        outlier, reasons = outlier_scores(found)
        assert np.argmax(outlier) == frame and reasons[frame].startswith(change)
    # the disagreement of runs (an ensemble) and of the mirrored image
    runs = np.stack([keypoints, keypoints + 0.1, keypoints - 0.1])
    runs[2, 50] += 12
    data = FramePredictions(t, runs, np.stack([scores] * 3), np.full((3, n, k), np.nan), flipped=runs + 0.2)
    found = signals(data, temporal=False)
    assert set(found) == {"score", "flip", "spread"}
    outlier, reasons = outlier_scores(found)
    assert np.argmax(outlier) == 50 and reasons[50].startswith("spread")
    assert np.allclose(robust_z(np.ones(5)), 0)


def test_the_pose_prior_signal_ranks_an_implausible_pose_first():
    # Two points moving together along a line (the labelled poses: a 1-D subspace); in frame 33 the tail is 9 px off
    # where the nose puts it. Images, not a video (no jump): the prior alone must find it.
    n, t = 60, np.arange(60)
    rng = np.random.default_rng(2)
    poses = np.stack([np.stack([10 + t, 20 + 0.5 * t], -1), np.stack([40 + t, 30 + 0.5 * t], -1)], 1).astype(float)
    prior = PosePCALoss().fit(NAMES, poses)
    assert prior.subspace.components.shape == (4, 1)
    seen = poses + rng.normal(scale=0.3, size=poses.shape)
    seen[33, 1] += [-4.0, 8.0]
    errors = pca_keypoint_errors(prior, seen)
    data = FramePredictions(
        t, seen[None], np.full((1, n, 2), 0.9), np.full((1, n, 2), np.nan), priors={"pose_pca": errors[None]}
    )
    found = signals(data, temporal=False)
    assert set(found) == {"score", "pose_pca"}
    np.testing.assert_allclose(found["pose_pca"], errors.mean(1))
    outlier, reasons = outlier_scores(found)
    assert np.argmax(outlier) == 33 and reasons[33].startswith("pose_pca")
    # a pose in the subspace has no signal to speak of: the rest are the noise's
    assert np.delete(found["pose_pca"], 33).max() < 1.0 < found["pose_pca"][33]


class DotModel:
    """A stand-in for a trained model: the nose is the brightest pixel, the tail a fixed point."""

    meta = KeypointMeta(names=NAMES, flip_pairs=[], skeleton=[(0, 1)])
    calibrations: dict = {}
    pose_priors: dict = {}  # none, unless a test gives it some
    pose_priors_absent: dict = {}
    pose_prior_errors = Predictor.pose_prior_errors  # kp's own, on the priors above

    def preprocess(self, image):
        return torch.from_numpy(image[..., 0].astype(np.float32)), np.eye(3)[:2]

    def predict_with_radius(self, images, affines=None, flip=False):
        flat = images.flatten(1).argmax(1).numpy()
        nose = np.stack([flat % SIZE, flat // SIZE], -1).astype(float)
        keypoints = np.stack([nose, np.tile([[5.0, SIZE - 5.0]], (len(nose), 1))], 1)
        return Predictions(keypoints, np.full((len(nose), 2), 0.9), np.full((len(nose), 2), np.nan))

    def predict_batch(self, images, affines=None, flip=False):
        return self.predict_with_radius(images, affines, flip)[:2]


def write_video(path, frames=40, bad=BAD):
    """A dot gliding across a grey frame; in frame `bad` (or each of the frames `bad`) a brighter speck far away
    fools the model."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE))
    for i in range(frames):
        image = np.full((SIZE, SIZE, 3), 60, np.uint8)
        cv2.circle(image, (8 + i, 20 + i // 2), 4, (200, 200, 200), -1)
        if i in np.atleast_1d(bad):
            cv2.circle(image, (SIZE - 8, SIZE - 8), 3, (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def dot_model(monkeypatch):
    monkeypatch.setattr(refine_module, "load", lambda run: DotModel())


def read_rows(path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_refine_picks_the_fooled_frame_and_writes_a_job_kp_reads(dot_model, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4")
    job = tmp_path / "job"
    main_refine(["run", str(video), "--frames", "4", "--flip", "--out", str(job)])
    why = read_rows(job / "refine.csv")
    assert why[0] == ["video", "frame", "image", "outlier_score", "reason"]
    assert len(why) == 5 and why[1][1] == str(BAD) and why[1][4].startswith("jump")
    assert len({row[1] for row in why[1:]}) == 4
    assert (job / "refine.png").is_file() and cv2.imread(str(job / "refine.png")).shape[1] == 4 * 320
    assert json.loads((job / "refine.json").read_text())["runs"] == [str(Path("run").resolve())]
    labels = read_rows(job / "labeled-data" / "clip" / "CollectedData_kp.csv")
    assert [row[0] for row in labels[:3]] == ["scorer", "bodyparts", "coords"]
    assert labels[1][1:] == ["nose", "nose", "tail", "tail"]
    # read back by kp's DeepLabCut loader: the frames as decoded, the model's points as labels
    frames = read_job(job)
    assert len(frames) == 4 and frames.meta.names == NAMES
    bad = next(f for f in frames.frames if f.image.name == f"img{BAD:05d}.png")
    assert np.allclose(bad.keypoints, [[SIZE - 8, SIZE - 8], [5, SIZE - 5]], atol=1.5) and bad.labelled.all()
    assert frames.load(0).image.shape[:2] == (256, 320)  # the loader's letterbox, the frame itself is 64×64
    assert cv2.imread(str(bad.image)).shape == (SIZE, SIZE, 3)
    assert "kp refine merge" in capsys.readouterr().err


def test_refine_picks_a_run_of_implausible_poses_by_the_pose_prior_where_the_jump_misses_it(
    monkeypatch, tmp_path, capsys
):
    # The model is fooled for 5 frames in a row: the running median of 7 follows a run that long (no jump to see),
    # but the nose and the tail then make a pose the labelled track never showed.
    model = DotModel()
    track = np.arange(40)
    poses = np.stack([np.stack([8 + track, 20 + track // 2], -1), np.tile([5.0, SIZE - 5.0], (40, 1))], 1)
    model.pose_priors = {"pose_pca": PosePCALoss().fit(NAMES, poses.astype(float))}
    model.pose_priors_absent = {"multiview_pca": "no views in the keypoint names"}
    monkeypatch.setattr(refine_module, "load", lambda run: model)
    fooled = list(range(20, 25))
    video = write_video(tmp_path / "clip.mp4", bad=fooled)
    main_refine(["run", str(video), "--frames", "1", "--out", str(tmp_path / "job")])
    why = read_rows(tmp_path / "job" / "refine.csv")
    assert int(why[1][1]) in fooled and why[1][4].startswith("pose_pca")
    assert "no multiview_pca signal: run: no views in the keypoint names" in capsys.readouterr().err
    model.pose_priors = {}  # without the prior, the jump alone misses the whole run
    main_refine(["run", str(video), "--frames", "3", "--out", str(tmp_path / "without")])
    assert not {int(row[1]) for row in read_rows(tmp_path / "without" / "refine.csv")[1:]} & set(fooled)


def test_refine_errors_are_one_line(dot_model, tmp_path, monkeypatch, capsys):
    other = DotModel()
    other.meta = KeypointMeta(names=["ear", "tail"], flip_pairs=[], skeleton=[])
    monkeypatch.setattr(refine_module, "load", lambda run: other if run == "other" else DotModel())
    cv2.imwrite(str(tmp_path / "still.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    empty = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE, SIZE)).release()
    for argv, message in [
        (["run", str(tmp_path / "missing.mp4")], "missing.mp4: no such file"),
        (["run", str(empty)], "empty.mp4"),
        (["run"], "needs a run and a video"),
        (
            ["--runs", "run", "other", "--videos", str(tmp_path / "clip.mp4")],
            "other: predicts ['ear', 'tail'], run predicts ['nose', 'tail']",
        ),
        (["run", str(tmp_path)], "still.png: kp refine picks frames of videos"),
    ]:
        with pytest.raises(SystemExit) as exit:
            main_refine([*argv, "--out", str(tmp_path / "job")])
        assert message in str(exit.value) and "\n" not in str(exit.value)
    for option, value in (("--frames", "0"), ("--threshold", "1.5")):  # refused by the parser, before anything runs
        with pytest.raises(SystemExit):
            main_refine(["run", str(tmp_path / "clip.mp4"), option, value])
        assert f"{option}: expected" in capsys.readouterr().err


def make_job(tmp_path, points, name="job", reviewed=True):
    """A job of frames 3 and 8 of clip.mp4 with the given nose, tail points (NaN: unlabelled): the model's labels
    where not reviewed; where reviewed, the model was 5 px off and a person set the points (the label file
    rewritten, as napari-deeplabcut saves it)."""
    picks = [
        Pick(
            tmp_path / "clip.mp4",
            frame,
            np.full((SIZE, SIZE, 3), frame, np.uint8),
            np.array(xy, float) + (5 if reviewed else 0),
            np.where(np.isnan(np.array(xy, float)[:, 0]), 0.0, 0.9),
            1.0,
            "score 0.5",
        )
        for frame, xy in points.items()
    ]
    job = tmp_path / name
    write_job(job, picks, DotModel.meta, [str(tmp_path / "run")], threshold=0.3)
    if reviewed:
        rows = [
            [p.index] + ["" if np.isnan(v) else f"{v:.2f}" for point in points[p.frame] for v in point] for p in picks
        ]
        dlc_csv.write(job / "labeled-data" / "clip" / "CollectedData_kp.csv", "kp", NAMES, rows)
    return job


def dlc_project(tmp_path, bodyparts=("tail", "nose")):
    """A DeepLabCut project (scorer me) with one labelled frame of another video, in DeepLabCut's three-column index."""
    project = tmp_path / "project"
    (project / "labeled-data" / "old").mkdir(parents=True)
    (project / "config.yaml").write_text(f"scorer: me\nbodyparts: {list(bodyparts)}\n")
    cv2.imwrite(str(project / "labeled-data" / "old" / "img1.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    rows = [
        ["scorer", "", "", "me", "me", "me", "me"],
        ["bodyparts", "", "", "tail", "tail", "nose", "nose"],
        ["coords", "", "", "x", "y", "x", "y"],
        ["labeled-data", "old", "img1.png", "1", "2", "3", "4"],
    ]
    (project / "labeled-data" / "old" / "CollectedData_me.csv").write_text("\n".join(map(",".join, rows)) + "\n")
    return project


def test_merge_adds_the_frames_once_and_keeps_the_project_as_it_was(tmp_path, capsys):
    job = make_job(tmp_path, {3: [[10, 11], [5, 59]], 8: [[20, 21], [np.nan, np.nan]]})
    project = dlc_project(tmp_path)
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    overrides = ["experiment=dlc", "data.dataset.project=/old", "trainer.max_epochs=8", "paths.output_dir=/old/run"]
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("\n".join(f"- {o}" for o in overrides))
    old = (project / "labeled-data" / "old" / "CollectedData_me.csv").read_text()
    main_refine(["merge", str(job), str(project)])
    printed = capsys.readouterr().out
    assert "merged 2 frame(s)" in printed and f"model.init_from={tmp_path / 'run'}" in printed
    assert f"kp train data=dlc experiment=dlc trainer.max_epochs=8 data.dataset.project={project} " in printed
    assert "/old" not in printed
    assert (project / "labeled-data" / "old" / "CollectedData_me.csv").read_text() == old
    rows = read_rows(project / "labeled-data" / "clip" / "CollectedData_me.csv")
    assert rows[1][1:] == ["tail", "tail", "nose", "nose"]  # the project's column order, the project's scorer
    assert rows[3:] == [
        ["labeled-data/clip/img00003.png", "5.00", "59.00", "10.00", "11.00"],
        ["labeled-data/clip/img00008.png", "", "", "20.00", "21.00"],
    ]
    merged = DeepLabCutProject("train", str(project), split_by="frame", fractions={"train": 1, "val": 0, "test": 0})
    assert sorted(f.image.name for f in merged.frames) == ["img00003.png", "img00008.png", "img1.png"]
    # merged twice: refused, and nothing changes
    before = (project / "labeled-data" / "clip" / "CollectedData_me.csv").read_text()
    with pytest.raises(SystemExit, match="already merged into"):
        main_refine(["merge", str(job), str(project)])
    assert (project / "labeled-data" / "clip" / "CollectedData_me.csv").read_text() == before
    # a job with one of those frames labelled otherwise, and a new one: refused, naming the frame, nothing written
    other = make_job(tmp_path, {3: [[12, 11], [5, 59]], 9: [[1, 1], [2, 2]]}, name="other")
    with pytest.raises(DataError, match=r"CollectedData_me.csv:4: labeled-data/clip/img00003.png is already labelled"):
        merge(other, project)
    assert not (project / "labeled-data" / "clip" / "img00009.png").exists()
    # the same frame with the same labels plus a new one: the new one only
    again = make_job(tmp_path, {3: [[10, 11], [5, 59]], 9: [[1, 1], [2, 2]]}, name="again")
    done = merge(again, project)
    assert (done.added, done.already, done.unreviewed) == (1, 1, [])


def test_merge_into_a_single_csv_project_and_of_another_keypoint_set(tmp_path):
    job = make_job(tmp_path, {3: [[10, 11], [5, 59]]})
    project = dlc_project(tmp_path)
    single = tmp_path / "single"
    single.mkdir()
    rows = read_rows(project / "labeled-data" / "old" / "CollectedData_me.csv")
    with open(single / "CollectedData.csv", "w", newline="") as file:
        csv.writer(file).writerows([[r[0], *r[3:]] for r in rows[:3]] + [["labeled-data/img1.png", "1", "2", "3", "4"]])
    done = merge(job, single)
    assert (done.added, done.already) == (1, 0) and "data.dataset.csv_file=CollectedData.csv" in done.retrain
    assert read_rows(single / "CollectedData.csv")[-1] == [
        "labeled-data/clip/img00003.png",
        "5.00",
        "59.00",
        "10.00",
        "11.00",
    ]
    assert (single / "labeled-data" / "clip" / "img00003.png").is_file()
    with pytest.raises(DataError, match="differ from the job's"):
        merge(job, dlc_project(tmp_path / "x", bodyparts=("ear", "nose")))
    with pytest.raises(DataError, match="not a kp refine job"):
        merge(single, project)


def test_frames_of_several_videos_are_written_as_read(dot_model, tmp_path):
    first, second = write_video(tmp_path / "a.mp4", 40, bad=None), write_video(tmp_path / "b.mp4", 30)
    main_refine(["--runs", "run", "--videos", str(first), str(second), "--frames", "6", "--out", str(tmp_path / "job")])
    rows = read_rows(tmp_path / "job" / "refine.csv")[1:]
    assert len(rows) == 6 and (Path(rows[0][0]).name, rows[0][1]) == ("b.mp4", str(BAD))
    for video, frame, image, _, _ in rows:
        assert image == f"labeled-data/{Path(video).stem}/img{int(frame):05d}.png"
        written = cv2.cvtColor(cv2.imread(str(tmp_path / "job" / image)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(written, dict(read_frames(Path(video), [int(frame)]))[int(frame)])


def test_a_frame_that_cannot_be_decoded_is_counted_and_said_never_picked(dot_model, tmp_path, monkeypatch, capsys):
    from kp.inference import sources

    def losing_frame_7(path, wanted):  # the one reader's contract: an undecodable frame comes back as None
        for frame, image in read_frames(path, wanted):
            yield frame, None if frame == 7 else image

    monkeypatch.setattr(sources, "read_frames", losing_frame_7)
    main_refine(["run", str(write_video(tmp_path / "clip.mp4")), "--frames", "4", "--out", str(tmp_path / "job")])
    assert "clip.mp4: 1 frame(s) cannot be decoded, left out: 7" in " ".join(capsys.readouterr().err.split())
    assert "7" not in [row[1] for row in read_rows(tmp_path / "job" / "refine.csv")[1:]]
