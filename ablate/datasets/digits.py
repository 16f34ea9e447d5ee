"""scikit-learn's digits, bundled with scikit-learn: the offline dataset every trial can run on (its record and loader).

1797 8x8 digits (values 0..16), upsampled bilinearly to 16x16 uint8, with a fixed stratified 75/25
split (seed 0, the same for every trial seed): pretrain and probe on the 1347 train images, test
on the 450 others (the CIFAR-10 pattern of the paper's protocol).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ablate.datasets.dataset import Dataset, Sizes
from ablate.datasets.recipes import Recipe

if TYPE_CHECKING:
    import torch

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits

SIDE = 16
TRAIN, TEST = 1347, 450  # of 1797: scikit-learn's train_test_split(test_size=0.25)


def load(cfg: DataConfig, device: torch.device) -> Splits:
    """The digits as :class:`TensorImageSet` splits on ``device`` (pretrain and probe-train are one set)."""
    import numpy as np
    import torch  # on use: the records load without torch (`ablate data list`, sweep checks)
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from ablate.datasets.images import Splits, TensorImageSet

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    x = x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    y = torch.from_numpy(digits.target).long()
    train, test = (
        torch.from_numpy(i)
        for i in train_test_split(np.arange(len(y)), test_size=0.25, stratify=digits.target, random_state=0)
    )
    train_set = TensorImageSet(x[train].to(device), y[train].to(device))
    test_set = TensorImageSet(x[test].to(device), y[test].to(device))
    return Splits(train_set, train_set, test_set, RECORD.classes, RECORD.channels, SIDE, RECORD.recipe)


def sizes(cfg: DataConfig) -> Sizes:
    return Sizes(pretrain=TRAIN, probe_train=TRAIN, probe_test=TEST, resident=TRAIN + TEST, side=SIDE)


RECORD = Dataset(
    name="digits",
    title="scikit-learn digits",
    doc="8x8 handwritten digits upsampled to 16x16; a fixed stratified 75/25 split (seed 0): pretrain and probe on "
    "train, test on the rest",
    load=load,
    sizes=sizes,
    channels=1,
    image_size=SIDE,
    classes=10,
    recipe="digits",
    # Milder than the photo recipes: crops keep >= 40% of the area because a digit fills the
    # frame and a 0.08 crop is a stroke fragment, the aspect ratio stays near 1 because it
    # carries class information (1 vs 7), no flip because digits are not mirror-invariant (2, 3,
    # 7 mirrored are not digits), no blur because the 8x8 source is already as smooth as the
    # strokes allow. Saturation, hue and grayscale would be no-ops on one channel, so only
    # brightness/contrast jitter.
    augmentation=Recipe(crop_scale=(0.4, 1.0), crop_ratio=(0.8, 1.25), jitter=(0.4, 0.4, 0.0, 0.0), jitter_p=0.8),
    layout="nothing: bundled with scikit-learn",
    splits={"train": TRAIN, "test": TEST},
)
