"""Augmentation recipes as data: :class:`Recipe`, and the recipes that belong to no one dataset (BYOL's, none).

A dataset's own recipe (the paper's STL-10 and CIFAR-10 recipes, reference doc Sec. 3) is part of
its record (:mod:`ablate.datasets.records`), which registers it under the dataset's name; all are
entries of :data:`RECIPES`, read through :mod:`ablate.datasets.records` (which guarantees the
built-in datasets' are in). ``data.augment: auto`` picks the dataset's own recipe.
:class:`ablate.train.augment.BatchAugment` applies one batched on the device;
:func:`ablate.train.augment.torchvision_transform` builds the same recipe as a per-sample
``torchvision.transforms.v2`` pipeline, the baseline the batched path is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ablate.config.registry import BUILTIN, RECIPES, loading
from ablate.errors import UserError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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


def register_recipe(name: str, recipe: Recipe) -> Recipe:
    """Add ``recipe`` to :data:`RECIPES` under ``name`` (what ``data.augment`` says)."""
    if not isinstance(recipe, Recipe):
        raise UserError(f"augmentation recipe {name!r} must be an ablate.datasets.recipes.Recipe, got {recipe!r}")
    return RECIPES.register(name, recipe)


# What the photo recipes (the paper's STL-10 and CIFAR-10 ones, BYOL's) share, after SimCLR: a random-
# resized crop of 8-100% of the area, a flip, colour jitter with p 0.8, grayscale with p 0.2. They differ
# in jitter strength, blur, solarize and normalisation (dataclasses.replace(PHOTO, ...)).
PHOTO = Recipe(crop_scale=(0.08, 1.0), flip=True, jitter_p=0.8, gray_p=0.2)
# BYOL's ImageNet recipe: asymmetric views (blur 1.0 / 0.1, solarize 0 / 0.2), kernel 23 ~ 10% of 224.
BYOL = replace(
    PHOTO,
    jitter=(0.4, 0.4, 0.2, 0.1),
    blur_kernel=23,
    blur_p=(1.0, 0.1),
    solarize_p=(0.0, 0.2),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
with loading(BUILTIN):  # ours, even when a plugin's import is the first to reach this module
    register_recipe("byol", BYOL)
    register_recipe("none", Recipe())  # no augmentation: both views are the (resized) image itself


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PHOTO", "RECIPES", "Recipe", "register_recipe"]
