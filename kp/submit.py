"""Kaggle facial-keypoints submission from a trained model:

    python -m kp.submit RUN_OR_CHECKPOINT [--data-dir DIR] [--flip] [--out submission.csv]

Loads the model with kp.load (a run's best checkpoint, or a checkpoint file), predicts the images of DIR/test.csv and
writes `RowId,Location` for the rows DIR/IdLookupTable.csv asks for, clipped to [0, 96]. DIR defaults to the run's
data.dataset.root (from its .hydra/config.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from kp.data.facial import FacialKeypoints, read_test_images, write_submission
from kp.data.io import DataError
from kp.errors import user_errors_in_one_line
from kp.inference import load
from kp.run_dir import RunDir


def _data_dir(model: Path) -> Path:
    config = RunDir(model).config if model.is_dir() else None
    if config is None or not config.is_file():
        raise DataError(f"{model}: give --data-dir (the folder of test.csv and IdLookupTable.csv)")
    return Path(OmegaConf.load(config).data.dataset.root)


def submit(model: Path, out: Path, data_dir: Path | None = None, flip: bool = False) -> Path:
    predictor = load(model)
    trained_on = f"{FacialKeypoints.__module__}.{FacialKeypoints.__name__}"
    if predictor.spec.dataset != trained_on:
        raise DataError(f"{model} was trained on {predictor.spec.dataset}: a Kaggle submission needs data=facial")
    root = Path(data_dir) if data_dir else _data_dir(Path(model))
    image_ids, images = read_test_images(root)
    keypoints, _ = predictor.predict(list(images), flip=flip)
    written = write_submission(keypoints, image_ids, root / "IdLookupTable.csv", out)
    print(f"{written}: {len(images)} images from {predictor.checkpoint}")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kp submit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a run directory of `python train.py data=facial ...` or a checkpoint")
    parser.add_argument("--data-dir", type=Path, help="the Kaggle files (default: the run's data.dataset.root)")
    parser.add_argument("--flip", action="store_true", help="test-time flip")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    args = parser.parse_args(argv)
    with user_errors_in_one_line(args.verbose):
        submit(args.model, args.out, args.data_dir, args.flip)


if __name__ == "__main__":
    main()
