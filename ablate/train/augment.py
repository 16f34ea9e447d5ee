"""Augmentation, batched on the trial's device with independent random parameters per image.

The paper's two views x1, x2 of an image (Sec. 2) are two independent draws of a recipe. Here a
draw is a table of per-image parameters (:class:`AugmentParams`: crop box, flip, jitter factors
and order, grayscale, blur sigma, solarize), sampled for the whole batch in one ``torch.rand``
call on the generator's device, then applied by the batched ops of :mod:`ablate.train.augment_ops`,
each of which matches the ``torchvision.transforms.v2.functional`` op per image. The result is
the torchvision recipe's distribution, without one Python call per image and without one shared
draw for the batch.

The recipes themselves are data (:mod:`ablate.datasets.recipes`, and each dataset's own in its record);
:func:`torchvision_transform` builds one as the per-sample torchvision pipeline it is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache

import torch
from torch import Tensor

from ablate.datasets.records import RECIPES, Recipe
from ablate.train import augment_ops as ops


@dataclass
class AugmentParams:
    """Per-image parameters of one draw of a recipe for a batch of B images (all tensors (B, ...)).

    ``box`` is None when the batch is not cropped here (pre-cropped views, or a recipe without a
    random crop). Images whose op is off carry identity values (jitter factors 1, 1, 1, 0)."""

    view: int
    box: Tensor | None  # (B, 4) float: top i, left j, height h, width w, in input pixels
    flip: Tensor  # (B,) bool
    jitter: Tensor  # (B,) bool: ColorJitter applied
    factors: Tensor  # (B, 4) brightness, contrast, saturation factors, hue shift
    order: Tensor  # (B, 4) int64: ColorJitter op id at each position (torchvision's fn_idx)
    gray: Tensor  # (B,) bool
    blur: Tensor  # (B,) bool
    sigma: Tensor  # (B,) float
    solarize: Tensor  # (B,) bool

    def _map(self, fn: Callable[[Tensor], Tensor]) -> AugmentParams:
        return AugmentParams(
            **{f.name: fn(v) if isinstance(v, Tensor) else v for f in fields(self) for v in [getattr(self, f.name)]}
        )

    def __getitem__(self, rows: slice) -> AugmentParams:
        """The parameters of images ``rows`` of the batch."""
        return self._map(lambda t: t[rows])

    def to(self, device: torch.device) -> AugmentParams:
        return self._map(lambda t: t.to(device, non_blocking=True))


# Layout of the per-image uniforms drawn by one sample_params call (a fixed layout keeps a seed's
# stream independent of the recipe: every recipe consumes the same numbers). The crop gets 10
# area and 10 ratio draws: torchvision's RandomResizedCrop tries 10 boxes before its fallback.
_AREA, _RATIO, _TOP, _LEFT, _FLIP, _JIT, _FAC, _ORDER, _GRAY, _BLUR, _SIGMA, _SOL = (
    slice(0, 10),
    slice(10, 20),
    20,
    21,
    22,
    23,
    slice(24, 28),
    slice(28, 32),
    32,
    33,
    34,
    35,
)
_NUM_UNIFORMS = 36


def crop_boxes(u: Tensor, in_h: int, in_w: int, scale: tuple[float, float], ratio: tuple[float, float]) -> Tensor:
    """torchvision's ``RandomResizedCrop.make_params`` for B images at once -> boxes (B, 4).

    u: (B, 36) uniforms in :meth:`BatchAugment.sample_params`' layout, of which this uses 10 area
    draws, 10 log-ratio draws, top and left. Each image takes its first
    of 10 tries that fits (area ~ U(scale) * H * W, aspect ratio log-uniform in ``ratio``), else
    torchvision's fallback: the central crop with the ratio clamped into range.
    """
    area = in_h * in_w
    target = area * (scale[0] + (scale[1] - scale[0]) * u[:, _AREA])  # (B, 10)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, _RATIO])  # (B, 10)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= in_w) & (h > 0) & (h <= in_h)  # (B, 10)
    first = fits.int().argmax(dim=1, keepdim=True)  # first fitting try (argmax returns the first max)
    found = fits.any(dim=1)
    in_ratio = in_w / in_h
    if in_ratio < min(ratio):
        fw, fh = in_w, int(round(in_w / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(in_h * max(ratio))), in_h
    else:
        fw, fh = in_w, in_h
    w = torch.where(found, w.gather(1, first)[:, 0], float(fw))
    h = torch.where(found, h.gather(1, first)[:, 0], float(fh))
    top = torch.minimum(torch.floor(u[:, _TOP] * (in_h - h + 1)), in_h - h)  # randint(0, H - h + 1)
    left = torch.minimum(torch.floor(u[:, _LEFT] * (in_w - w + 1)), in_w - w)
    top = torch.where(found, top, float((in_h - fh) // 2))
    left = torch.where(found, left, float((in_w - fw) // 2))
    return torch.stack((top, left, h, w), dim=1)


# On CPU a batch is augmented a chunk of images at a time, each chunk's image about this many
# floats (2 MB): every op is per image, so the result is the same, but the dozens of
# intermediates of the colour ops stay in cache instead of streaming the whole batch through
# memory once per op (STL-10 recipe, 128 images of 96x96, one thread: 122 -> 57 ms per batch).
CPU_CHUNK_FLOATS = 1 << 19


@cache
def _device_consts(recipe: Recipe, channels: int, device: torch.device) -> dict[str, Tensor]:
    """A recipe's constant tensors, uploaded once per device (no host-to-device copy per batch)."""
    b, c, s, h = recipe.jitter
    consts = {
        "lo": torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -h], device=device),
        "hi": torch.tensor([1 + b, 1 + c, 1 + s, h], device=device),
        "identity": torch.tensor([1.0, 1.0, 1.0, 0.0], device=device),
    }
    if recipe.mean is not None:
        consts["mean"] = torch.tensor(recipe.mean[:channels], device=device)
        consts["std"] = torch.tensor(recipe.std[:channels], device=device)
    return consts


class BatchAugment:
    """A recipe applied to uint8 batches on their device: ``aug(x, generator, view)`` -> float (B, C, size, size).

    x is (B, C, H, W) uint8 (or float in [0, 1]). A 5-D batch (B, V, C, S, S) holds V views that
    were already random-resized-cropped (ImageFolder decode workers): view ``view`` is taken and
    the crop stage is skipped, everything else (flip onwards) happens here.
    """

    def __init__(self, recipe: str | Recipe, size: int, channels: int):
        self.name = recipe if isinstance(recipe, str) else "custom"
        self.recipe = RECIPES[recipe] if isinstance(recipe, str) else recipe
        self.size, self.channels = size, channels
        # reflect padding needs pad < image side: cap the kernel for tiny images (odd, <= 2*size-1)
        self.blur_kernel = min(self.recipe.blur_kernel, 2 * size - 1)

    def sample_params(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        view: int = 0,
        in_size: tuple[int, int] | None = None,
        crop: bool = True,
        device: torch.device | None = None,
    ) -> AugmentParams:
        """Independent parameters for each of ``batch`` images.

        Drawn on the generator's device (without a generator: from the default generator of
        ``device``, CPU by default). ``in_size`` is the input's (H, W) (default: size x size);
        ``crop=False`` for pre-cropped input.
        """
        r = self.recipe
        device = generator.device if generator is not None else torch.device(device or "cpu")
        u = torch.rand(batch, _NUM_UNIFORMS, generator=generator, device=device)  # (B, 36)
        in_h, in_w = in_size or (self.size, self.size)
        box = crop_boxes(u, in_h, in_w, r.crop_scale, r.crop_ratio) if (crop and r.crop_scale) else None
        jitter = u[:, _JIT] < r.jitter_p
        c = _device_consts(r, self.channels, device)
        factors = torch.where(jitter[:, None], c["lo"] + (c["hi"] - c["lo"]) * u[:, _FAC], c["identity"])  # (B, 4)
        lo_s, hi_s = r.blur_sigma
        return AugmentParams(
            view=view,
            box=box,
            flip=(u[:, _FLIP] < 0.5) & r.flip,
            jitter=jitter,
            factors=factors,
            order=u[:, _ORDER].argsort(dim=1),  # a uniformly random permutation per image
            gray=u[:, _GRAY] < r.gray_p,
            blur=u[:, _BLUR] < r.per_view(r.blur_p, view),
            sigma=lo_s + (hi_s - lo_s) * u[:, _SIGMA],
            solarize=u[:, _SOL] < r.per_view(r.solarize_p, view),
        )

    def apply(self, x: Tensor, params: AugmentParams) -> Tensor:
        """Apply given parameters (deterministic): uint8/float (B, C, H, W) -> float (B, C, size, size)."""
        p = params.to(x.device)
        chunk = max(1, CPU_CHUNK_FLOATS // (x.shape[1] * max(self.size, x.shape[-1]) ** 2))
        if x.device.type != "cpu" or x.shape[0] <= chunk:
            return self._apply(x, p)  # on a GPU the whole batch is one launch per op
        out = torch.empty((x.shape[0], self.channels, self.size, self.size), device=x.device)
        for i in range(0, x.shape[0], chunk):  # each chunk copied out while it is still in cache
            out[i : i + chunk] = self._apply(x[i : i + chunk], p[i : i + chunk])
        return out

    def _apply(self, x: Tensor, p: AugmentParams) -> Tensor:
        r = self.recipe
        x = ops.to_float(x)
        if p.box is not None:
            x = ops.resized_crop_flip(x, p.box, p.flip, self.size)
        else:
            x = ops.resize_center_crop(x, self.size)
            if r.flip:
                x = ops.hflip(x, p.flip)
        if r.jitter_p > 0 and any(r.jitter):
            x = ops.color_jitter(x, p.factors, p.order, p.jitter, hue=r.jitter[3] > 0)
        if r.gray_p > 0:
            x = ops.random_grayscale(x, p.gray)
        if self.blur_kernel and r.per_view(r.blur_p, p.view) > 0:
            x = ops.gaussian_blur(x, p.sigma, p.blur, self.blur_kernel)
        if r.per_view(r.solarize_p, p.view) > 0:
            x = ops.solarize(x, p.solarize)
        if r.mean is not None:
            c = _device_consts(r, self.channels, x.device)
            x = ops.normalize(x, c["mean"], c["std"])
        return x

    def __call__(self, x: Tensor, generator: torch.Generator | None = None, view: int = 0) -> Tensor:
        precropped = x.dim() == 5
        if precropped:
            x = x[:, view]  # (B, C, S, S): this view's crop, made by the decode workers
        params = self.sample_params(
            x.shape[0], generator, view, tuple(x.shape[-2:]), crop=not precropped, device=x.device
        )
        return self.apply(x, params)


def build_augment(recipe: str, size: int, channels: int) -> BatchAugment:
    """The batched augmentation of a named recipe producing size x size crops of ``channels`` channels."""
    if recipe not in RECIPES:
        raise KeyError(f"unknown augmentation recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return BatchAugment(recipe, size, channels)


class EvalTransform:
    """Un-augmented images for the probe and kNN: [0, 1], resize + center-crop to ``size`` if
    needed, the recipe's normalisation. uint8 (B, C, H, W) -> float (B, C, size, size)."""

    def __init__(self, recipe: str, size: int, channels: int):
        self.recipe, self.size, self.channels = RECIPES[recipe], size, channels

    def __call__(self, x: Tensor) -> Tensor:
        x = ops.resize_center_crop(ops.to_float(x), self.size)
        if self.recipe.mean is None:
            return x
        c = _device_consts(self.recipe, self.channels, x.device)
        return ops.normalize(x, c["mean"], c["std"])


def eval_transform(recipe: str, size: int, channels: int) -> EvalTransform:
    if recipe not in RECIPES:
        raise KeyError(f"unknown augmentation recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return EvalTransform(recipe, size, channels)


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
