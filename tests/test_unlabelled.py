"""Unlabelled video in training: the clip cache, the combined loader, one step with the unlabelled terms, the refusals
of bad input, and the mirror_mouse_semi preset on the real data."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.utilities import CombinedLoader

from kp.build import build
from kp.data.unlabelled import ClipDataset, cache_clips, find_videos
from kp.errors import ConfigError, InputError
from kp.train.loop import train
from tests.helpers import ROOT, TINY_DATA, compose_config, random_weights, shared_data

STEP = 8  # grey level between consecutive frames of the test video: frame i is uniformly 8·i inside its border


def write_video(path, frames: int, size=(48, 24)) -> None:
    """An mp4 of `frames` frames, width × height = size, frame i uniformly grey 8·i (its number, read back from the
    pixels after compression)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), STEP * i, np.uint8))
    writer.release()


def frame_numbers(frames: np.ndarray) -> list[int]:
    """The number of each cached frame N×H×W×C, read off the grey level of its centre."""
    h, w = frames.shape[1:3]
    return [round(float(frame[h // 2 - 2 : h // 2 + 2, w // 4 : 3 * w // 4].mean()) / STEP) for frame in frames]


def test_the_cache_holds_every_frame_letterboxed_in_order_and_clips_are_consecutive(tmp_path):
    write_video(tmp_path / "v.mp4", 20)
    frames, runs = cache_clips([tmp_path / "v.mp4"], fit_size=(32, 32), channels=1, clip_length=4, frames=100)
    assert frames.shape == (20, 32, 32, 1) and frames.dtype == np.uint8
    assert frame_numbers(frames) == list(range(20))
    assert runs == [(0, 20)]
    assert frames[:, :7].max() == 0 and frames[:, 25:].max() == 0  # 48×24 letterboxed into 32×32: 8 rows of border
    clips = ClipDataset(frames, runs, clip_length=4)
    assert len(clips) == 17  # every start with 4 frames after it
    clip = clips[5]
    assert clip.shape == (4, 1, 32, 32) and clip.dtype == torch.float32 and clip.max() <= 1
    assert frame_numbers((clip.permute(0, 2, 3, 1).numpy() * 255).round()) == [5, 6, 7, 8]


def test_a_video_longer_than_its_share_keeps_evenly_spaced_runs(tmp_path):
    write_video(tmp_path / "v.mp4", 20)
    frames, runs = cache_clips([tmp_path / "v.mp4"], fit_size=(32, 32), channels=3, clip_length=4, frames=8)
    assert frames.shape == (8, 32, 32, 3)
    assert frame_numbers(frames) == [0, 1, 2, 3, 16, 17, 18, 19]
    assert runs == [(0, 4), (4, 8)]
    clips = ClipDataset(frames, runs, clip_length=4, length=5)
    assert clips.starts.tolist() == [0, 4] and len(clips) == 5  # no clip spans the gap; repeated to the length asked
    assert torch.equal(clips[2], clips[0])


def test_bad_videos_fail_in_one_line(tmp_path):
    write_video(tmp_path / "short.mp4", 3)
    with pytest.raises(InputError, match=r"short.mp4: 3 frames, shorter than one clip of .*clip_length=8") as error:
        cache_clips([tmp_path / "short.mp4"], (32, 32), 3, clip_length=8)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(InputError, match="text.mp4: OpenCV cannot open this video") as error2:
        cache_clips([tmp_path / "text.mp4"], (32, 32), 3)
    with pytest.raises(InputError, match="data.unlabelled.videos: no such file: .*gone.mp4") as error3:
        find_videos([str(tmp_path / "gone.mp4")], None)
    with pytest.raises(InputError, match="no video in .*videos"):
        find_videos("auto", str(tmp_path))
    with pytest.raises(ConfigError, match="auto takes the videos/ folder of data.dataset.project"):
        find_videos("auto", None)
    for raised in (error, error2, error3):
        assert "\n" not in str(raised.value)


def semi_config(tmp_path, *overrides):
    write_video(tmp_path / "v.mp4", 24, size=(64, 64))
    return compose_config(
        *TINY_DATA,
        "model=simple_cnn",
        "loss=semi_supervised",
        "data.dataset.occlusion_prob=0",  # every keypoint labelled: pose_pca needs complete frames
        f"data.unlabelled.videos=[{tmp_path / 'v.mp4'}]",
        "data.unlabelled.clip_length=4",
        "data.unlabelled.clips_per_step=2",
        "loss.temporal.warmup_start=0",
        "loss.pose_pca.warmup_start=0",
        *overrides,
        output_dir=tmp_path / "run",
    )


def test_the_training_loader_carries_labelled_batches_and_clips(tmp_path):
    datamodule, module = build(semi_config(tmp_path))
    loader = datamodule.train_dataloader()
    assert isinstance(loader, CombinedLoader)
    iter(loader)
    assert len(loader) == 4  # the labelled loader's 64 / 16 batches set the epoch
    batch, _, _ = next(iter(loader))
    assert batch["labelled"]["image"].shape == (16, 3, 64, 64)
    assert batch["unlabelled"].shape == (2, 4, 3, 64, 64)
    assert module.losses["pose_pca"].subspace is not None  # fitted from the training labels at build


@pytest.mark.parametrize("target", ["heatmap", "coords"])  # soft_argmax, and the coordinates codec's decode
def test_one_step_with_clips_gives_finite_losses_and_gradients_from_the_unlabelled_terms(tmp_path, target):
    cfg = semi_config(tmp_path, f"target={target}", "loss.temporal.epsilon=0", "loss.pose_pca.percentile=0")
    datamodule, module = build(cfg)
    batch, _, _ = next(iter(datamodule.train_dataloader()))
    clips = batch["unlabelled"]
    unlabelled = module._unlabelled_losses(clips)
    assert set(unlabelled) == {"temporal", "pose_pca"}
    assert all(weight == pytest.approx(1e-5 / 20) for weight, _ in unlabelled.values())  # epoch 0: 1/20 of 1e-5
    total = sum(weight * value for weight, value in unlabelled.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    grads = [p.grad for p in module.net.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0  # the clips' terms reach the net's weights
    module.eval()  # no dropout: the same outputs on each pass
    with torch.no_grad():
        loss = module.training_step(batch, 0)  # labelled and unlabelled together
        supervised = module._loss(module(batch["labelled"]["image"]), batch["labelled"], "train")
        unlabelled = sum(weight * value for weight, value in module._unlabelled_losses(clips).values())
    assert torch.isfinite(loss) and loss == pytest.approx(float(supervised + unlabelled), rel=1e-5)


def test_under_bf16_autocast_the_unlabelled_terms_stay_finite_and_float32(tmp_path):
    datamodule, module = build(semi_config(tmp_path, "loss.temporal.epsilon=0", "loss.pose_pca.percentile=0"))
    batch, _, _ = next(iter(datamodule.train_dataloader()))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what precision=bf16-mixed runs the step under
        unlabelled = module._unlabelled_losses(batch["unlabelled"])
    for _, value in unlabelled.values():
        assert value.dtype == torch.float32 and torch.isfinite(value)
    sum(weight * value for weight, value in unlabelled.values()).backward()
    assert sum(p.grad.abs().sum() for p in module.net.parameters() if p.grad is not None) > 0


def test_before_the_warm_up_starts_the_clips_cost_nothing(tmp_path):
    cfg = semi_config(tmp_path, "loss.temporal.warmup_start=1", "loss.pose_pca.warmup_start=1")
    datamodule, module = build(cfg)
    batch, _, _ = next(iter(datamodule.train_dataloader()))
    calls = []
    module.net.register_forward_hook(lambda net, inputs, outputs: calls.append(len(inputs[0])))
    assert module._unlabelled_losses(batch["unlabelled"]) == {}  # epoch 0 < warmup_start
    assert calls == []  # no forward pass on the clips


def test_unlabelled_terms_without_video_fail_in_one_line(tmp_path):
    cfg = compose_config(*TINY_DATA, "model=simple_cnn", "loss=semi_supervised", "data.unlabelled=null")
    with pytest.raises(ConfigError, match="need unlabelled video .* data.unlabelled.videos is not set"):
        build(cfg)
    cfg = compose_config(*TINY_DATA, "model=simple_cnn", "loss=semi_supervised")  # auto: synthetic data has no project
    with pytest.raises(ConfigError, match="auto takes the videos/ folder"):
        build(cfg)


def test_without_unlabelled_terms_the_video_is_not_read(tmp_path):
    cfg = compose_config(*TINY_DATA, "model=simple_cnn", f"data.unlabelled.videos=[{tmp_path / 'gone.mp4'}]")
    datamodule, _ = build(cfg)
    assert not isinstance(datamodule.train_dataloader(), CombinedLoader)


@pytest.mark.slow
def test_mirror_mouse_semi_trains_on_the_real_video(tmp_path):
    shared_data("mirror_mouse")
    cfg = random_weights(
        compose_config(
            "experiment=mirror_mouse_semi",
            "debug=limit",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "data.unlabelled.frames=64",
            "loss.temporal.warmup_start=0",  # the terms count from the first epoch
            "loss.pose_pca.warmup_start=0",
            "loss.multiview_pca.warmup_start=0",
            "data.num_workers=0",
            "callbacks.progress_bar=null",
            "callbacks.model_summary=null",
            output_dir=tmp_path,
        )
    )
    train(cfg)
    log = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    for term in ("temporal", "pose_pca", "multiview_pca", "keypoints"):
        values = log[f"train/loss_{term}"].dropna()
        assert len(values) == 1 and np.isfinite(values).all()
    assert np.isfinite(json.loads((tmp_path / "metrics.json").read_text())["test/rmse"])


DDP_SCRIPT = """
import json, sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, {root!r})
from kp.build import build
from tests.helpers import TINY_DATA, compose_config
from tests.test_unlabelled import frame_numbers

out, video = Path(sys.argv[1]), sys.argv[2]
L.seed_everything(0)  # the same random stream in both processes: only the distributed sampler tells their clips apart
cfg = compose_config(
    *TINY_DATA, "model=simple_cnn", "loss=semi_supervised", "data.dataset.occlusion_prob=0",
    f"data.unlabelled.videos=[{{video}}]", "data.unlabelled.clip_length=4", "data.unlabelled.clips_per_step=2",
    "loss.temporal.warmup_start=0", "loss.pose_pca.warmup_start=0", output_dir=out,
)
datamodule, module = build(cfg)


class Record(Callback):
    starts = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        first_frames = batch["unlabelled"][:, 0].permute(0, 2, 3, 1).numpy() * 255
        self.starts += frame_numbers(first_frames.round())

    def on_train_end(self, trainer, pl_module):
        (out / f"rank{{trainer.global_rank}}.json").write_text(json.dumps(self.starts))


trainer = L.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_val_batches=0, logger=False,
    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
)
trainer.fit(module, datamodule=datamodule)
"""


@pytest.mark.slow
def test_each_ddp_process_gets_its_own_clips(tmp_path):
    write_video(tmp_path / "v.mp4", 25, size=(64, 64))  # 22 clip starts: the two processes' halves share none
    script = tmp_path / "ddp_clips.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT)))
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(tmp_path / "v.mp4")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(starts) for starts in ranks] == [4, 4]  # 2 steps (64 images / 16 / 2 processes) × 2 clips
    assert all(0 <= start <= 21 for starts in ranks for start in starts)
    assert not set(ranks[0]) & set(ranks[1])  # each process its own clips
