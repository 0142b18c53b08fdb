"""The model zoo: every conf/model preset with every target builds and runs forward/backward with the right shapes,
overfits one batch, and works under channels_last + bf16 autocast; nonsense combinations fail at construction; the
stacked hourglass supervises every stack; the card model's count and visibility heads learn."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F

from kp.codecs import CoordsCodec, HeatmapCodec
from kp.config import CONF_DIR
from kp.data.synthetic import SyntheticKeypoints
from kp.losses import MaskedMSE, masked_mse
from kp.models.heads import soft_argmax
from tests.helpers import compose_config, random_weights

MODELS = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))
K = 5
TARGETS = [("heatmap", 1), ("heatmap", 2), ("heatmap", 4), ("coords", 1)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These convolutions are too small to gain from a second thread, and on a shared 2-core machine two spinning
    # threads per process made them 10-100 times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def model_config(name: str, *overrides: str):
    return random_weights(compose_config(f"model={name}", *overrides).model)


def build(name: str, target: str = "heatmap", stride: int = 2, input_shape=(3, 32, 32), overrides=()) -> nn.Module:
    return instantiate(model_config(name, *overrides))(
        num_keypoints=K, input_shape=input_shape, target=target, stride=stride
    )


def all_outputs(outputs: dict) -> list[torch.Tensor]:
    return [value for key, value in outputs.items() if key != "intermediate"] + outputs.get("intermediate", [])


def test_every_backbone_of_the_issue_has_a_preset():
    expected = {
        "simple_cnn",
        "simple_cnn_seed",
        "vgg",
        "resnet",
        "fcn",
        "unet",
        "hourglass",
        "hourglass_seed",
        "mobilenet",
        "cards_unet",
    }
    assert expected <= set(MODELS)


@pytest.mark.parametrize("target,stride", TARGETS, ids=[f"{t}{s}" for t, s in TARGETS])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes(name, target, stride):
    height, width = 32, 64  # not square: swapped axes would show
    net = build(name, target, stride, (3, height, width))
    outputs = net(torch.rand(2, 3, height, width))

    cfg = model_config(name)
    expected = (2, K, height // stride, width // stride) if target == "heatmap" else (2, K, 2)
    assert outputs["keypoints"].shape == expected
    n_stacks = cfg.backbone.get("n_stacks", 1)
    assert [stack.shape for stack in outputs.get("intermediate", [])] == [expected] * (n_stacks - 1)
    assert ("visibility" in outputs) == cfg.visibility_head and ("count" in outputs) == cfg.count_head
    if cfg.visibility_head:
        assert outputs["visibility"].shape == (2, K)
    if cfg.count_head:
        assert outputs["count"].shape == (2,)
    if target == "coords" and net.regression_head is None:  # integral head: a mean position inside the image
        assert outputs["keypoints"].abs().max() <= 1

    sum(output.float().square().mean() for output in all_outputs(outputs)).backward()
    no_gradient = [param for param, p in net.named_parameters() if p.grad is None]
    assert not no_gradient, f"parameters outside the graph: {no_gradient}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize(
    "heads",
    [
        ["model.visibility_head=true", "model.count_head=true"],
        [
            "model.visibility_head=true",
            "model.count_head=true",
            "model.head_features=bottleneck",
            "model.heatmap_pool=2",
            "model.head_hidden=16",
        ],
    ],
    ids=["pooled_features", "bottleneck_and_heatmaps"],
)
@pytest.mark.parametrize("name", MODELS)
def test_visibility_and_count_heads_attach_to_every_backbone(name, heads):
    net = build(name, "heatmap", 2, (3, 32, 32), tuple(heads))
    outputs = net(torch.rand(2, 3, 32, 32))
    assert outputs["visibility"].shape == (2, K) and outputs["count"].shape == (2,)
    (outputs["visibility"].sum() + outputs["count"].sum()).backward()
    assert net.global_head.count.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.backbone.parameters())


@pytest.mark.parametrize(
    "name,target,stride,input_shape,overrides,message",
    [
        ("unet", "coords", 1, (3, 32, 32), ["model.coords_head=regression"], "simple_cnn, vgg, resnet, mobilenet"),
        ("hourglass", "coords", 1, (3, 32, 32), ["model.coords_head=regression"], "use coords_head=integral"),
        ("resnet", "heatmap", 2, (3, 48, 48), [], "multiple of its stride 32"),
        ("unet", "heatmap", 3, (3, 48, 48), [], "power of two"),
        ("resnet", "heatmap", 2, (3, 32, 32), ["model.coords_head=bogus"], "('auto', 'regression', 'integral')"),
        ("simple_cnn", "coords", 1, (3, 32, 32), ["model.heatmap_pool=2", "model.count_head=true"], "heatmap_pool"),
        ("unet", "heatmap", 2, (3, 32, 32), ["model.head_features=neck"], "('features', 'bottleneck')"),
        ("unet", "segmentation", 1, (3, 32, 32), [], "('heatmap', 'coords')"),
        ("hourglass", "heatmap", 2, (3, 32, 32), ["model.backbone.stem_stride=3"], "(1, 2, 4)"),
        ("vgg", "coords", 1, (3, 32, 32), ["model.backbone.depths=[1,1]"], "one entry per stage"),
        ("fcn", "heatmap", 2, (3, 32, 32), ["model.backbone.skips=4"], "skips must be in [0, 3]"),
    ],
)
def test_nonsense_fails_at_construction_naming_the_valid_choices(name, target, stride, input_shape, overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(name, target, stride, input_shape, tuple(overrides))


def test_soft_argmax_follows_the_codecs_pixel_convention():
    heatmaps = torch.full((1, 2, 8, 16), -1e4)
    heatmaps[0, 0, 5, 3] = heatmaps[0, 1, 0, 15] = 0.0  # one-hot peaks at (x=3, y=5) and (x=15, y=0)
    pixels, _ = CoordsCodec(input_size=(32, 64)).decode({"keypoints": soft_argmax(heatmaps)})
    expected = HeatmapCodec((32, 64), stride=4).to_image(torch.tensor([[3.0, 5.0], [15.0, 0.0]]))
    torch.testing.assert_close(pixels[0], expected)


def test_simple_cnn_seed_is_the_seeds_network():
    net = build("simple_cnn_seed", "coords", 1, (1, 96, 96))
    convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [(conv.out_channels, conv.kernel_size) for conv in convs] == [
        (16, (7, 7)),
        (32, (5, 5)),
        (64, (3, 3)),
        (128, (3, 3)),
        (512, (3, 3)),
    ]
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.backbone.modules()) == 5
    linears = [m for m in net.regression_head.modules() if isinstance(m, nn.Linear)]
    assert [(linear.in_features, linear.out_features) for linear in linears] == [(512 * 3 * 3, 1024), (1024, 2 * K)]
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.6]


def test_hourglass_seed_is_one_full_resolution_hourglass():
    net = build("hourglass_seed", "heatmap", 1, (1, 32, 32), ("model.backbone.width=8",))
    assert net.backbone.out_stride == 1 and len(net.backbone.hourglasses) == 1
    (head,) = net.heatmap_heads  # a single 1×1 convolution to K heatmaps at the input's resolution
    assert len(head.layers) == 1 and head.layers[0].kernel_size == (1, 1) and head.layers[0].out_channels == K
    outputs = net(torch.rand(2, 1, 32, 32))
    assert outputs["keypoints"].shape == (2, K, 32, 32) and "intermediate" not in outputs


def random_targets(codec, batch: int, size: int, generator: torch.Generator) -> dict:
    keypoints = torch.rand(batch, K, 2, generator=generator) * (size - 1)
    visible = torch.rand(batch, K, generator=generator) > 0.2
    return codec.encode(keypoints, visible)


def test_stacked_hourglass_supervises_every_stack():
    net = build("hourglass", "heatmap", 2, (3, 32, 32), ("model.backbone.n_stacks=3", "model.backbone.width=8"))
    codec = HeatmapCodec((32, 32), stride=2, sigma=1.5)
    targets = random_targets(codec, 2, 32, torch.Generator().manual_seed(0))
    images = torch.rand(2, 3, 32, 32)

    outputs = net(images)
    stacks = [*outputs["intermediate"], outputs["keypoints"]]
    assert len(stacks) == 3
    loss = MaskedMSE(intermediate_weight=1.0)(outputs, targets)
    per_stack = [masked_mse(stack, targets["keypoints"], targets["keypoint_weights"]) for stack in stacks]
    torch.testing.assert_close(loss, sum(per_stack))
    loss.backward()
    for i, (head, hourglass) in enumerate(zip(net.heatmap_heads, net.backbone.hourglasses)):
        assert head.layers[-1].weight.grad.abs().sum() > 0, f"no gradient reaches stack {i}'s heatmap head"
        assert all(p.grad.abs().sum() > 0 for p in hourglass.parameters()), f"stack {i}'s hourglass is not trained"

    # The first stack's head learns from its own loss term only: weighted 0, it gets nothing.
    net.zero_grad()
    MaskedMSE(intermediate_weight=0.0)(net(images), targets).backward()
    assert net.heatmap_heads[0].layers[-1].weight.grad.abs().sum() == 0
    assert net.heatmap_heads[-1].layers[-1].weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def one_batch() -> dict:
    dataset = SyntheticKeypoints("train", image_size=32)
    samples = [dataset[i] for i in range(4)]
    return {key: torch.stack([sample[key] for sample in samples]) for key in ("image", "keypoints", "visible")}


@pytest.mark.parametrize("target", ["heatmap", "coords"])
@pytest.mark.parametrize("name", MODELS)
def test_overfits_one_batch(name, target, one_batch):
    steps = 60
    overrides = ["++model.dropout=0"]  # dropout fights memorisation, which is what this test is about
    if name == "hourglass_seed":
        overrides.append("model.backbone.width=16")  # full-resolution hourglass: narrower to stay quick
    codec = HeatmapCodec((32, 32), stride=2, sigma=1.5) if target == "heatmap" else CoordsCodec((32, 32))
    net = build(name, target, codec.stride, (3, 32, 32), tuple(overrides))
    targets = codec.encode(one_batch["keypoints"], one_batch["visible"])
    loss_term = MaskedMSE()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = loss_term(net(one_batch["image"]), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Predicting all zeros (empty heatmaps, or every keypoint at the image centre) must be beaten too, so that the
    # fall is not just the random initial output shrinking.
    all_zero = loss_term({"keypoints": torch.zeros_like(targets["keypoints"])}, targets).item()
    assert losses[-1] <= losses[0] / 10, f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {steps} steps"
    assert losses[-1] <= all_zero / 2, f"loss {losses[-1]:.4f} vs {all_zero:.4f} for all-zero outputs"


@pytest.mark.parametrize("target,stride", [("heatmap", 2), ("coords", 1)], ids=["heatmap2", "coords"])
@pytest.mark.parametrize("name", MODELS)
def test_channels_last_bf16_autocast(name, target, stride):
    net = build(name, target, stride)
    images = torch.rand(2, 3, 32, 32)
    net(images)  # one training-mode pass, so that BatchNorm's running statistics are not the identity
    net.eval()
    with torch.no_grad():
        reference = net(images)
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(images)
    for ref, out in zip(all_outputs(reference), all_outputs(mixed)):
        assert out.shape == ref.shape and torch.isfinite(out).all()
        assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-3
    if target == "heatmap":
        assert mixed["keypoints"].dtype == torch.bfloat16  # autocast did run the convolutions in bf16

    net.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sum(output.float().square().mean() for output in all_outputs(net(images)))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_cards_count_and_visibility_read_detached_heatmaps():
    net = build("cards_unet", "heatmap", 2)
    outputs = net(torch.rand(2, 3, 32, 32))
    (outputs["count"].sum() + outputs["visibility"].sum()).backward()
    # The heatmaps feed these heads detached: their loss trains the encoder and the heads, never the decoder.
    assert net.heatmap_heads[0].layers[-1].weight.grad is None
    assert all(p.grad is None for p in net.backbone.decoder.parameters())
    assert all(p.grad is not None for p in net.backbone.encoder.parameters())


def synthetic_tensors(split: str, count: int, occlusion_prob: float = 0.3) -> dict:
    dataset = SyntheticKeypoints(split, sizes={split: count}, image_size=32, occlusion_prob=occlusion_prob)
    samples = [dataset[i] for i in range(count)]
    return {key: torch.stack([sample[key] for sample in samples]) for key in samples[0] if key != "id"}


def train_cards_model(data: dict, steps: int, batch_size: int) -> nn.Module:
    """cards_unet (narrow) trained with the multitask loss config on the synthetic data's keypoints, visibility and
    dot count, Adam with a cosine schedule: batch i is images [i*batch_size, (i+1)*batch_size) modulo the data's
    size."""
    cfg = compose_config("model=cards_unet", "loss=multitask", "model.backbone.width=8")
    net = instantiate(cfg.model)(num_keypoints=K, input_shape=(3, 32, 32), target="heatmap", stride=2)
    terms = {name: instantiate(term) for name, term in cfg.loss.items()}
    codec = HeatmapCodec((32, 32), stride=2, sigma=1.5)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    size = len(data["image"])
    for step in range(steps):
        index = torch.arange(step * batch_size, (step + 1) * batch_size) % size
        batch = {key: value[index] for key, value in data.items()}
        targets = {
            **codec.encode(batch["keypoints"], batch["visible"]),
            "visible": batch["visible"],
            "count": batch["count"],
        }
        outputs = net(batch["image"])
        loss = sum(term.weight * term(outputs, targets) for term in terms.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval()


def test_cards_model_learns_the_synthetic_count():
    net = train_cards_model(synthetic_tensors("train", 4800), steps=150, batch_size=32)
    held_out = synthetic_tensors("val", 128)
    with torch.no_grad():
        count = net(held_out["image"])["count"]
    error = F.mse_loss(count, held_out["count"]).item()
    constant = held_out["count"].var(unbiased=False).item()  # the best constant prediction's error
    assert error < 0.5 * constant, f"held-out count MSE {error:.4f} vs {constant:.4f} for the best constant"


def test_cards_model_learns_visibility():
    data = synthetic_tensors("train", 32, occlusion_prob=1.0)  # many occluded keypoints
    net = train_cards_model(data, steps=150, batch_size=16)
    with torch.no_grad():
        logits = net(data["image"])["visibility"]
    visible = data["visible"].float()
    error = F.binary_cross_entropy_with_logits(logits, visible).item()
    rate = visible.mean()
    constant = F.binary_cross_entropy(rate.expand_as(visible), visible).item()
    assert 0.1 < rate < 0.95
    assert error < 0.5 * constant, f"visibility BCE {error:.3f} vs {constant:.3f} for the best constant"


def test_a_checkpoint_saved_before_the_grouped_head_options_still_loads(tmp_path):
    """Checkpoints written before KeypointNet took HeadOptions and FineTuning carry `_target_: kp.models.KeypointNet`
    with the options flat (the model config as it was): kp.load rebuilds the same net from them."""
    from kp.build import build as build_module
    from kp.inference.load import load
    from kp.models import KeypointNet
    from tests.helpers import TINY_DATA

    cfg = compose_config(*TINY_DATA, "model=cards_unet", "model.head_hidden=8", output_dir=tmp_path)
    _, module = build_module(cfg)
    spec = dict(module.spec)
    old_model = {**spec["model"], "_target_": "kp.models.KeypointNet"}  # as build() recorded it then
    assert {"visibility_head", "count_head", "heatmap_pool", "head_hidden", "init_from"} <= set(old_model)
    torch.save({"state_dict": module.state_dict(), "kp": {**spec, "model": old_model}}, tmp_path / "old.ckpt")
    net = load(tmp_path / "old.ckpt").module.net
    assert type(net) is KeypointNet and net.heatmap_pool == 4 and net.global_head is not None
    images = torch.rand(2, *spec["input_shape"])
    module.net.eval(), net.eval()
    with torch.no_grad():
        expected, rebuilt = module.net(images), net(images)
    assert set(rebuilt) == {"keypoints", "visibility", "count"}
    for key in rebuilt:
        torch.testing.assert_close(rebuilt[key], expected[key])


def test_a_misspelt_head_option_is_named():
    with pytest.raises(TypeError, match="head_widht"):
        build("unet", overrides=("+model.head_widht=32",))
