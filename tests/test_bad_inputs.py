"""Every broken or unusual input of tests/bad_inputs (each loader's label files and images, the splits, checkpoints)
gets what kp promises: a one-line error naming the file, a counted skip, or acceptance with the right values."""

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import kp
from kp.data.datamodule import KeypointDataModule
from kp.errors import DataError, ModelLoadError
from tests.bad_inputs import checkpoints, commands
from tests.bad_inputs.cases import (
    CASES_BY_NAME,
    FORMATS,
    N,
    _big_png_header,
    build,
    cases,
    make_labels,
    open_case,
    source_points,
)

CASES = cases()


def test_there_are_enough_cases_covering_every_loader():
    assert len(CASES) + len(checkpoints.KINDS) >= 150
    assert {case.fmt.name for case in CASES} == {"facial", "facial68", "cards", "cat", "dlc", "dlc_single", "coco"}
    assert {case.expect for case in CASES} == {"error", "skip", "accept"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path):
    written = build(case, tmp_path)
    label_file = case.fmt.label_file(tmp_path)
    try:
        dataset = open_case(case, tmp_path)
        loaded = [source_points(dataset, i) for i in range(len(dataset))]
    except DataError as error:
        message = str(error)
        assert case.expect == "error", f"expected {case.expect}, got the error {message}"
        assert "\n" not in message and case.match in message
        named = [label_file.name, label_file.parent.name, tmp_path.name]  # the file, its folder, or an image in it
        assert any(name in message for name in named), message
        assert case.names in message, f"the message does not name {case.names}: {message}"
        return
    assert case.expect != "error", f"expected an error matching {case.match!r}; the loader read {len(dataset)} samples"
    if case.expect == "skip":
        assert len(dataset.issues) == case.n, dataset.issues
        assert all(str(tmp_path) in issue for issue in dataset.issues), dataset.issues
        if case.kind == "negative_coordinate":  # the sample stays, its point at (-3, 5) is left out of the labels
            assert len(dataset) == N and (~dataset.labelled()).sum() == 1
            assert "at (-3, 5) outside" in dataset.issues[0] and "left out" in dataset.issues[0]
        return
    assert dataset.issues == []
    # every sample read, taken back to its source image, holds the points written for one of the images
    for points in loaded:
        labelled = np.isfinite(points).all(axis=1)
        assert labelled.any()
        assert any(np.allclose(points[labelled], expected[labelled], atol=0.02) for expected in written.points)


@pytest.mark.parametrize("kind", list(checkpoints.KINDS))
def test_bad_checkpoint(kind, tmp_path):
    make, expect, match = checkpoints.KINDS[kind]
    path = make(tmp_path)
    if expect == "accept":
        predictor = kp.load(path)
        keypoints, scores = predictor.predict([np.zeros((32, 32), np.uint8)])
        assert keypoints.shape == (1, 2, 2) and scores.shape == (1, 2)
        return
    with pytest.raises(ModelLoadError) as error:
        kp.load(path)
    message = str(error.value)
    assert "\n" not in message and match in message and str(path) in message, message


def test_skips_are_counted_and_listed_in_data_issues_csv(tmp_path):
    """Two bad rows of a cards CSV: counted once over the three splits, and written as file, row, reason."""
    fmt = FORMATS["cards"]
    fmt.write(tmp_path, make_labels(*fmt.size, fmt.k))
    path = fmt.label_file(tmp_path)
    lines = path.read_text().splitlines()
    lines += [
        lines[1].replace("p0_01.png", "gone.png").replace("video0", "video8"),
        lines[2].replace("p1_01.png", "p9.png").replace(",1,20,", ",1,abc,").replace("video1", "video9"),
    ]
    path.write_text("\n".join(lines) + "\n")
    datamodule = KeypointDataModule(lambda split, transform, max_pixels: fmt.open(tmp_path, split, (0.5, 0.25, 0.25)))
    datamodule.setup()
    datamodule.write_issues(tmp_path / "data_issues.csv")
    with open(tmp_path / "data_issues.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["file", "row", "reason"],
        [str(path), "6", f"image {tmp_path / 'images' / 'gone.png'} is missing"],
        [str(path), "7", "cards_counted 'abc' is not a number"],
    ]


def test_mirror_augmentation_without_left_right_pairs_is_switched_off_at_start(tmp_path, caplog):
    """A COCO category without keypoint names: flip pairs unknown, so mirrored samples would keep their labels: the
    mirror leaves the augmentation, and the log says how to declare the pairs."""
    import albumentations as A

    from kp.data.transforms import KeypointAugment

    fmt = FORMATS["coco"]
    fmt.write(tmp_path, make_labels(*fmt.size, fmt.k))
    data = json.loads(fmt.label_file(tmp_path).read_text())
    data["categories"][0].pop("keypoints")
    fmt.label_file(tmp_path).write_text(json.dumps(data))
    hflip = KeypointAugment([A.HorizontalFlip(p=0.5)])
    datamodule = KeypointDataModule(
        lambda split, transform, max_pixels: fmt.open(tmp_path, split, (0.5, 0.25, 0.25), transform=transform),
        transforms={"train": hflip},
    )
    datamodule.setup()
    assert datamodule.meta.flip_pairs is None
    assert "mirror augmentation and flip test are OFF" in caplog.text and "(kp0, kp1, kp2)" in caplog.text
    assert datamodule.splits["train"].transform.steps == []


# --- the same cases through the commands that load data ---------------------------------------------------------------


def _outcome(case, tmp_path, run, listed) -> None:
    """Run a command in-process: an error case ends in its one line (exit status 1, the loader's message unwrapped
    from any DataLoader worker), a skip case exits normally with its skips listed (listed() reads how many)."""
    try:
        run()
    except SystemExit as stop:
        message = str(stop.code)
        assert case.expect == "error", f"expected {case.expect}, got {message}"
        assert message.startswith("data error: ") and "\n" not in message and "Traceback" not in message, message
        assert "DataLoader worker" not in message and case.match in message and case.names in message, message
        label_file = case.fmt.label_file(tmp_path / "data")
        assert any(name in message for name in (label_file.name, label_file.parent.name, "data/")), message
        return
    assert case.expect != "error", f"expected an error matching {case.match!r}: the command ran through"
    assert listed() == (case.n if case.expect == "skip" else 0)


def _data_rows(path) -> int:
    """Rows of a data_issues.csv (file, row, reason), 0 where none was written."""
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        return len(list(csv.reader(f))) - 1


@pytest.mark.parametrize("case", commands.PREVIEW, ids=[case.name for case in commands.PREVIEW])
def test_bad_input_in_kp_preview(case, tmp_path):
    from kp.cli import preview

    build(case, tmp_path / "data")
    out = tmp_path / "preview.png"
    argv = [*commands.data_overrides(case, tmp_path / "data"), "--n", "1", "--out", str(out)]
    _outcome(case, tmp_path, lambda: preview.main(argv), lambda: _data_rows(out.with_suffix(".data_issues.csv")))


@pytest.mark.parametrize("case", commands.DOCTOR, ids=[case.name for case in commands.DOCTOR])
def test_bad_input_in_kp_doctor(case, tmp_path):
    from kp.cli import doctor

    build(case, tmp_path / "data")
    out = tmp_path / "doctor"
    argv = [*commands.data_overrides(case, tmp_path / "data"), "--out", str(out)]

    def listed():
        report = (out / "report.md").read_text()
        return int(report.split("## What the loader left out\n\n")[1].split(" ")[0])

    _outcome(case, tmp_path, lambda: doctor.main(argv), listed)


@pytest.mark.parametrize("case", commands.TRAIN, ids=[case.name for case in commands.TRAIN])
def test_bad_input_in_kp_train(case, tmp_path):
    """As kp train runs a job (kp/cli/train.py), with the samples read in a DataLoader worker."""
    from kp.errors import user_errors_in_one_line
    from kp.train.loop import train
    from tests.helpers import compose_config

    build(case, tmp_path / "data")
    run_dir = tmp_path / "run"
    cfg = compose_config(
        *commands.data_overrides(case, tmp_path / "data"), *commands.QUICK, "debug=fast_dev_run", output_dir=run_dir
    )

    def run():
        with user_errors_in_one_line():
            train(cfg)

    _outcome(case, tmp_path, run, lambda: _data_rows(run_dir / "data_issues.csv"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per format, a run directory whose model fits the cases' data (built, not trained: evaluate reads the data
    before it predicts), made from a valid copy of the data."""
    import torch

    from kp.build import build as build_model
    from tests.helpers import compose_config, write_run_config

    made = {}

    def run_for(case):
        name = case.fmt.name
        if name not in made:
            root = tmp_path_factory.mktemp(f"{name}-run")
            valid = CASES_BY_NAME[f"{name}-valid"]
            build(valid, root / "data")
            cfg = compose_config(*commands.data_overrides(valid, root / "data"), *commands.QUICK, output_dir=root)
            _, module = build_model(cfg)
            torch.save({"state_dict": module.state_dict(), "kp": module.spec}, root / "model.ckpt")
            write_run_config(cfg, root)
            made[name] = root
        return made[name]

    return run_for


@pytest.mark.parametrize("case", commands.EVALUATE, ids=[case.name for case in commands.EVALUATE])
def test_bad_input_in_kp_evaluate_with_a_data_override(case, runs, tmp_path, caplog):
    """kp evaluate RUN data=... on every split: the samples read in DataLoader workers."""
    from kp.cli import evaluate

    run = runs(case)
    build(case, tmp_path / "data")
    argv = [str(run), *commands.data_overrides(case, tmp_path / "data"), *commands.QUICK[2:6]]
    argv += ["--split", "all", "--checkpoint", str(run / "model.ckpt"), "--out", str(tmp_path / "eval")]

    def listed():  # the datamodule's count in the log (kp evaluate writes no data_issues.csv)
        counts = re.findall(r"(\d+) bad sample\(s\) or point\(s\) left out in all", caplog.text)
        return int(counts[-1]) if counts else 0

    _outcome(case, tmp_path, lambda: evaluate.main(argv), listed)


def test_bad_images_in_kp_predict_are_skipped_and_listed(runs, tmp_path):
    """Truncated, random, empty and oversized images among the inputs, read in a DataLoader worker: each skipped and
    listed in skipped.csv with its reason, the good one predicted; a name the file system refuses is one line."""
    from kp.cli import predict

    model = runs(CASES_BY_NAME["coco-valid"]) / "model.ckpt"
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "good.png"), np.zeros((32, 40, 3), np.uint8))
    good = (images / "good.png").read_bytes()
    (images / "truncated.png").write_bytes(good[: len(good) // 2])
    (images / "random.png").write_bytes(np.random.default_rng(1).bytes(3000))
    (images / "empty.png").write_bytes(b"")
    _big_png_header(images / "bomb.png", 200_000, 100_000)
    predict.main([str(model), str(images), "--out", str(tmp_path / "out"), "--workers", "1", "--no-overlays"])
    with open(tmp_path / "out" / "skipped.csv", newline="") as f:
        skipped = {Path(row[0]).name: row[-1] for row in list(csv.reader(f))[1:]}
    assert sorted(skipped) == ["bomb.png", "empty.png", "random.png", "truncated.png"]
    assert "megapixels" in skipped["bomb.png"] and "corrupt" in skipped["truncated.png"]
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 1

    too_long = images / ("x" * 296 + ".png")
    with pytest.raises(SystemExit) as stop:
        predict.main([str(model), str(too_long), "--out", str(tmp_path / "out2")])
    assert str(stop.value) == f"data error: {too_long}: cannot be opened (File name too long)"


def test_duplicated_image_id_in_kp_submit_is_one_line_naming_the_rows(tmp_path):
    """A test.csv that gives one ImageId to two images: which one an IdLookupTable row means is ambiguous."""
    import torch

    from kp.build import build as build_model
    from kp.cli import submit
    from tests.helpers import compose_config

    valid = CASES_BY_NAME["facial-valid"]
    build(valid, tmp_path / "data")
    _, module = build_model(compose_config(*commands.data_overrides(valid, tmp_path / "data"), *commands.QUICK))
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, tmp_path / "model.ckpt")
    pixels = " ".join(["7"] * 96 * 96)
    (tmp_path / "data" / "test.csv").write_text(f"ImageId,Image\n1,{pixels}\n2,{pixels}\n1,{pixels}\n")
    (tmp_path / "data" / "IdLookupTable.csv").write_text("RowId,ImageId,FeatureName,Location\n1,1,nose_tip_x,\n")
    with pytest.raises(SystemExit) as stop:
        submit.main(
            [str(tmp_path / "model.ckpt"), "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "s.csv")]
        )
    assert str(stop.value).startswith(
        f"data error: {tmp_path / 'data' / 'test.csv'}:4: ImageId 1 again (first at line 2)"
    )
    assert not (tmp_path / "s.csv").exists()


# --- mistakes in overrides, in every command that takes them ----------------------------------------------------------


def _one_line_naming(override: str, says: tuple[str, str], run, capsys) -> None:
    """The command ends in one line that names the override and says what is wrong and the nearest names; nothing
    else is printed."""
    with pytest.raises(SystemExit) as stop:
        run()
    message = str(stop.value.code)
    assert message.startswith(f"configuration error: {override}: ") and "\n" not in message, message
    assert all(text in message for text in says), message
    printed = capsys.readouterr()
    assert printed.out == printed.err == "", printed


@pytest.mark.parametrize("mistake", list(commands.MISTAKES))
@pytest.mark.parametrize("command", ["train", "sweep", "doctor", "preview", "evaluate"])
def test_override_mistakes_end_in_one_line_in_every_command(command, mistake, runs, tmp_path, monkeypatch, capsys):
    """A misspelt key, a misspelt option and a value that cannot work: one line each, before anything is written (no
    run or sweep folder under logs/, no report)."""
    import importlib

    override, *says = commands.MISTAKES[mistake]
    monkeypatch.chdir(tmp_path)
    argv = {
        "train": [override],
        "sweep": ["-m", override],
        "doctor": [override, "--out", "doctor"],
        "preview": [override, "--out", "preview.png"],
        "evaluate": [str(runs(CASES_BY_NAME["cards-valid"])), override, "--out", "eval"],
    }[command]
    main = importlib.import_module(f"kp.cli.{command}").main
    _one_line_naming(override, says, lambda: main(argv), capsys)
    assert list(tmp_path.iterdir()) == []


def test_the_real_command_line_prints_one_line_and_makes_no_run_folder(tmp_path):
    """`kp train modle=unet` (the issue's example: Hydra advised +modle=unet) and `kp preview --config-dir DIR` with a
    misspelt option of that folder, as a user types them."""
    import subprocess
    import sys

    conf = tmp_path / "my_conf" / "model"
    conf.mkdir(parents=True)
    (conf / "my_unet.yaml").write_text("defaults:\n  - unet\n")
    for argv, line in (
        (["train", "modle=unet"], "configuration error: modle=unet: no such key; did you mean model?"),
        (
            ["preview", "--config-dir", "my_conf", "model=my_unett"],
            "configuration error: model=my_unett: no such option in model; did you mean my_unet or unet?",
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "kp", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.splitlines()[0].startswith(line) and len(done.stderr.splitlines()) == 1, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["my_conf"]
