"""Trunks (shapes, stems, feature_dim), the projector, and the torchvision-compatible trunk export."""

import pytest
import torch
import torchvision
from torch import nn

from ablate.config.trial import ModelConfig, ProjectorConfig
from ablate.models.projector import Projector
from ablate.models.trunks import build_trunk, export_state_dict, load_trunk


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ResNet forwards are ~50x slower with 2 threads on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scramble_bn(trunk, seed=0):
    """Non-default BN statistics and affine weights, so a lost buffer or parameter changes y."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return trunk.eval()


def test_convnet_gives_width_features_on_16px_digits():
    trunk = build_trunk(ModelConfig(trunk="convnet", width=32), in_channels=1)
    assert trunk.feature_dim == 32
    assert trunk(torch.randn(4, 1, 16, 16)).shape == (4, 32)


@pytest.mark.parametrize(
    "stem, channels, size", [("imagenet", 3, 32), ("cifar", 3, 8), ("cifar", 1, 8), ("imagenet", 1, 32)]
)
def test_resnet18_trunk_is_the_512d_avgpool_feature(stem, channels, size):
    trunk = build_trunk(ModelConfig(trunk="resnet18", stem=stem), in_channels=channels)
    assert isinstance(trunk, torchvision.models.ResNet) and isinstance(trunk.fc, nn.Identity)
    assert trunk.feature_dim == 512 and trunk.conv1.in_channels == channels
    if stem == "cifar":
        assert trunk.conv1.kernel_size == (3, 3) and trunk.conv1.stride == (1, 1) and trunk.conv1.bias is None
        assert isinstance(trunk.maxpool, nn.Identity)
    else:
        assert trunk.conv1.kernel_size == (7, 7) and isinstance(trunk.maxpool, nn.MaxPool2d)
    assert trunk(torch.randn(2, channels, size, size)).shape == (2, 512)


def test_resnet50_trunk_has_2048d_features():
    trunk = build_trunk(ModelConfig(trunk="resnet50", stem="cifar"), in_channels=3)
    assert trunk.feature_dim == 2048 and isinstance(trunk.fc, nn.Identity)


def test_exported_resnet18_loads_strictly_into_torchvision_and_gives_the_same_features():
    trunk = scramble_bn(build_trunk(ModelConfig(trunk="resnet18"), in_channels=3))
    x = torch.randn(2, 3, 32, 32)
    state = export_state_dict(trunk)
    assert not any(k.startswith("fc.") for k in state) and all(v.device.type == "cpu" for v in state.values())
    model = torchvision.models.resnet18()
    model.fc = nn.Identity()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), trunk(x))

    # With a blank head: loads as is into resnet18(num_classes=N); the head outputs 0.
    headed = torchvision.models.resnet18(num_classes=10)
    headed.load_state_dict(export_state_dict(trunk, head_classes=10), strict=True)
    with torch.no_grad():
        assert torch.equal(headed.eval()(x), torch.zeros(2, 10))
        headed.fc = nn.Identity()
        assert torch.equal(headed(x), trunk(x))


def test_export_is_a_copy_not_a_view_of_the_live_weights():
    trunk = build_trunk(ModelConfig(trunk="convnet", width=8), in_channels=1)
    state = export_state_dict(trunk)
    before = state["features.0.weight"].clone()
    with torch.no_grad():
        trunk.features[0].weight.add_(1.0)
    assert torch.equal(state["features.0.weight"], before)


@pytest.mark.parametrize(
    "cfg, channels, size",
    [(ModelConfig(trunk="resnet18", stem="cifar"), 1, 8), (ModelConfig(trunk="convnet", width=16), 1, 16)],
)
def test_load_trunk_inverts_export(cfg, channels, size):
    trunk = scramble_bn(build_trunk(cfg, channels), seed=1)
    back = load_trunk(export_state_dict(trunk, head_classes=10 if cfg.trunk != "convnet" else None), cfg, channels)
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        assert torch.equal(back.eval()(x), trunk(x))


def test_cifar_stem_export_loads_into_torchvision_after_the_documented_stem_swap():
    trunk = scramble_bn(build_trunk(ModelConfig(trunk="resnet18", stem="cifar"), in_channels=3), seed=2)
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool, model.fc = nn.Identity(), nn.Identity()
    model.load_state_dict(export_state_dict(trunk), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), trunk(x))


def test_export_head_needs_a_resnet():
    with pytest.raises(ValueError, match="ResNet"):
        export_state_dict(build_trunk(ModelConfig(trunk="convnet"), 1), head_classes=10)


@pytest.mark.parametrize("affine", [False, True])
def test_projector_is_linear_bn_relu_linear(affine):
    proj = Projector(32, ProjectorConfig(hidden_dim=24, out_dim=8, bn_affine=affine))
    lin1, bn, relu, lin2 = proj.layers
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (32, 24, 8)
    assert isinstance(bn, nn.BatchNorm1d) and bn.affine == affine and isinstance(relu, nn.ReLU)
    assert proj(torch.randn(5, 32)).shape == (5, 8) and proj.out_dim == 8
