"""Images per second of the training DataLoader (decoding + augmentation + collation) for each conf/data/*.yaml at
its
default size: `python scripts/benchmark_loaders.py [--workers 0 2] [--images 640] [name ...]`.

Each dataset is composed as `python train.py data=<name>` would (so its default augmentation is on) and its training
loader is read until `--images` images have passed, the first batch (worker start-up) not counted; tiny training
splits are read for several epochs. An untimed pass first brings the files into the OS cache, as from the second
epoch of training on. Datasets whose files are absent are skipped with the reason. No real CAT images
exist here: `cat` runs on a stand-in, the facial68 photos in the CAT layout (same JPEG decoding, similar sizes).
Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kp.config import CONF_DIR, compose_config  # noqa: E402
from kp.data.cat import FOLDERS  # noqa: E402
from kp.data.io import DataError  # noqa: E402


def stand_in_cats(facial68: Path, into: Path) -> Path:
    """The facial68 photos as a CAT tree: images linked, .cat files from their eyes, mouth, brows and jaw."""
    with open(facial68 / "keypoints.csv") as file:
        rows = list(csv.reader(file))[1:]
    for index, row in enumerate(rows):
        folder = into / FOLDERS[index * len(FOLDERS) // len(rows)]
        folder.mkdir(parents=True, exist_ok=True)
        points = np.array(row[1:], np.float32).reshape(68, 2)
        cat = [
            points[42:48].mean(0),
            points[36:42].mean(0),
            points[48:68].mean(0),
            points[16],
            points[26],
            points[24],
            points[0],
            points[17],
            points[19],
        ]
        image = folder / f"{index:08d}_000.jpg"
        image.symlink_to(facial68 / "images" / row[0])
        image.with_name(image.name + ".cat").write_text("9 " + " ".join(f"{v:.0f}" for v in np.ravel(cat)) + " ")
    return into


def images_per_second(overrides: list[str], images: int) -> tuple[str, int, float]:
    datamodule = instantiate(compose_config(overrides).data)
    loader = datamodule.train_dataloader()
    shape = "×".join(map(str, datamodule.input_shape))
    seen, start = 0, None
    while seen < images:
        for batch in loader:
            if start is None:  # the first batch pays for starting the workers
                start = time.perf_counter()
                continue
            seen += len(batch["image"])
            if seen >= images:
                break
    return shape, len(datamodule.splits["train"]), seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="datasets (default: every conf/data/*.yaml)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values to measure")
    parser.add_argument("--images", type=int, default=640, help="images read per measurement")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads of the main process (collation runs there with 0 workers)",
    )
    options = parser.parse_args()
    if options.torch_threads:
        torch.set_num_threads(options.torch_threads)
    names = options.names or sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
    print("| data | input C×H×W | training images | " + " | ".join(f"{w} workers" for w in options.workers) + " |")
    print("|---|---|---|" + "---|" * len(options.workers))
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            overrides = [f"data={name}"]
            if name == "cat":
                facial68 = (Path(compose_config([]).paths.data_dir) / "facial68").resolve()
                if facial68.exists():
                    overrides.append(f"data.dataset.root={stand_in_cats(facial68, Path(scratch) / 'cats')}")
            rates = []
            try:
                images_per_second(
                    overrides + ["data.num_workers=0"], options.images
                )  # untimed: files into the OS cache
                for workers in options.workers:
                    shape, size, rate = images_per_second(
                        overrides + [f"data.num_workers={workers}", f"data.persistent_workers={workers > 0}"],
                        options.images,
                    )
                    rates.append(f"{rate:.0f}")
            except (DataError, FileNotFoundError) as error:
                print(f"| {name} | skipped: {error} |")
                continue
            print(f"| {name} | {shape} | {size} | " + " | ".join(rates) + " |", flush=True)


if __name__ == "__main__":
    main()
