"""kp.formats: DeepLabCut's CSV (three header rows, one- or three-column index) and kp predict's predictions.csv,
each read and written in one place, on small files written here."""

from __future__ import annotations

import numpy as np
import pytest

from kp.errors import DataError, InputError
from kp.formats import dlc_csv, predictions_csv


def test_dlc_labels_round_trip_with_a_one_column_index(tmp_path):
    path = dlc_csv.write(
        tmp_path / "CollectedData_me.csv",
        "me",
        ["nose", "tail"],
        [["labeled-data/a/img00003.png", "1.50", "2", "", ""]],
    )
    assert path.read_text().splitlines() == [
        "scorer,me,me,me,me",
        "bodyparts,nose,nose,tail,tail",
        "coords,x,y,x,y",
        "labeled-data/a/img00003.png,1.50,2,,",
    ]
    table = dlc_csv.read(path)
    assert table.bodyparts == ["nose", "tail"] and table.index_width == 1
    assert table.columns == {"nose": {"x": 1, "y": 2}, "tail": {"x": 3, "y": 4}}
    line, fields = table.rows[0]
    assert line == 4 and table.index(fields) == "labeled-data/a/img00003.png"
    assert dlc_csv.labels_by_index(path) == {"labeled-data/a/img00003.png": (4, ["1.50", "2", "", ""])}


def test_a_three_column_index_joins_into_one_path_and_appends_split(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"scorer,,,me,me\r\nbodyparts,,,nose,nose\r\ncoords,,,x,y\r\nlabeled-data,v1,img1.png,1,2\r\n")
    table = dlc_csv.read(path)
    assert table.index_width == 3 and table.index(table.rows[0][1]) == "labeled-data/v1/img1.png"
    assert dlc_csv.index_path(["labeled-data\\v1\\img2.png"], 1) == "labeled-data/v1/img2.png"  # Windows paths
    dlc_csv.append(path, "me", ["nose"], [["labeled-data/v2/img00007.png", "3.00", "4.00"]])
    assert path.read_bytes().endswith(b"\r\nlabeled-data,v2,img00007.png,3.00,4.00\r\n")  # its own line ends kept


def test_an_analysis_file_has_likelihood_columns_where_asked_for(tmp_path):
    path = tmp_path / "analysis.csv"
    path.write_text("scorer,n,n,n\nbodyparts,p,p,p\ncoords,x,y,likelihood\n0,1,2,0.9\n")
    assert dlc_csv.read(path, coords=("x", "y", "likelihood")).columns == {"p": {"x": 1, "y": 2, "likelihood": 3}}
    with pytest.raises(DataError, match=r"analysis.csv:3: column 4 is 'likelihood'; expected x, y per body part"):
        dlc_csv.read(path)


# Each a file of another shape, and the one line it gets.
REFUSED = {
    "scorer,A,A\nindividuals,m,m\nbodyparts,p,p\ncoords,x,y\n": "multi-animal DeepLabCut labels",
    "scorer,A,A\ncoords,x,y\nbodyparts,p,p\n": "expected three header rows scorer, bodyparts, coords; found",
    "scorer,A,A\nbodyparts,p\ncoords,x,y\n": "labels.csv:2: 2 columns, the coords row has 3",
    "scorer,A\nbodyparts,p\ncoords,x\n": "every body part needs an x and a y column",
}


@pytest.mark.parametrize("text", REFUSED)
def test_dlc_files_of_another_shape_are_one_line_errors(tmp_path, text):
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DataError, match=REFUSED[text]) as error:
        dlc_csv.read(tmp_path / "labels.csv")
    assert "\n" not in str(error.value)


def row(frame=None, keypoints=None, radius=np.nan):
    return {
        "file": "clip.mp4" if frame is not None else "a.png",
        "frame": frame,
        "face": None,
        "box": None,
        "status": "ok" if keypoints is not None else "unreadable",
        "keypoints": None if keypoints is None else np.array(keypoints, float),
        "scores": None if keypoints is None else np.array([0.91234]),
        "radius": None if keypoints is None else np.array([radius]),
    }


def test_predictions_csv_cells_and_round_trip(tmp_path):
    names = ["nose"]
    assert predictions_csv.columns(names, faces=False) == [
        "file", "frame", "status", "nose_x", "nose_y", "nose_score", "nose_radius"
    ]  # fmt: skip
    assert predictions_csv.values(row(3, [[1.23456, 2]], 4.5), names, False) == [
        "clip.mp4", 3, "ok", "1.235", "2.000", "0.9123", "4.500"
    ]  # fmt: skip
    assert predictions_csv.values(row(), names, False) == ["a.png", "", "unreadable", "", "", "", ""]
    path = tmp_path / "predictions.csv"
    lines = [predictions_csv.columns(names, False), predictions_csv.values(row(3, [[1, 2]]), names, False)]
    path.write_text("\n".join(",".join(map(str, cells)) for cells in lines) + "\nclip.mp4,4,ok,1\n")  # cut short
    (read,) = predictions_csv.read_rows(path, names, faces=False)
    assert read["frame"] == 3 and np.allclose(read["keypoints"], [[1, 2]]) and np.isnan(read["radius"][0])
    with pytest.raises(InputError, match="its columns are not this model's"):
        predictions_csv.read_rows(path, ["nose", "tail"], faces=False)
    assert predictions_csv.keypoint_names(["file", "frame", "box_x", "box_y", "p_x", "p_y", "p_score"]) == ["p"]


def test_skipped_csv_round_trip(tmp_path):
    skipped = [("a.png", None, "a.png: corrupt"), ("clip.mp4", 7, "clip.mp4: frame 7 cannot be decoded")]
    predictions_csv.write_skipped(tmp_path / "skipped.csv", skipped)
    assert predictions_csv.read_skipped(tmp_path / "skipped.csv") == skipped
    assert predictions_csv.read_skipped(tmp_path / "none.csv") == []
