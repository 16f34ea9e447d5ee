"""Augmentation recipes as data: the paper's STL-10 and CIFAR-10 recipes, BYOL's ImageNet recipe, digits.

Recipes (reference doc, Sec. 3) are entries of :data:`RECIPES`; ``data.augment: auto`` picks the
dataset's own recipe (:attr:`ablate.datasets.images.Splits.recipe`). :class:`ablate.train.augment.BatchAugment`
applies one batched on the device; :func:`torchvision_transform` builds the same recipe as a
per-sample ``torchvision.transforms.v2`` pipeline, the baseline the batched path is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


@dataclass(frozen=True)
class Recipe:
    """One augmentation recipe. Per-view probabilities are tuples indexed by the view (the last
    entry repeats), so BYOL's asymmetric views are data, not a special case."""

    crop_scale: tuple[float, float] | None = None  # RandomResizedCrop scale; None = no random crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect-ratio range (log-uniform)
    flip: bool = False  # RandomHorizontalFlip(0.5)
    jitter: tuple[float, float, float, float] = (
        0.0,
        0.0,
        0.0,
        0.0,
    )  # ColorJitter(brightness, contrast, saturation, hue)
    jitter_p: float = 0.0  # RandomApply([ColorJitter], p)
    gray_p: float = 0.0  # RandomGrayscale(p)
    blur_kernel: int = 0  # GaussianBlur kernel size; 0 = no blur
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: tuple[float, ...] = (0.0,)  # per view
    solarize_p: tuple[float, ...] = (0.0,)  # per view; threshold 0.5 of [0, 1]
    mean: tuple[float, ...] | None = None  # Normalize; None = leave [0, 1]
    std: tuple[float, ...] | None = None

    @staticmethod
    def per_view(p: tuple[float, ...], view: int) -> float:
        return p[min(view, len(p) - 1)]


RECIPES: dict[str, Recipe] = {
    # Paper, STL-10 (reference doc Sec. 3): blur always, no normalisation.
    "stl10": Recipe(
        crop_scale=(0.08, 1.0),
        flip=True,
        jitter=(0.8, 0.8, 0.8, 0.2),
        jitter_p=0.8,
        gray_p=0.2,
        blur_kernel=9,
        blur_p=(1.0,),
    ),
    # Paper, CIFAR-10: no blur (32x32 is too small for it), CIFAR statistics.
    "cifar10": Recipe(
        crop_scale=(0.08, 1.0),
        flip=True,
        jitter=(0.4, 0.4, 0.4, 0.1),
        jitter_p=0.8,
        gray_p=0.2,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
    ),
    # BYOL's ImageNet recipe: asymmetric views (blur 1.0 / 0.1, solarize 0 / 0.2), kernel 23 ~ 10% of 224.
    "byol": Recipe(
        crop_scale=(0.08, 1.0),
        flip=True,
        jitter=(0.4, 0.4, 0.2, 0.1),
        jitter_p=0.8,
        gray_p=0.2,
        blur_kernel=23,
        blur_p=(1.0, 0.1),
        solarize_p=(0.0, 0.2),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
    # scikit-learn digits (16x16, one channel, upsampled from 8x8). Milder than the photo recipes:
    # crops keep >= 40% of the area because a digit fills the frame and a 0.08 crop is a stroke
    # fragment, the aspect ratio stays near 1 because it carries class information (1 vs 7), no
    # flip because digits are not mirror-invariant (2, 3, 7 mirrored are not digits), no blur
    # because the 8x8 source is already as smooth as the strokes allow. Saturation, hue and
    # grayscale would be no-ops on one channel, so only brightness/contrast jitter.
    "digits": Recipe(crop_scale=(0.4, 1.0), crop_ratio=(0.8, 1.25), jitter=(0.4, 0.4, 0.0, 0.0), jitter_p=0.8),
    # No augmentation: both views are the (resized) image itself.
    "none": Recipe(),
}


def torchvision_transform(recipe: str, size: int, channels: int, view: int = 0):
    """The same recipe as a per-sample ``torchvision.transforms.v2`` pipeline (the usual
    DataLoader-worker way), for one view: uint8 (C, H, W) tensor or PIL image -> float (C, size, size).

    Ops stay on uint8 until the end, as a worker pipeline would (solarize threshold 128 of 255 is
    0.5 of [0, 1]); ColorJitter draws a random op order per call, as ours does per image."""
    from torchvision.transforms import v2

    r = RECIPES[recipe]
    steps: list = [v2.ToImage()]
    if r.crop_scale:
        steps.append(v2.RandomResizedCrop(size, scale=r.crop_scale, ratio=r.crop_ratio, antialias=True))
    else:
        steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    if r.flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    b, c, s, h = r.jitter
    if channels == 1:
        s, h = 0.0, 0.0  # no-ops on one channel; torchvision would reject nothing but do nothing
    if r.jitter_p > 0 and any((b, c, s, h)):
        steps.append(v2.RandomApply([v2.ColorJitter(b, c, s, h)], p=r.jitter_p))
    if r.gray_p > 0 and channels == 3:
        steps.append(v2.RandomGrayscale(r.gray_p))
    blur_p = r.per_view(r.blur_p, view)
    if r.blur_kernel and blur_p > 0:
        k = min(r.blur_kernel, 2 * size - 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(k, sigma=r.blur_sigma)], p=blur_p))
    sol_p = r.per_view(r.solarize_p, view)
    if sol_p > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=sol_p))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if r.mean is not None:
        steps.append(v2.Normalize(list(r.mean[:channels]), list(r.std[:channels])))
    return v2.Compose(steps)
