"""Look at a dataset as the model will see it: `python -m kp.data.preview data=<name> [options] [overrides]`.

Composes conf/train.yaml with the given Hydra overrides (so `augment=none`, `target=heatmap target.sigma=1`,
`data.dataset.subset=all` all apply), prints the size of each split and writes a PNG: one row per sample, the image
with its keypoints (coloured by index, named when there are few, skeleton between visible ones; invisible keypoints
are listed under the picture), and beside it the image under its target heatmaps (all keypoints' maximum), drawn by
the configured heatmap codec (a Gaussian one when the target is coordinates).

Options: --split train|val|test (default train, augmented as in training), --n samples (default 5, what the cat seed
shows), --out file (default preview_<data>.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from kp.codecs.heatmap import HeatmapCodec  # noqa: E402
from kp.data.base import KeypointMeta  # noqa: E402
from kp.data.datamodule import SPLITS  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
NAMED_UP_TO = 20  # keypoints named in the picture; more would hide the image


def compose_train_config(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # paths use ${hydra:runtime.cwd}
    return cfg


def draw_keypoints(ax, image: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor, meta: KeypointMeta) -> None:
    picture = image.permute(1, 2, 0).clamp(0, 1).numpy()
    ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
    colours = plt.cm.hsv(torch.linspace(0, 0.9, meta.num_keypoints).numpy())
    for i, j in meta.skeleton:
        if visible[i] and visible[j]:
            ax.plot(keypoints[[i, j], 0], keypoints[[i, j], 1], color="white", linewidth=0.7, alpha=0.7)
    shown = visible.nonzero().flatten().tolist()
    ax.scatter(keypoints[shown, 0], keypoints[shown, 1], s=14, c=colours[shown], edgecolors="black", linewidths=0.4)
    if meta.num_keypoints <= NAMED_UP_TO:
        for k in shown:
            ax.annotate(meta.names[k], keypoints[k].tolist(), fontsize=5, color=colours[k], xytext=(2, 2),
                        textcoords="offset points")
    hidden = [meta.names[k] for k in range(meta.num_keypoints) if not visible[k]]
    caption = f"{len(shown)}/{meta.num_keypoints} visible"
    if hidden:
        caption += ("; invisible: " + ", ".join(hidden)) if len(hidden) <= 4 else f"; {len(hidden)} invisible"
    ax.set_xlabel(caption, fontsize=6)


def preview(cfg, split: str = "train", n: int = 5, out: str | Path | None = None) -> Path:
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    for name in SPLITS:
        print(f"{name}: {len(datamodule.splits[name])} images")
    data = datamodule.splits[split]
    samples = [data[i] for i in range(min(n, len(data)))]
    channels, height, width = samples[0]["image"].shape
    codec = instantiate(cfg.target)(input_size=(height, width))
    if codec.name != "heatmap":  # coordinate targets: show what a heatmap target would be
        codec = HeatmapCodec((height, width), stride=1, sigma=2.0)
    keypoints = torch.stack([s["keypoints"] for s in samples])
    visible = torch.stack([s["visible"] for s in samples])
    heatmaps = codec.encode(keypoints, visible)["keypoints"].amax(1)  # B×h×w
    heatmaps = torch.nn.functional.interpolate(heatmaps[:, None], size=(height, width), mode="nearest")[:, 0]

    meta = data.meta
    data_name = HydraConfig.get().runtime.choices.get("data", "data")
    fig, axes = plt.subplots(len(samples), 2, figsize=(5, 2.5 * len(samples)), squeeze=False)
    for row, (sample, heatmap) in enumerate(zip(samples, heatmaps)):
        draw_keypoints(axes[row, 0], sample["image"], sample["keypoints"], sample["visible"], meta)
        grey = sample["image"].mean(0).numpy()
        axes[row, 1].imshow(grey, cmap="gray", vmin=0, vmax=1)
        axes[row, 1].imshow(heatmap.numpy(), cmap="magma", alpha=0.6, vmin=0, vmax=1)
        axes[row, 1].set_xlabel(f"target heatmaps (max over {meta.num_keypoints})", fontsize=6)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"data={data_name} · {split} · {width}×{height}×{channels} · {len(data)} images", fontsize=8)
    fig.tight_layout()
    path = Path(out or f"preview_{data_name}.png")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Other arguments are Hydra overrides.")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--out", default=None)
    parser.add_argument("--verbose", action="store_true", help="tracebacks instead of one-line errors")
    options, overrides = parser.parse_known_args(argv)
    from kp.errors import user_errors_in_one_line  # imports the model code: not at the top of a data module

    with user_errors_in_one_line(options.verbose):
        preview(compose_train_config(overrides + ["data.num_workers=0"]), options.split, options.n, options.out)


if __name__ == "__main__":
    main()
