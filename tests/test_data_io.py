"""kp.data.io and kp.data.video: images read with the pixel limit as a parameter (PIL's own guard left alone),
cut-off images refused before OpenCV prints its own warning, files that are no text named for what they are, and
video frames read in order with an undecodable frame given back in its place."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from kp.data.io import image_size, read_image, read_text
from kp.data.video import read_frames, video_info
from kp.errors import DataError


def test_importing_kp_leaves_pils_decompression_guard_on():
    code = "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import kp.data.dlc, kp.inference.sources; "
    code += "print(before == Image.MAX_IMAGE_PIXELS is not None)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "True\n"


def test_the_pixel_limit_is_a_parameter(tmp_path):
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.zeros((10, 300, 3), np.uint8))
    assert read_image(path).shape == (10, 300, 3) and image_size(path) == (300, 10)
    for read in (lambda: read_image(path, max_pixels=2999), lambda: image_size(path, max_pixels=2999)):
        with pytest.raises(
            DataError, match=r"wide.png: image is 300×10 pixels, above the limit of 0.002999 megapixels"
        ):
            read()


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_cut_off_image_is_one_message_with_no_opencv_warning(tmp_path, capfd, suffix):
    whole = tmp_path / f"whole{suffix}"
    cv2.imwrite(str(whole), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    capfd.readouterr()
    with pytest.raises(DataError, match="corrupt or unsupported image"):
        read_image(cut)
    assert capfd.readouterr().err == ""  # OpenCV's "[ WARN:0@...] ... PNG input buffer is incomplete" never shows


def test_a_file_that_is_no_text_is_named_for_what_it_is(tmp_path):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"frame.png: a PNG image, not a text file: give the CSV") as error:
        read_text(image)
    assert "Windows-1252" not in str(error.value)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name\ncaf\xe9\n".encode("cp1252"))
    with pytest.raises(DataError, match="latin.csv:2: not UTF-8 .* Windows-1252"):
        read_text(latin)


def test_video_frames_are_read_in_order_and_a_missing_one_comes_back_as_none(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(6):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    assert video_info(path) == (6, 10.0, (32, 24))
    frames = dict(read_frames(path, [1, 4, 9]))  # frame 9 is promised by nobody: None, in its place
    assert sorted(frames) == [1, 4] + [9] and frames[9] is None
    assert frames[1].shape == (24, 32, 3) and abs(int(frames[1].mean()) - 40) <= 3
    assert abs(int(frames[4].mean()) - 160) <= 3  # the fourth frame after the first, not a neighbour


def test_the_datamodule_gives_its_pixel_limit_to_every_split(tmp_path):
    from kp.data.datamodule import KeypointDataModule
    from kp.data.dlc import DeepLabCutProject

    project = tmp_path / "project"
    (project / "labeled-data" / "v").mkdir(parents=True)
    (project / "config.yaml").write_text("scorer: me\nbodyparts: [nose]\n")
    rows = ["scorer,me,me", "bodyparts,nose,nose", "coords,x,y"]
    for i in range(4):
        cv2.imwrite(str(project / "labeled-data" / "v" / f"img{i}.png"), np.full((10, 300, 3), 40 * i, np.uint8))
        rows.append(f"labeled-data/v/img{i}.png,{10 + i},5")
    (project / "labeled-data" / "v" / "CollectedData_me.csv").write_text("\n".join(rows) + "\n")
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}

    def dataset(split, transform, max_pixels):
        return DeepLabCutProject(split, str(project), split_by="frame", fractions=fractions, max_pixels=max_pixels)

    datamodule = KeypointDataModule(dataset, max_image_megapixels=0.004)
    datamodule.setup()
    assert {split: data.max_pixels for split, data in datamodule.splits.items()} == dict.fromkeys(fractions, 4000)
    with pytest.raises(DataError, match="no usable labelled frame .* above the limit of 0.002 megapixels"):
        KeypointDataModule(dataset, max_image_megapixels=0.002).setup()  # every 3000-pixel frame refused
