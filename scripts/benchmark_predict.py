"""Speed of `kp predict` on this machine: images/s of the model alone (preprocessed batches through module.locate)
against the whole command (reading files, preprocessing in DataLoader workers, predicting, writing the CSV), for the
default UNet at 96×96 and 224×224, batch 1 and 32.

    python scripts/benchmark_predict.py [--images 256] [--workers 2] [--overlays]

The models are untrained (speed does not depend on the weights); the images are synthetic faces saved as PNG files
at twice the model's input size, so the command also letterboxes them down.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kp.build import build
from kp.data.synthetic import SyntheticKeypoints
from kp.inference.load import load
from kp.predict.predict import predict_inputs
from tests.helpers import compose_config

SIZES = (96, 224)
BATCHES = (1, 32)


def make_model(size: int, folder: Path) -> Path:
    _, module = build(
        compose_config(
            f"data.dataset.image_size={size}", "data.dataset.sizes={train:1,val:1,test:1}", output_dir=folder
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"unet_{size}.ckpt"
    torch.save({"state_dict": module.state_dict(), "kp": module.spec}, path)
    return path


def make_images(size: int, count: int, folder: Path) -> Path:
    folder.mkdir(parents=True)
    data = SyntheticKeypoints("test", sizes={"test": count}, image_size=2 * size)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:04d}.png"), data.load(i).image[:, :, ::-1])
    return folder


def model_only(checkpoint: Path, batch_size: int, count: int) -> float:
    predictor = load(checkpoint)
    batch = torch.rand(batch_size, *predictor.input_shape)
    with torch.inference_mode():
        predictor.module.locate(batch)  # warm-up
        started, done = time.perf_counter(), 0
        while done < count:
            predictor.module.locate(batch)
            done += batch_size
    return done / (time.perf_counter() - started)


def end_to_end(checkpoint: Path, images: Path, out: Path, batch_size: int, workers: int, overlays: bool) -> float:
    summary = predict_inputs(
        checkpoint,
        [str(images)],
        out,
        overlays=overlays,
        batch_size=batch_size,
        workers=workers,
        console=Console(quiet=True),
    )
    return summary["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overlays", action="store_true", help="also draw and write the overlay PNGs")
    args = parser.parse_args()
    table = Table(title=f"kp predict, images/s ({torch.get_num_threads()} torch threads, {args.workers} workers)")
    for column in ("model input", "batch", "model only", "end to end", "end to end / model only"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in SIZES:
            checkpoint = make_model(size, tmp / f"model{size}")
            images = make_images(size, args.images, tmp / f"images{size}")
            for batch_size in BATCHES:
                alone = model_only(checkpoint, batch_size, args.images)
                whole = end_to_end(
                    checkpoint, images, tmp / f"out{size}_{batch_size}", batch_size, args.workers, args.overlays
                )
                table.add_row(f"{size}×{size}", str(batch_size), f"{alone:.1f}", f"{whole:.1f}", f"{whole / alone:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
