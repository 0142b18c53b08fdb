"""A Kaggle facial-keypoints submission from a trained model (`kp submit`, kp/cli/submit.py)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from kp.data.facial import FacialKeypoints, read_test_images, write_submission
from kp.errors import DataError
from kp.inference.load import load
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
