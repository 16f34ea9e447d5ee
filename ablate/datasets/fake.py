"""Deterministic synthetic RGB images, generated in a few vectorised ops (its record and generator).

Not torchvision's FakeData (i.i.d. noise with random labels, one PIL image per item): each class has
a smooth random colour pattern and every image is its class pattern plus noise (seed 0, independent
of the trial seed), so a probe on it can beat chance. Pretraining uses ``data.fake_size`` images;
the probe trains on the first min(fake_size, 1024) of them and tests on max(2 * fake_classes,
that // 4) further images. The benchmarks use it for any image geometry (``data.image_size``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ablate.datasets import cifar10
from ablate.datasets.dataset import Dataset, Sizes

if TYPE_CHECKING:
    import torch

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits

SIDE = 32  # when data.image_size is 0
PROBE_MAX = 1024
CHUNK = 4096  # images generated at a time: bounds the float intermediate


def sizes(cfg: DataConfig) -> Sizes:
    n_probe = min(cfg.fake_size, PROBE_MAX)
    n_test = max(2 * cfg.fake_classes, n_probe // 4)
    return Sizes(cfg.fake_size, n_probe, n_test, resident=cfg.fake_size + n_test, side=cfg.image_size or SIDE)


def load(cfg: DataConfig, device: torch.device) -> Splits:
    """The synthetic splits on ``device``: pretrain, its first images as probe-train, a separate test set."""
    import torch  # on use: the records load without torch (`ablate data list`, sweep checks)
    import torch.nn.functional as F

    from ablate.datasets.images import Splits, TensorImageSet

    n = sizes(cfg)
    size, k = n.side, cfg.fake_classes
    gen = torch.Generator().manual_seed(0)
    patterns = torch.rand(k, RECORD.channels, 4, 4, generator=gen)
    patterns = F.interpolate(patterns, size=(size, size), mode="bilinear", align_corners=False)  # (K, 3, S, S)
    total = n.pretrain + n.probe_test
    labels = torch.randint(k, (total,), generator=gen)
    images = torch.empty(total, RECORD.channels, size, size, dtype=torch.uint8)
    for i in range(0, total, CHUNK):
        lab = labels[i : i + CHUNK]
        noise = torch.rand(len(lab), RECORD.channels, size, size, generator=gen)
        images[i : i + CHUNK] = (0.6 * patterns[lab] + 0.4 * noise).mul_(255).round_().to(torch.uint8)
    images, labels = images.to(device), labels.to(device)
    pretrain = TensorImageSet(images[: n.pretrain], labels[: n.pretrain])
    probe_train = TensorImageSet(images[: n.probe_train], labels[: n.probe_train])
    probe_test = TensorImageSet(images[n.pretrain :], labels[n.pretrain :])
    return Splits(pretrain, probe_train, probe_test, k, RECORD.channels, size, RECORD.recipe)


RECORD = Dataset(
    name="fake",
    title="synthetic images",
    doc="class colour patterns plus noise at any size (`data.image_size`): `data.fake_size` images of "
    "`data.fake_classes` classes; the probe trains on the first 1024 at most, tests on further ones",
    load=load,
    sizes=sizes,
    channels=3,
    image_size=SIDE,
    classes=10,  # data.fake_classes' default
    recipe=cifar10.RECORD.recipe,  # small RGB images, as CIFAR-10's
    layout="nothing: generated",
)
