"""kp predict --each-video: a folder per video, a summary table, finished videos skipped on a rerun, a stopped one
resumed, an unreadable one skipped and counted while the rest are done."""

from __future__ import annotations

import csv
import json

import pytest

import kp.predict.predict as predict_module
from kp.cli.predict import main as main_predict
from kp.errors import InputError
from kp.predict.predict import VIDEO_SUMMARY, predict_videos
from tests.test_refine import DotModel, write_video


class Model(DotModel):
    def check_flip(self, flip):
        pass

    def radius_hint(self, flip):
        return "a stand-in model has no calibration"


@pytest.fixture
def videos(tmp_path, monkeypatch):
    monkeypatch.setattr(predict_module, "load", lambda model: Model())
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", frames=12)
    write_video(folder / "b.mp4", frames=8, bad=None)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_each_video_gets_its_folder_and_a_row_of_the_table(videos, tmp_path, capsys):
    out = tmp_path / "out"
    table = predict_videos("run", [str(videos)], out, overlays=False, workers=0, threshold=0.95)
    assert [(row["video"], row["frames"], row["status"]) for row in table] == [
        (str(videos / "a.mp4"), 12, "predicted"),
        (str(videos / "b.mp4"), 8, "predicted"),
    ]
    assert len(rows(out / "a" / "predictions.csv")) == 12 and len(rows(out / "b" / "predictions.csv")) == 8
    assert {row["file"] for row in rows(out / "b" / "predictions.csv")} == {str(videos / "b.mp4")}
    assert table[0]["mean_score"] == pytest.approx(0.9) and table[0]["below_threshold"] == 1.0  # 0.9 < 0.95
    assert table[0]["frames_per_s"] > 0 and json.loads((out / "a" / VIDEO_SUMMARY).read_text())["frames"] == 12
    err = capsys.readouterr().err
    assert "2 video(s) done, 1 skipped" in err and "broken.mp4" in err and not (out / "broken").exists()

    # a rerun predicts nothing finished again; a job that stopped is resumed
    before = (out / "a" / "predictions.csv").stat().st_mtime_ns
    (out / "b" / VIDEO_SUMMARY).unlink()
    lines = (out / "b" / "predictions.csv").read_text().splitlines(keepends=True)
    (out / "b" / "predictions.csv").write_text("".join(lines[:4]))  # the header and 3 frames
    table = predict_videos("run", [str(videos)], out, overlays=False, workers=0)
    assert [(row["frames"], row["status"]) for row in table] == [(12, "done before"), (8, "predicted")]
    assert (out / "a" / "predictions.csv").stat().st_mtime_ns == before
    assert [int(row["frame"]) for row in rows(out / "b" / "predictions.csv")] == list(range(8))


def test_each_video_from_the_command_line_and_its_refusals(videos, tmp_path, capsys):
    main_predict(
        ["run", str(videos / "a.mp4"), "--each-video", "--no-overlays", "--workers", "0", "--out", str(tmp_path / "o")]
    )
    assert (tmp_path / "o" / "a" / VIDEO_SUMMARY).is_file()
    (videos / "still.png").write_bytes((videos / "a.mp4").read_bytes()[:10])
    with pytest.raises(InputError, match="still.png: --each-video predicts videos"):
        predict_videos("run", [str(videos)], tmp_path / "o")
    (videos / "still.png").unlink()
    (videos / "more").mkdir()
    write_video(videos / "more" / "a.mp4", frames=3)
    with pytest.raises(InputError, match="two videos are named a"):
        predict_videos("run", [str(videos)], tmp_path / "o")
