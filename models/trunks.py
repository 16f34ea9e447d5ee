"""Trunks (encoders) f: image x (B, C, H, W) -> feature y (B, D). Every trunk has ``feature_dim`` = D.

* ``convnet``: a small 3-layer conv-BN-ReLU net with global average pooling, for the 16x16 digits
  on a CPU (D = ``model.width``).
* ``resnet18`` / ``resnet50``: torchvision's ResNet (``weights=None``) with ``fc = nn.Identity()``,
  so y is the 512-d / 2048-d avgpool feature (paper Sec. 3; Table 9 uses ResNet-50).
  ``model.stem``: ``imagenet`` keeps the stock 7x7/2 conv + maxpool (STL-10 at 96x96); ``cifar``
  uses conv1 = 3x3 stride 1, no bias, and no maxpool (CIFAR-10, as the reference code does).
  The trunk IS a ``torchvision.models.ResNet``, so its ``state_dict()`` keys are torchvision's,
  minus ``fc.*``.

Export (:func:`export_state_dict`) gives a plain state dict of the trunk. For a ResNet with the
imagenet stem and 3 input channels it loads with ``strict=True`` into

    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load("trunk.pt"))          # model(x) == y

or, exported with ``head_classes=N``, into an unmodified ``torchvision.models.resnet18(num_classes=N)``
(the exported fc is all zeros: a blank head to train, e.g. a linear probe). With the cifar stem or
another channel count, set ``model.conv1`` (and ``model.maxpool = nn.Identity()``) as
:func:`build_trunk` does first, or simply use :func:`load_trunk`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ablate.config.trial import ModelConfig

RESNETS = ("resnet18", "resnet50")  # torchvision.models constructors


def _torchvision_models():
    """``torchvision.models``, imported on first use: importing torchvision costs about a second
    (it loads torch._dynamo through torchvision.ops), paid by every trial process, and the
    convnet trunk does not need it."""
    import torchvision.models

    return torchvision.models


class ConvNet(nn.Module):
    """Three conv3x3-BN-ReLU blocks (width/4, width/2, width channels; strides 1, 2, 2) + global
    average pool. 16x16 digits -> 16 -> 8 -> 4 spatial -> y (B, width). Small enough to pretrain
    in seconds on 2 CPU cores."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        widths = [max(1, width // 4), max(1, width // 2), width]
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, stride in zip(widths, (1, 2, 2)):
            # No conv bias: the BN right after it would cancel it.
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = width

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, C, H, W) -> (B, width)


def _resnet(name: str, stem: str, in_channels: int) -> nn.Module:
    net = getattr(_torchvision_models(), name)(weights=None)
    if stem == "cifar":
        # SimCLR Appendix B.9 / the reference code: small first conv and no maxpool for 32x32 inputs.
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.feature_dim = net.fc.in_features  # 512 (resnet18) or 2048 (resnet50)
    net.fc = nn.Identity()  # torchvision's forward then returns the flattened avgpool feature y
    return net


def build_trunk(cfg: ModelConfig, in_channels: int) -> nn.Module:
    """The trunk of ``cfg.trunk`` for images with ``in_channels`` channels: x (B, C, H, W) -> y (B, D)."""
    if cfg.trunk == "convnet":
        return ConvNet(in_channels, cfg.width)
    if cfg.trunk in RESNETS:
        return _resnet(cfg.trunk, cfg.stem, in_channels)
    raise ValueError(f"unknown trunk {cfg.trunk!r}; choose one of convnet, {', '.join(RESNETS)}")


def _unwrap(module: nn.Module) -> nn.Module:
    """The plain module under torch.compile (``_orig_mod``) and DistributedDataParallel (``module``)."""
    while True:
        inner = getattr(module, "_orig_mod", None) or (
            module.module if isinstance(module, nn.parallel.DistributedDataParallel) else None
        )
        if inner is None:
            return module
        module = inner


def export_state_dict(trunk: nn.Module, head_classes: int | None = None) -> dict[str, Tensor]:
    """The trunk's weights and BN statistics as a plain CPU state dict (contiguous tensors).

    Without ``head_classes`` the keys are exactly those of the trunk, i.e. torchvision's minus
    ``fc.*``: load with strict=True into the torchvision model after ``model.fc = nn.Identity()``.
    With ``head_classes=N`` (ResNet trunks) a zero ``fc.weight`` (N, D) and ``fc.bias`` (N) are
    added, so the dict loads strict=True into ``torchvision.models.resnet18(num_classes=N)`` as is;
    that head is blank (outputs 0) and meant to be trained."""
    plain = _unwrap(trunk)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in plain.state_dict().items()}
    if head_classes is not None:
        if not isinstance(plain, _torchvision_models().ResNet):
            raise ValueError("head_classes applies to ResNet trunks only (torchvision has no convnet model)")
        dim = plain.feature_dim
        ref = state["conv1.weight"]
        state["fc.weight"] = torch.zeros(head_classes, dim, dtype=ref.dtype)
        state["fc.bias"] = torch.zeros(head_classes, dtype=ref.dtype)
    return state


def load_trunk(state: dict[str, Tensor], cfg: ModelConfig, in_channels: int) -> nn.Module:
    """Inverse of :func:`export_state_dict`: build the trunk of ``cfg`` and load ``state`` strictly.
    Any ``fc.*`` head (e.g. the blank one added by ``head_classes``) is dropped: the trunk has none."""
    trunk = build_trunk(cfg, in_channels)
    if cfg.trunk in RESNETS:  # build_trunk's ResNets have fc = Identity: no parameters
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    trunk.load_state_dict(state, strict=True)
    return trunk
