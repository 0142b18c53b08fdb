"""The cases of cases.py as the commands that load data meet them: the Hydra overrides that point a data config at a
case's folder, with the three splits the commands build (a third of the samples each), and the cases each command
runs in tests/test_bad_inputs.py.

Every command sets its data up through the datamodule training uses (kp.data.datamodule), so a case ends the same
way in each: the loader's one-line error, or its skips counted and listed. What differs is how much a command loads:
`kp preview` decodes only the samples it draws, so an image that is found corrupt only when decoded is met by train,
evaluate and doctor, which read every sample (train and evaluate in DataLoader workers).
"""

from __future__ import annotations

from pathlib import Path

from kp.data.cat import ALL_NAMES as CAT_NAMES
from tests.bad_inputs.cases import CASES_BY_NAME, Case

THIRDS = "{train: 0.34, val: 0.33, test: 0.33}"  # one sample per split where a skip leaves three
# A small model, every sample in one batch per split, read in a DataLoader worker (whose errors torch wraps).
QUICK = [
    "model=simple_cnn",
    "model.backbone.widths=[4,4,4,4]",
    "augment=none",
    "data.batch_size=4",
    "data.num_workers=1",
    "data.persistent_workers=false",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def data_overrides(case: Case, root: Path) -> list[str]:
    """The overrides of `kp preview`, `kp doctor`, `kp train` and `kp evaluate RUN` for the case's data in root."""
    dlc = [
        "data=dlc",
        f"data.dataset.project={root}",
        "data.dataset.width=64",  # a multiple of the model's stride
        "data.dataset.height=32",
        "data.dataset.split_by=frame",
        f"data.dataset.fractions={THIRDS}",
    ]
    ann = root / "ann.json"
    return {
        "facial": [
            "data=facial",
            f"data.dataset.root={root}",
            f"data.dataset.cache_dir={root / 'cache'}",
            "data.dataset.subset=all",
            "data.dataset.val_fraction=0.25",
            "data.dataset.test_fraction=0.25",
        ],
        "facial68": [
            "data=facial68",
            f"data.dataset.root={root}",
            "data.dataset.val_fraction=0.25",
            "data.dataset.test_fraction=0.25",
        ],
        "cards": [
            "data=cards",
            f"data.dataset.root={root}",
            "data.dataset.width=64",  # a multiple of the model's stride
            "data.dataset.height=32",
            f"data.dataset.fractions={THIRDS}",
        ],
        "cat": [
            "data=cat",
            f"data.dataset.root={root}",
            f"data.dataset.keypoints=[{','.join(CAT_NAMES)}]",
            "data.dataset.folders=[CAT_00,CAT_01]"
            if case.kind == "image_in_two_folders"
            else "data.dataset.folders=[CAT_00]",
            "data.dataset.preprocess=none",
            "data.dataset.fractions=[0.34,0.33,0.33]",
        ],
        "dlc": dlc,
        "dlc_single": [*dlc, "data.dataset.csv_file=CollectedData.csv"],
        "coco": [
            "data=coco",
            f"data.dataset.ann_file={{train: {ann}, val: {ann}, test: {ann}}}"
            if case.kind == "same_file_for_every_split"
            else f"data.dataset.ann_file={ann}",
            "data.dataset.size=32",
            f"data.dataset.fractions={THIRDS}",
        ],
    }[case.fmt.name]


def _cases(*names: str) -> list[Case]:
    return [CASES_BY_NAME[name] for name in names]


# Found when an image is decoded: the commands that read every sample.
AT_LOAD = _cases(
    "cards-truncated_image",
    "coco-random_bytes_image_at_load",
    "cat-truncated_image",
    "dlc-truncated_image",
)
# Found while the data is set up: every command.
AT_SETUP = _cases(
    "cat-random_bytes_image_at_start",
    "dlc_single-zero_byte_image_at_start",
    "cat-decompression_bomb_header",
    "facial68-file_name_too_long",
    "cards-file_name_too_long",
    "dlc-file_name_too_long",
    "coco-file_name_too_long",
    "facial-cache_dir_is_a_file",
    "cat-image_in_two_folders_other_labels",
    "coco-image_listed_twice_other_labels",
    "facial-repeated_row_other_labels",
    "coco-same_image_in_two_splits",
    "dlc-same_image_in_two_splits",
    "coco-same_file_for_every_split",
    "facial-same_image_in_two_splits",
    "cat-negative_coordinate",
    "coco-negative_coordinate",
    "dlc-negative_coordinate",
    "facial68-negative_coordinate",
    "facial-negative_coordinate",
    "coco-annotation_of_another_category",
    "coco-annotation_of_an_unknown_category",
    "cat-every_label_broken",
    "cat-normalised_coordinates",
    "dlc-header_only",
    "dlc_single-every_keypoint_unlabelled",
    "facial68-same_image_in_two_splits",
)
PREVIEW = AT_SETUP
DOCTOR = _cases(
    "cards-zero_byte_image_at_load",
    "coco-image_above_size_limit_at_load",
    "cat-truncated_image",
    "facial68-negative_coordinate",
    "coco-image_listed_twice_other_labels",
    "dlc-header_only",
    "cards-file_name_too_long",
)
TRAIN = [
    *AT_LOAD,
    *_cases(
        "cat-image_in_two_folders_other_labels",
        "coco-annotation_of_another_category",
        "dlc-negative_coordinate",
        "facial-cache_dir_is_a_file",
    ),
]
# kp evaluate RUN data=... on another copy of the data the run's model fits (the same keypoints and image size).
EVALUATE = _cases(
    "coco-zero_byte_image_at_load",
    "coco-same_file_for_every_split",
    "coco-negative_coordinate",
    "dlc-truncated_image",
    "dlc-file_name_too_long",
    "dlc-every_keypoint_unlabelled",
)


# Mistakes in overrides, the same for every command that takes them (kp train, sweep, evaluate, doctor, preview): the
# override as typed, and what its one line must say (the nearest valid names).
MISTAKES = {
    "misspelt_key": ("data.datset.root=/x", "no such key", "did you mean data.dataset.root?"),
    "misspelt_option": ("model=unett", "no such option in model", "did you mean unet?"),
    "bad_value": ("data.batch_size=0", "expected 1 or more", ""),
}
