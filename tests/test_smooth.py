"""kp.trajectories: prediction CSVs read as tracks, smoothed (Kalman + RTS, Savitzky–Golay, median) and written back,
on synthetic tracks whose truth is known."""

import csv
import math

import cv2
import numpy as np
import pytest

from kp.cli.smooth import main as main_smooth
from kp.errors import DataError
from kp.trajectories import Tracks, kalman, read_tracks, smooth, write_tracks
from kp.trajectories.smooth import VELOCITY_SD, rts_smoother
from kp.trajectories.smooth_csv import smooth_file
from kp.trajectories.tracks import Layout
from kp.viz.trajectory import plot_track
from tests.helpers import shared_data

FACTOR = math.sqrt(-2 * math.log(0.1))  # radius / σ of a 2-D Gaussian at alpha = 0.1
SIGMA = 2.0  # px, the synthetic measurement noise per coordinate


def wave(n=300, period=200.0, amplitude=50.0, phase=0.0):
    """A smooth N×1×2 track: x and y on slow sines."""
    t = np.arange(n)
    return np.stack(
        [
            200 + amplitude * np.sin(2 * np.pi * t / period + phase),
            150 + 0.6 * amplitude * np.cos(2 * np.pi * t / (0.8 * period) + phase),
        ],
        -1,
    )[:, None]


def noisy(truth, seed=0, sigma=SIGMA):
    """Tracks of truth (N×K×2) plus Gaussian noise, with the matching calibrated radius and score 0.9."""
    n, k = truth.shape[:2]
    xy = truth + np.random.default_rng(seed).normal(0, sigma, truth.shape)
    return Tracks(
        np.arange(n),
        [f"p{i}" for i in range(k)],
        xy,
        np.full((n, k), 0.9),
        np.full((n, k), sigma * FACTOR),
        np.full(n, "clip.mp4", dtype=object),
        Layout("kp", [], [], [], [], [], []),
    )


def rmse(xy, truth, rows=slice(None)):
    return float(np.sqrt(np.mean((xy[rows] - truth[rows]) ** 2)))


def test_constant_velocity_track_is_recovered_within_its_noise():
    t = np.arange(200)
    truth = np.stack([100 + 0.5 * t, 50 - 0.3 * t], -1)[:, None]
    tracks = noisy(truth)
    smoothed, report = smooth(tracks)
    assert rmse(smoothed.xy, truth) < rmse(tracks.xy, truth) / 4
    assert rmse(smoothed.xy, truth) < SIGMA / 4
    assert report[0].jump_after < report[0].jump_before
    # The posterior radius is far smaller than the per-frame one, and still covers the truth mostly.
    error = np.linalg.norm(smoothed.xy - truth, axis=-1)
    assert np.median(smoothed.radius) < SIGMA * FACTOR / 2 and (error <= smoothed.radius).mean() > 0.8


def test_missing_stretch_is_filled_close_to_the_truth():
    truth = wave()
    tracks = noisy(truth)
    gap = slice(140, 160)
    tracks.score[gap] = 0.1  # below the threshold: its positions (garbage here) are not used
    tracks.xy[gap] += 100
    tracks.xy[170:175] = np.nan  # not predicted at all
    smoothed, report = smooth(tracks)
    assert report[0].filled == 25
    assert np.abs(smoothed.xy[gap] - truth[gap]).max() < 3 * SIGMA
    assert np.abs(smoothed.xy[170:175] - truth[170:175]).max() < 3 * SIGMA
    for method in ("savgol", "median"):
        filled, _ = smooth(tracks, method)
        assert np.abs(filled.xy[gap] - truth[gap]).max() < 4 * SIGMA


def test_nothing_is_extrapolated_past_the_confident_frames():
    tracks = noisy(wave(100))
    tracks.score[:10] = tracks.score[-5:] = 0.0
    for method in ("kalman", "savgol", "median"):
        smoothed, _ = smooth(tracks, method)
        assert np.isnan(smoothed.xy[:10]).all() and np.isnan(smoothed.xy[-5:]).all()
        assert np.isfinite(smoothed.xy[10:-5]).all()


def test_wrong_frame_with_a_large_radius_is_discounted():
    truth = wave()
    errors = {}
    for radius in (SIGMA * FACTOR, 200.0):
        tracks = noisy(truth)
        tracks.xy[150] += (80, -60)
        tracks.radius[150] = radius
        smoothed, _ = smooth(tracks)
        errors[radius] = np.linalg.norm(smoothed.xy[150] - truth[150])
    assert errors[200.0] < 2 * SIGMA
    assert errors[200.0] < errors[SIGMA * FACTOR] / 3  # the radius is what discounts it


def test_kalman_beats_median_and_savgol_on_a_smooth_track_with_outliers():
    truth = wave(400)
    tracks = noisy(truth, seed=1)
    rng = np.random.default_rng(2)
    wrong = rng.choice(400, 20, replace=False)
    tracks.xy[wrong] += rng.choice([-1, 1], (20, 1, 2)) * rng.uniform(20, 60, (20, 1, 2))
    tracks.radius[wrong] = 80.0  # a calibrated model gives a bad prediction a large radius
    errors = {method: rmse(smooth(tracks, method)[0].xy, truth) for method in ("kalman", "savgol", "median")}
    assert errors["kalman"] < SIGMA / 2
    assert errors["kalman"] < errors["median"] / 2 and errors["kalman"] < errors["savgol"] / 2


def test_fitted_process_noise_is_larger_for_a_jerkier_track():
    truth = np.concatenate([wave(300, period=200), wave(300, period=25)], axis=1)
    fit = kalman(noisy(truth))
    smooth_q, jerky_q = fit.process_noise["clip.mp4"]
    assert jerky_q > 100 * smooth_q
    # Without a radius the measurement noise is fitted too, near the truth.
    tracks = noisy(truth)
    tracks.radius[:] = np.nan
    fit = kalman(tracks)
    assert fit.process_noise["clip.mp4"][1] > 100 * fit.process_noise["clip.mp4"][0]
    assert 0.5 * SIGMA < fit.noise["clip.mp4"][0] < 1.5 * SIGMA
    assert rmse(fit.xy, truth) < rmse(tracks.xy, truth)


def test_smoother_equals_the_exact_gaussian_posterior():
    """RTS against the posterior of the whole track solved at once (states x_t of one coordinate, flat prior on the
    first position, the velocity prior the filter starts with), with gaps in the frame numbers and missing frames."""
    rng = np.random.default_rng(3)
    frames = np.array([0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 14, 15])
    n, q = len(frames), 0.7
    ok = np.ones(n, bool)
    ok[[4, 5, 9]] = False
    z = rng.normal(0, 5, (n, 1, 2))
    r = rng.uniform(0.5, 4, n)
    precision, b = np.zeros((2 * n, 2 * n)), np.zeros(2 * n)
    for t in range(n - 1):
        dt = frames[t + 1] - frames[t]
        step = np.zeros((2, 2 * n))
        step[:, 2 * t : 2 * t + 2] = -np.array([[1, dt], [0, 1]])
        step[:, 2 * t + 2 : 2 * t + 4] = np.eye(2)
        noise = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        precision += step.T @ np.linalg.inv(noise) @ step
    precision[1, 1] += 1 / VELOCITY_SD**2
    for t in np.flatnonzero(ok):
        precision[2 * t, 2 * t] += 1 / r[t]
        b[2 * t] += z[t, 0, 0] / r[t]
    mean, cov = np.linalg.solve(precision, b), np.linalg.inv(precision)
    positions, variances = rts_smoother(
        z, ok[:, None], r[:, None], np.ones((1, 1)), np.full((1, 1), q), np.diff(frames).astype(float)
    )
    np.testing.assert_allclose(positions[:, 0, 0], mean[::2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(variances[:, 0], np.diag(cov)[::2], rtol=1e-6)


def write_predictions(path, videos, names=("nose", "tail"), faces=False, spread=None, radius=SIGMA * FACTOR):
    """A predictions.csv as kp predict's Writer lays it out; videos: {file: N×K×2 positions}. Every 10th frame of
    the tail scores 0.1; the first video's row 5 has no radius for the nose. spread: {file: N×K ens_var}, an
    ensemble's CSV (its <keypoint>_ens_var columns after the usual ones); radius None: no radius at all."""
    header = ["file", "frame"] + (["face", "box_x", "box_y", "box_w", "box_h"] if faces else []) + ["status"]
    header += [f"{name}_{column}" for name in names for column in ("x", "y", "score", "radius")]
    header += [f"{name}_ens_var" for name in names] if spread else []
    rows = []
    for v, (file, xy) in enumerate(videos.items()):
        for frame, points in enumerate(xy):
            row = [file, frame] + ([0, 1, 2, 30, 40] if faces else []) + ["ok"]
            for k, (x, y) in enumerate(points):
                score = 0.1 if k == 1 and frame % 10 == 0 else 0.9
                r = "" if (v, frame, k) == (0, 5, 0) or radius is None else f"{radius:.3f}"
                row += [f"{x:.3f}", f"{y:.3f}", f"{score:.4f}", r]
            rows.append(row + ([f"{value:.3f}" for value in spread[file][frame]] if spread else []))
    if faces:
        rows.append([file, len(xy), "", "", "", "", "", "no face"] + [""] * (4 + bool(spread)) * len(names))
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([header] + rows)


@pytest.mark.parametrize("faces, ensemble", [(False, False), (True, False), (False, True), (True, True)])
def test_predictions_csv_round_trip(tmp_path, faces, ensemble):
    a, b = noisy(np.concatenate([wave(60), wave(60) + 20], 1)).xy, noisy(np.concatenate([wave(40)] * 2, 1), 1).xy + 300
    rng = np.random.default_rng(5)
    spread = {"a.mp4": rng.uniform(1, 20, (60, 2)), "b.mp4": rng.uniform(1, 20, (40, 2))} if ensemble else None
    write_predictions(tmp_path / "predictions.csv", {"a.mp4": a, "b.mp4": b}, faces=faces, spread=spread)
    tracks = read_tracks(tmp_path / "predictions.csv")
    if ensemble:
        np.testing.assert_allclose(tracks.ens_var[:100], np.concatenate(list(spread.values())), atol=1e-3)
        assert not faces or np.isnan(tracks.ens_var[100]).all()  # the "no face" row has no spread
    else:
        assert tracks.ens_var is None
    assert tracks.names == ["nose", "tail"] and len(tracks.frames) == 100 + faces
    assert [(track, len(rows)) for track, rows in tracks.track_rows()][:2] == [
        ("a.mp4" + "#face0" * faces, 60),
        ("b.mp4" + "#face0" * faces, 40),
    ]
    assert np.isnan(tracks.radius[5, 0]) and tracks.score[10, 1] == pytest.approx(0.1)
    smoothed, report = smooth(tracks)
    assert [r.filled for r in report[:4]] == [0, 5, 0, 3]  # frame 0 of each video is before the first confident one
    # Tracks are smoothed apart: b's nose starts where b is, not pulled towards a.
    assert np.abs(smoothed.xy[60, 0] - b[0, 0]).max() < 4 * SIGMA
    write_tracks(smoothed, tmp_path / "smoothed.csv", like=tmp_path / "predictions.csv")
    with open(tmp_path / "predictions.csv") as before, open(tmp_path / "smoothed.csv") as after:
        before, after = list(csv.reader(before)), list(csv.reader(after))
    assert after[0] == before[0] and len(after) == len(before)
    header = before[0]
    for name in header:
        column = header.index(name)
        same = [row[column] for row in before] == [row[column] for row in after]
        assert same == (
            name in ("file", "frame", "face", "status")
            or name.startswith("box_")
            or name.endswith("_score")
            or name.endswith("_ens_var")  # the members' spread stays as read, as the score does
        ), name
    back = read_tracks(tmp_path / "smoothed.csv")
    np.testing.assert_allclose(back.xy, smoothed.xy, atol=1e-3)
    np.testing.assert_array_equal(back.score, tracks.score)
    np.testing.assert_array_equal(back.ens_var, tracks.ens_var)
    if faces:
        assert after[-1] == before[-1]  # the "no face" row stays empty


def test_deeplabcut_analysis_csv(tmp_path):
    truth = np.concatenate([wave(80), wave(80, phase=1)], 1)
    xy = noisy(truth).xy
    likelihood = np.full((80, 2), 0.95)
    likelihood[30:35, 1] = 0.01
    path = tmp_path / "videoDLC_resnet50_shuffle1_1000.csv"
    rows = [
        ["scorer"] + ["DLC_resnet50"] * 6,
        ["bodyparts"] + ["snout"] * 3 + ["tail base"] * 3,
        ["coords"] + ["x", "y", "likelihood"] * 2,
    ]
    rows += [[str(i)] + [f"{v}" for k in range(2) for v in (*xy[i, k], likelihood[i, k])] for i in range(80)]
    with open(path, "w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)
    tracks = read_tracks(path)
    assert tracks.names == ["snout", "tail base"] and tracks.layout.format == "dlc"
    np.testing.assert_array_equal(tracks.frames, np.arange(80))
    np.testing.assert_allclose(tracks.score, likelihood)
    assert np.isnan(tracks.radius).all()
    smoothed, report = smooth(tracks)  # no radius: the noise is fitted
    assert report[1].filled == 5
    assert rmse(smoothed.xy, truth) < rmse(xy, truth)
    write_tracks(smoothed, tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text()
    assert "\r" not in text
    out = list(csv.reader(text.splitlines()))
    assert out[:3] == rows[:3] and [row[3] for row in out] == [row[3] for row in rows]  # likelihood unchanged


def test_deeplabcut_labelled_data_with_a_three_column_index(tmp_path):
    path = tmp_path / "CollectedData_Ann.csv"
    rows = [
        ["scorer", "", "", "Ann", "Ann", "Ann", "Ann"],
        ["bodyparts", "", "", "paw", "paw", "nose", "nose"],
        ["coords", "", "", "x", "y", "x", "y"],
    ]
    rows += [
        ["labeled-data", "mouse1", f"img{i:03d}.png", f"{10 + i}", f"{20 + i}"]
        + (["", ""] if i == 7 else [f"{5 + i}", "9"])
        for i in (3, 7, 12, 20)
    ]
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows(rows)
    tracks = read_tracks(path)
    assert tracks.names == ["paw", "nose"] and tracks.frames.tolist() == [3, 7, 12, 20]
    assert set(tracks.groups) == {"labeled-data/mouse1/"}
    np.testing.assert_array_equal(tracks.score, [[1, 1], [1, np.nan], [1, 1], [1, 1]])
    smoothed, _ = smooth(tracks, "median", window=3)
    assert np.isfinite(smoothed.xy).all()  # frame 7's nose is interpolated


def test_reads_the_reaching_demo_labels():
    path = shared_data("dlc_reaching") / "labeled-data/reachingvideo1/CollectedData_Mackenzie.csv"
    tracks = read_tracks(path)
    assert tracks.names == ["Hand", "Finger1", "Tongue", "Joystick1", "Joystick2"] and len(tracks.frames) == 55
    assert tracks.frames[0] == 5 and np.isnan(tracks.score).any()


@pytest.mark.parametrize(
    "method, options, message",
    [
        ("spline", {}, "unknown smoothing method 'spline'"),
        ("median", {"window": 4}, "window must be an odd whole number"),
        ("savgol", {"window": 1}, "window must be an odd whole number"),
        ("median", {"window": 5.0}, "window must be an odd whole number"),
        ("savgol", {"window": 5, "polyorder": 5}, "polyorder must be"),
        ("kalman", {"threshold": 1.5}, "threshold must be between 0 and 1"),
        ("median", {"threshold": -0.1}, "threshold must be between 0 and 1"),
        ("kalman", {"alpha": 1.0}, "alpha must be between 0 and 1"),
        ("kalman", {"window": 5}, "kalman has no option 'window'"),
    ],
)
def test_bad_options_raise_one_line(method, options, message):
    with pytest.raises(ValueError, match=message) as error:
        smooth(noisy(wave(20)), method, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "cannot read"),
        ("a,b\n1,2\n", "whose first row is .a, b.: not a layout kp smooth reads; expected a kp predict CSV"),
        ("scorer,A,A\nindividuals,m1,m1\nbodyparts,p,p\ncoords,x,y\n0,1,2\n", "multi-animal"),
        ("file,frame,status,p_x,p_y,p_score\nv.mp4,0,ok,1,2\n", "5 columns, the header has 6"),
        ("file,frame,status,p_x,p_y,p_score\nv.mp4,0,ok,1,abc,0.9\n", "p y 'abc' is not a number"),
        ("file,frame,status,p_x,p_y,p_score,q_x,q_y,q_score,p_ens_var\n", "has p_ens_var but no q_ens_var column"),
        ("file,frame,status,p_x,p_y,p_score,p_ens_var\nv.mp4,0,ok,1,2,0.9,\n", "p has a position but no p_ens_var"),
        ("file,frame,status,p_x,p_y,p_score,p_ens_var\nv.mp4,0,ok,1,2,0.9,-1\n", "p_ens_var -1 is negative"),
    ],
)
def test_bad_files_raise_data_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "tracks.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=message) as error:
        read_tracks(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


def test_plot_track(tmp_path):
    tracks = noisy(wave(60))
    tracks.score[20:25] = 0.1
    smoothed, _ = smooth(tracks)
    path = plot_track(tracks, smoothed, "p0", tmp_path / "p0.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no keypoint 'tail'"):
        plot_track(tracks, smoothed, "tail", tmp_path / "x.png")


def test_kp_smooth_writes_the_csv_figures_and_report(tmp_path, capsys):
    truth = np.concatenate([wave(80), wave(80, phase=1)], 1)
    xy = noisy(truth).xy
    xy[40, 0] += (60, 60)  # one wild frame of the nose
    write_predictions(tmp_path / "predictions.csv", {"clip.mp4": xy})
    (tmp_path / "predictions.json").write_text('{"alpha": 0.1, "flip": false}')
    main_smooth([str(tmp_path / "predictions.csv")])
    smoothed = read_tracks(tmp_path / "predictions_smoothed.csv")
    raw = read_tracks(tmp_path / "predictions.csv")
    assert smoothed.names == ["nose", "tail"] and len(smoothed.frames) == 80
    assert rmse(smoothed.xy[1:], truth[1:]) < rmse(raw.xy[1:], truth[1:])
    folder = tmp_path / "predictions_smoothing"
    assert sorted(p.name for p in folder.glob("*.png")) == ["nose.png", "tail.png"]
    report = (folder / "report.csv").read_text().splitlines()
    assert report[0] == "track,keypoint,frames,filled,jump_before,jump_after,within_radius,process_noise"
    nose, tail = (dict(zip(report[0].split(","), line.split(","))) for line in report[1:])
    assert (nose["filled"], tail["filled"]) == ("0", "7")  # the tail scores 0.1 every 10th frame (0 is before)
    assert float(nose["jump_after"]) < float(nose["jump_before"])
    assert 0.8 < float(tail["within_radius"]) <= 1  # about 1 - alpha: the raw noise is what the radius covers
    page = (folder / "report.md").read_text()
    assert "alpha from predictions.json" in page and "![nose](nose.png)" in page
    printed = capsys.readouterr().err
    assert "kp smooth: kalman" in printed and "nose" in printed and "tail" in printed
    main_smooth(
        [str(tmp_path / "predictions.csv"), "--method", "median", "--window", "3", "--out", str(tmp_path / "m")]
    )
    assert (tmp_path / "m" / "predictions_smoothed.csv").is_file()
    assert "alpha from the default" not in (tmp_path / "m" / "predictions_smoothing" / "report.md").read_text()


def test_kp_smooth_of_an_ensemble_uses_its_spread_as_the_noise(tmp_path, capsys):
    """An uncalibrated ensemble's CSV: a frame the members disagree on (a huge ens_var) is pulled to the track, a
    frame they agree on (a tiny ens_var) is kept; a calibrated single model's CSV with the same positions follows the
    first (its radius is small) and not the second (its radius is not)."""
    truth = wave(120)
    xy = noisy(truth).xy
    spread = np.full((120, 1), 2 * SIGMA**2)  # x + y variance of members with SIGMA px of noise each
    xy[40, 0] += (50, -40)  # the members disagree: their median is far off
    spread[40] = 5000.0
    xy[80, 0] += (8, 8)  # the members agree on a point off the smooth track
    spread[80] = 0.001
    ensemble = {"names": ("nose",), "spread": {"clip.mp4": spread}, "radius": None}
    write_predictions(tmp_path / "predictions.csv", {"clip.mp4": xy}, **ensemble)
    (tmp_path / "predictions.json").write_text('{"members": 3}')  # what kp predict writes without calibration
    write_predictions(tmp_path / "single.csv", {"clip.mp4": xy}, names=("nose",))
    done = smooth_file(tmp_path / "predictions.csv")
    smoothed = read_tracks(done.csv)
    assert np.linalg.norm(smoothed.xy[40, 0] - truth[40, 0]) < 2 * SIGMA
    assert np.linalg.norm(smoothed.xy[80, 0] - xy[80, 0]) < 0.2
    single = smooth_file(tmp_path / "single.csv")
    xy_single = read_tracks(single.csv).xy
    assert np.linalg.norm(xy_single[40, 0] - truth[40, 0]) > 10 * SIGMA
    assert np.linalg.norm(xy_single[80, 0] - xy[80, 0]) > 2
    # the report and the table say which noise
    assert done.noise == "ensemble variance of 3 members"
    assert single.noise == "calibrated radius"
    title = "(no alpha in predictions.json, no --alpha); noise: ensemble variance of 3 members)"
    assert (
        title in (done.report.parent / "report.md").read_text() and "ensemble variance of 3" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.csv"], "data error: missing.csv"),
        (["other.csv"], "other.csv: a CSV of 2 row(s) and 2 column(s) whose first row is 'image, label': not a layout"),
        (["image.png"], "image.png: a PNG image, not a text file"),
        (["confident.csv", "--threshold", "0.95"], "every score is below --threshold 0.95 (the highest is 0.900)"),
        (["predictions.csv", "--method", "median", "--window", "4"], "window must be an odd whole number"),
        (["predictions.csv", "--window", "5"], "kalman has no option 'window'"),
    ],
)
def test_kp_smooth_errors_are_one_line(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    write_predictions(tmp_path / "predictions.csv", {"clip.mp4": noisy(wave(30)).xy}, names=("nose",))
    (tmp_path / "other.csv").write_text("image,label\na.png,3\n")
    cv2.imwrite(str(tmp_path / "image.png"), np.zeros((4, 4, 3), np.uint8))
    write_predictions(tmp_path / "confident.csv", {"clip.mp4": noisy(wave(30)).xy}, names=("nose",))
    with pytest.raises(SystemExit) as exit_:
        main_smooth(argv)
    assert message in str(exit_.value) and "\n" not in str(exit_.value)


def test_kp_smooth_refuses_a_bad_option_value_before_reading(capsys):
    with pytest.raises(SystemExit):
        main_smooth(["predictions.csv", "--threshold", "2"])
    assert "--threshold: expected a number from 0 to 1, got '2'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_smooth(["predictions.csv", "--alpha", "1"])
    assert "--alpha: expected a number between 0 and 1 (exclusive), got '1'" in capsys.readouterr().err
