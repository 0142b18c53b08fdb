"""The COCO-keypoints loader: crops, visibility flags, names/flip pairs/skeleton, splits and bad input, on a small
synthetic JSON and on the real fixtures when ../shared/data is there."""

import json
import logging

import cv2
import numpy as np
import pytest

from kp.data.coco import CocoKeypoints
from kp.data.keypoint_pairs import flip_pairs_from_names
from kp.errors import DataError
from tests.helpers import shared_data

NAMES = ["left_eye", "right_eye", "nose"]
FLAGS = [2, 1, 2]  # the right eye is labelled but occluded
SIZE = 32


def instance_points(bx, by):
    return [(bx + 8, by + 10), (bx + 28, by + 12), (bx + 18, by + 26)]


def write_coco(root, edit=None):
    """4 black 100×80 images with one instance each (two in image 0), a white dot at every labelled keypoint, an
    unlabelled instance and a crowd region; `edit(data)` changes the JSON before it is written."""
    images, annotations = [], []
    for i in range(4):
        picture = np.zeros((80, 100, 3), np.uint8)
        for bx, by in [(10, 10), (55, 35)][: 2 if i == 0 else 1]:
            points = instance_points(bx + 3 * i, by)
            for x, y in points:
                cv2.circle(picture, (x, y), 2, (255, 255, 255), -1)
            keypoints = [c for (x, y), v in zip(points, FLAGS) for c in (x, y, v)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [bx + 3 * i, by, 36, 32],
                    "keypoints": keypoints,
                    "num_keypoints": 3,
                }
            )
        cv2.imwrite(str(root / f"img{i}.png"), picture)
        images.append({"id": i, "file_name": f"img{i}.png", "width": 100, "height": 80})
    annotations.append(
        {
            "id": 90,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [0, 0, 9, 9],
            "keypoints": [0] * 9,
            "num_keypoints": 0,
        }
    )
    annotations.append(
        {
            "id": 91,
            "image_id": 2,
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [0, 0, 9, 9],
            "keypoints": [0] * 9,
            "num_keypoints": 0,
        }
    )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing", "keypoints": NAMES, "skeleton": [[1, 3], [2, 3]]}],
    }
    if edit:
        edit(data)
    path = root / "things.json"
    path.write_text(json.dumps(data))
    return path


def every_instance(path, **options):
    """All instances of the file as one split."""
    return CocoKeypoints("train", {"train": str(path)}, size=SIZE, **options)


def blob_centre(image, x, y, radius=3):
    """Brightness-weighted centre of the C×H×W image around (x, y)."""
    grey = image.mean(0).numpy()
    x0, y0 = max(0, round(x) - radius), max(0, round(y) - radius)
    window = grey[y0 : round(y) + radius + 1, x0 : round(x) + radius + 1]
    rows, columns = np.mgrid[: window.shape[0], : window.shape[1]]
    return (columns * window).sum() / window.sum() + x0, (rows * window).sum() / window.sum() + y0


def test_one_square_crop_per_labelled_instance_with_keypoints_on_their_dots(tmp_path):
    data = every_instance(write_coco(tmp_path))
    assert len(data) == 5  # the unlabelled instance and the crowd region are left out
    for i in range(len(data)):
        sample = data[i]
        assert sample["image"].shape == (3, SIZE, SIZE)
        assert sample["visible"].tolist() == [True, False, True]
        for (x, y), visible in zip(sample["keypoints"].tolist(), sample["visible"].tolist()):
            if visible:
                assert blob_centre(sample["image"], x, y) == pytest.approx((x, y), abs=0.5)


def test_crop_geometry_is_exact(tmp_path):
    sample = every_instance(write_coco(tmp_path))[0]  # bbox [10, 10, 36, 32]: centre (28, 26)
    side = round(36 * 1.25)  # the longer side plus the margin
    x0, y0 = round(28 - side / 2), round(26 - side / 2)
    scale = SIZE / side
    expected = [((x - x0 + 0.5) * scale - 0.5, (y - y0 + 0.5) * scale - 0.5) for x, y in instance_points(10, 10)]
    assert sample["keypoints"][0].tolist() == pytest.approx(expected[0], abs=1e-4)
    assert sample["keypoints"][2].tolist() == pytest.approx(expected[2], abs=1e-4)


def test_occluded_points_train_only_when_asked(tmp_path):
    sample = every_instance(write_coco(tmp_path), occluded_visible=True)[1]
    assert sample["visible"].all()
    x, y = sample["keypoints"][1].tolist()
    assert blob_centre(sample["image"], x, y) == pytest.approx((x, y), abs=0.5)


def test_names_flip_pairs_and_skeleton_come_from_the_category(tmp_path):
    path = write_coco(tmp_path)
    meta = every_instance(path).meta
    assert meta.names == NAMES and meta.flip_pairs == [(0, 1)] and meta.skeleton == [(0, 2), (1, 2)]
    renamed = every_instance(path, names=["a", "b", "c"], flip_pairs=[["b", "a"]]).meta
    assert renamed.names == ["a", "b", "c"] and renamed.flip_pairs == [(1, 0)]
    with pytest.raises(ValueError, match=r"\['a', 'x'\] names an unknown keypoint"):
        every_instance(path, names=["a", "b", "c"], flip_pairs=[["a", "x"]])


def test_zero_based_skeleton_is_recognised(tmp_path):
    def zero_based(data):
        data["categories"][0]["skeleton"] = [[0, 2], [1, 2]]

    assert every_instance(write_coco(tmp_path, zero_based)).meta.skeleton == [(0, 2), (1, 2)]


@pytest.mark.parametrize(
    "names, pairs",
    [
        (["nose", "left_eye", "right_eye", "left_ear", "right_ear"], [(1, 2), (3, 4)]),
        (["L_Eye", "R_Eye", "Throat", "L_F_Elbow", "R_F_Elbow"], [(0, 1), (3, 4)]),
        (["head", "eyeL", "eyeR", "thorax", "forelegR1", "forelegL1"], [(1, 2), (4, 5)]),
        (["LeftHand", "RightHand", "LEFT_FOOT", "RIGHT_FOOT", "l_knee", "r_knee"], [(0, 1), (2, 3), (4, 5)]),
        (["Lip", "Rump", "tailL", "wrist"], None),  # L/R starting a word, or a side with no partner: unknown
    ],
)
def test_flip_pairs_are_guessed_from_side_words(names, pairs):
    assert flip_pairs_from_names(names) == pairs


def test_split_is_by_image_and_a_file_per_split_works(tmp_path):
    path = write_coco(tmp_path)
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    splits = {s: CocoKeypoints(s, str(path), size=SIZE, fractions=fractions) for s in ("train", "val", "test")}
    images = {s: {str(sample[0]) for sample in d.samples} for s, d in splits.items()}
    assert [len(v) for v in images.values()] == [2, 1, 1] and len(set.union(*images.values())) == 4
    assert sum(len(d) for d in splits.values()) == 5  # image 0's two instances stay together
    by_file = CocoKeypoints("val", {"train": "unused.json", "val": str(path), "test": "unused.json"}, size=SIZE)
    assert len(by_file) == 5
    with pytest.raises(DataError, match="test split of .*things.json by image is empty"):
        CocoKeypoints("test", str(path), size=SIZE, fractions={"train": 0.75, "val": 0.25, "test": 0.0})


@pytest.mark.parametrize("box", [None, [20, 20, 5, 5]])
def test_crop_holds_every_labelled_point_without_a_box_or_with_a_short_one(tmp_path, box):
    def set_boxes(data):
        for annotation in data["annotations"]:
            annotation["bbox"] = box

    sample = every_instance(write_coco(tmp_path, set_boxes))[0]
    assert sample["visible"].tolist() == [True, False, True]
    for (x, y), visible in zip(sample["keypoints"].tolist(), sample["visible"].tolist()):
        if visible:
            assert blob_centre(sample["image"], x, y) == pytest.approx((x, y), abs=0.5)


def test_bad_annotations_are_skipped_counted_and_named(tmp_path, caplog):
    def spoil(data):
        annotations = data["annotations"]
        annotations[1]["keypoints"][0] = "12"  # id 2
        annotations[2]["keypoints"][3] = float("inf")  # id 3
        annotations[3]["keypoints"][5] = 3  # id 4
        data["images"][3]["file_name"] = "gone.png"  # id 5

    with caplog.at_level(logging.WARNING):
        data = every_instance(write_coco(tmp_path, spoil))
    assert len(data) == 1
    assert "things.json: left out 4 bad sample(s) or point(s)" in caplog.text
    for problem in [
        "annotation id 2: a keypoint value is not a number",
        "annotation id 3: a labelled keypoint has a non-finite coordinate",
        "annotation id 4: visibility flags must be 0, 1 or 2, got [3.0]",
        "annotation id 5: image",
        "gone.png is missing",
    ]:
        assert problem in caplog.text


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            lambda d: d["annotations"][2]["keypoints"].extend([1, 1, 2]),
            "annotation id 3 has 12 keypoint values, expected 3",
        ),
        (lambda d: d["annotations"][0].update(image_id=77), "annotation id 1 refers to image_id 77"),
        (
            lambda d: [a["keypoints"].__setitem__(slice(2, None, 3), [1, 1, 1]) for a in d["annotations"][:5]],
            "no keypoint of the train split is visible .* set occluded_visible=true",
        ),
        (lambda d: d.pop("categories"), "not a COCO-keypoints file"),
    ],
)
def test_files_of_another_kind_are_errors_at_start(tmp_path, spoil, message):
    with pytest.raises(DataError, match=message):
        every_instance(write_coco(tmp_path, spoil))


def test_unreadable_files_are_errors(tmp_path):
    with pytest.raises(DataError, match="nothing.json: cannot read"):
        every_instance(tmp_path / "nothing.json")
    (tmp_path / "broken.json").write_text('{"images": [,]}')
    with pytest.raises(DataError, match="broken.json: not valid JSON \\(line 1"):
        every_instance(tmp_path / "broken.json")
    path = write_coco(tmp_path)
    with pytest.raises(DataError, match="the config lists 2 keypoint names but the data has 3"):
        every_instance(path, names=["a", "b"])
    (tmp_path / "img0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="img0.png: corrupt"):
        every_instance(path)[0]


FIXTURES = [
    "300w",
    "aflw",
    "animalpose",
    "ap10k",
    "coco",
    "cofw",
    "fly",
    "horse10",
    "locust",
    "macaque",
    "mpii_trb",
    "onehand10k",
    "rhd",
    "wflw",
    "zebra",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_real_fixtures_load_with_their_keypoints_in_the_crop(name):
    folder = shared_data("coco_fixtures") / name.split("_")[0]
    path = folder / f"test_{name}.json"
    data = CocoKeypoints("train", {"train": str(path)}, occluded_visible=True)
    category = json.loads(path.read_text())["categories"][0]
    assert data.meta.num_keypoints == (len(category["keypoints"]) or data.meta.num_keypoints)
    for i in range(len(data)):
        sample = data[i]
        assert sample["image"].shape == (3, 128, 128)
        labelled = data.samples[i][2]
        # The crop holds the bbox and every labelled point (wflw's third box cuts off half the face).
        assert sample["visible"].tolist() == labelled.tolist()


def test_real_files_of_another_kind_are_refused():
    folder = shared_data("coco_fixtures") / "coco"
    with pytest.raises(DataError, match="has 399 keypoint values, expected 17"):
        CocoKeypoints("train", {"train": str(folder / "test_keypoint_partition_metric.json")})
    with pytest.raises(DataError, match="not a COCO-keypoints file"):
        CocoKeypoints("train", {"train": str(folder / "test_coco_det_AP_H_56.json")})


def test_real_person_fixture_names_and_pairs():
    data = CocoKeypoints("train", {"train": str(shared_data("coco_fixtures") / "coco" / "test_coco.json")})
    assert len(data) == 12  # 14 instances, 2 without labelled keypoints
    assert data.meta.names[:3] == ["nose", "left_eye", "right_eye"]
    assert len(data.meta.flip_pairs) == 8 and (1, 2) in data.meta.flip_pairs and (15, 16) in data.meta.flip_pairs
    assert (15, 13) in data.meta.skeleton  # COCO's first edge [16, 14], made 0-based
