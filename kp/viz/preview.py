"""Look at a dataset as the model will see it: `kp preview data=<name> [options] [overrides]`."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from matplotlib.figure import Figure

from kp.codecs.heatmap import HeatmapCodec
from kp.data.base import KeypointMeta
from kp.data.datamodule import SPLITS

NAMED_UP_TO = 20  # keypoints named in the picture; more would hide the image


def draw_keypoints(ax, image: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor, meta: KeypointMeta) -> None:
    picture = image.permute(1, 2, 0).clamp(0, 1).numpy()
    ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
    colours = matplotlib.colormaps["hsv"](torch.linspace(0, 0.9, meta.num_keypoints).numpy())
    for i, j in meta.skeleton:
        if visible[i] and visible[j]:
            ax.plot(keypoints[[i, j], 0], keypoints[[i, j], 1], color="white", linewidth=0.7, alpha=0.7)
    shown = visible.nonzero().flatten().tolist()
    ax.scatter(keypoints[shown, 0], keypoints[shown, 1], s=14, c=colours[shown], edgecolors="black", linewidths=0.4)
    if meta.num_keypoints <= NAMED_UP_TO:
        for k in shown:
            ax.annotate(
                meta.names[k],
                keypoints[k].tolist(),
                fontsize=5,
                color=colours[k],
                xytext=(2, 2),
                textcoords="offset points",
            )
    hidden = [meta.names[k] for k in range(meta.num_keypoints) if not visible[k]]
    caption = f"{len(shown)}/{meta.num_keypoints} visible"
    if hidden:
        caption += ("; invisible: " + ", ".join(hidden)) if len(hidden) <= 4 else f"; {len(hidden)} invisible"
    ax.set_xlabel(caption, fontsize=6)


def preview(cfg, split: str = "train", n: int = 5, out: str | Path | None = None) -> Path:
    """The datamodule's setup is training's, with every check it makes; what it leaves out is listed in
    <out>.data_issues.csv beside the picture (file, row, reason), as a run's data_issues.csv."""
    data_name = HydraConfig.get().runtime.choices.get("data", "data")
    path = Path(out or f"preview_{data_name}.png")
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    for name in SPLITS:
        print(f"{name}: {len(datamodule.splits[name])} images")
    if datamodule.issues:
        listed = path.with_suffix(".data_issues.csv")
        datamodule.write_issues(listed)
        print(f"{len(datamodule.issues)} bad sample(s) or point(s) left out: listed in {listed}")
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
    fig = Figure(figsize=(5, 2.5 * len(samples)))
    axes = fig.subplots(len(samples), 2, squeeze=False)
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
    fig.savefig(path, dpi=130)
    print(f"wrote {path}")
    return path
