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


# ------------------------------------------------------------------ the pair: what feeds F_hat
def pair_of(**cfg):
    from ablate.kinds.ssl import load_trial_config
    from ablate.models.pair import BYOLPair

    tree = {"model": {"width": 8}, "projector": {"hidden_dim": 16, "out_dim": 8}, **cfg}
    torch.manual_seed(0)
    return BYOLPair(load_trial_config(tree), in_channels=1)


@pytest.mark.parametrize("symmetric", [True, False])
def test_f_hat_is_built_from_what_the_predictor_was_fed(symmetric):
    """Symmetric loss: both views reach the predictor, F_hat = E[f f^T] over cat(z1, z2); one
    direction: only z1 does, so F_hat is E[z1 z1^T] alone."""
    pair = pair_of(predictor={"name": "directpred"}, loss={"symmetric": symmetric})
    x1, x2 = torch.randn(6, 1, 16, 16), torch.randn(6, 1, 16, 16)
    loss, seen = pair(x1, x2)
    (_, z1), (_, z2) = pair.online(x1), pair.online(x2)
    f = torch.cat([z1, z2]) if symmetric else z1
    assert torch.allclose(seen["f"], f.detach(), atol=1e-6) and seen["t"].shape == f.shape
    pair.predictor.observe(**seen)
    assert torch.allclose(pair.predictor.corr, f.T @ f / len(f), atol=1e-5)


def test_projections_stay_fp32_under_bf16_autocast():
    """z feeds F_hat: its last layer runs in fp32 even when the trunk runs in bf16."""
    proj = Projector(32, ProjectorConfig(hidden_dim=16, out_dim=8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = proj(torch.randn(4, 32))
        hidden = proj.layers[0](torch.randn(4, 32))
    assert z.dtype == torch.float32 and hidden.dtype == torch.bfloat16


# ------------------------------------------------------------------ the target's EMA schedule
@pytest.mark.parametrize("k, total", [(0, 100), (25, 100), (50, 100), (99, 100), (100, 100), (3, 7)])
def test_cosine_ema_schedule_is_byols_formula(k, total):
    import math

    from ablate.models.pair import EMA_SCHEDULES

    want = 1 - (1 - 0.996) * (math.cos(math.pi * k / total) + 1) / 2  # BYOL, Sec. 3.2
    assert EMA_SCHEDULES["cosine"](0.996, k, total) == pytest.approx(want, abs=1e-15)
    assert EMA_SCHEDULES["constant"](0.996, k, total) == 0.996
    assert EMA_SCHEDULES["cosine"](0.996, 0, total) == pytest.approx(0.996)
    assert EMA_SCHEDULES["cosine"](0.996, total, total) == pytest.approx(1.0)


def test_update_target_moves_by_the_scheduled_tau():
    pair = pair_of(ema={"tau": 0.5, "init": "independent", "schedule": "cosine"})
    t0 = [q.detach().clone() for q in pair.target.parameters()]
    on = [q.detach().clone() for q in pair.online.parameters()]
    pair.update_target(step=100, total=100)  # tau = 1 at the end: the target stays
    assert all(torch.equal(a, b) for a, b in zip(pair.target.parameters(), t0))
    pair.update_target(step=0, total=100)  # tau = 0.5 at the start: halfway to the online net
    assert all(torch.allclose(a, (b + c) / 2, atol=1e-6) for a, b, c in zip(pair.target.parameters(), t0, on))


def test_a_cosine_schedule_without_a_target_network_is_refused():
    from ablate.errors import UserError
    from ablate.kinds.ssl import load_trial_config

    with pytest.raises(UserError, match="ema.schedule: cosine needs a target network"):
        load_trial_config({"ema": {"tau": 0.0, "schedule": "cosine"}})
