"""Kaggle facial-keypoints submission from a trained run:

    python -m kp.submit logs/train/runs/<time> [--checkpoint path.ckpt] [--out submission.csv]

Run it from the checkout (it rebuilds the model with train.py's build() from the run's .hydra/config.yaml). It loads
the run's best checkpoint (metrics.json's best_checkpoint; else checkpoints/last.ckpt), predicts the images of the
data root's test.csv and writes `RowId,Location` for the rows IdLookupTable.csv asks for, clipped to [0, 96].
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from rich.progress import track
from torch.utils.data import DataLoader

from kp.checkpoint import best_checkpoint
from kp.data.facial import FacialKeypoints, KaggleTestImages, write_submission


def submit(run_dir: Path, out: Path, checkpoint: Path | None = None, batch_size: int = 64) -> Path:
    from train import build  # the top-level train.py: run from the checkout

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    if cfg.data.dataset._target_ != f"{FacialKeypoints.__module__}.{FacialKeypoints.__name__}":
        raise ValueError(f"{run_dir} was trained on {cfg.data.dataset._target_}: a Kaggle submission needs data=facial")
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # instead of Hydra's run-time value, unknown outside a Hydra run
    _, module = build(cfg)
    checkpoint = checkpoint or best_checkpoint(run_dir)
    module.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    module.eval()

    root = Path(cfg.data.dataset.root)
    images = KaggleTestImages(root, transform=instantiate(cfg.data.transforms.get("test")))
    predictions = []
    with torch.no_grad():
        for batch in track(DataLoader(images, batch_size=batch_size), description="predicting test.csv"):
            predictions.append(module.predict_keypoints(batch["image"])[0].numpy())
    written = write_submission(np.concatenate(predictions), images.image_ids, root / "IdLookupTable.csv", out)
    print(f"{written}: {len(images)} images from {checkpoint}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory of `python train.py data=facial ...`")
    parser.add_argument("--checkpoint", type=Path, help="default: the run's best checkpoint")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    args = parser.parse_args()
    submit(args.run_dir, args.out, args.checkpoint)


if __name__ == "__main__":
    main()
