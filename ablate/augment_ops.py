"""Batched image ops with one parameter per image, matching ``torchvision.transforms.v2.functional``.

Every op takes a float batch ``x`` (B, C, H, W) in [0, 1] and per-image parameters as tensors of
shape (B,), and equals the torchvision functional op applied to each image with that image's
parameter (to float rounding; the tests check this op by op). No op reads a tensor back to the
host: per-image choices are ``torch.where`` selections or identity parameters, so a whole
augmentation runs on the GPU without a synchronisation.

Which parameters to use is decided in :mod:`ablate.augment` (recipes and random sampling).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Op ids of ColorJitter, in torchvision's numbering (its ``fn_idx``).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def to_float(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1] (``v2.ToDtype(torch.float32, scale=True)``)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _view(t: Tensor) -> Tensor:
    return t.view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1), broadcast over C, H, W


# ------------------------------------------------------------------------ geometry
def _crop_coords(start: Tensor, length: Tensor, size: int, m: int, in_len: int) -> Tensor:
    """Sampling positions (B, size*m), in grid_sample's normalised [-1, 1], of a crop resized to ``size``.

    Output pixel u of torchvision's resize samples crop coordinate (u + 0.5) * length / size - 0.5,
    clamped to the crop ([0, length - 1]): clamping (not sampling outside) reproduces cropping first
    and resizing second. With ``m`` > 1 every output pixel gets m sub-samples (averaged later).
    """
    u = torch.arange(size * m, device=start.device, dtype=torch.float32)  # (S*m,)
    src = (u[None] + 0.5) / m * (length[:, None] / size) - 0.5  # (B, S*m) in crop pixels
    src = torch.minimum(src.clamp_min(0.0), length[:, None] - 1) + start[:, None]
    return (2 * src + 1) / in_len - 1  # align_corners=False normalisation


def resized_crop_flip(x: Tensor, box: Tensor, flip: Tensor, size: int) -> Tensor:
    """Per-image ``resized_crop(top, left, height, width, [size, size])`` then ``hflip`` where ``flip``.

    x: (B, C, H, W) float; box: (B, 4) float (top i, left j, height h, width w) in input pixels;
    flip: (B,) bool. One grid_sample pass (bilinear, like torchvision's default) for the whole
    batch. Upscaling (every crop of an image no larger than the output, the tensor datasets at
    native size) equals torchvision's result. When a crop is larger than the output torchvision
    antialiases (a triangle filter as wide as the scale factor); here the crop is sampled m times
    denser (m = ceil(input / output)) and pooled with a triangle of the same width
    (:func:`_triangle_pool`): exact for integer factors, close otherwise.
    """
    b, _, h_in, w_in = x.shape
    m = max(1, math.ceil(max(h_in, w_in) / size))
    gy = _crop_coords(box[:, 0], box[:, 2], size, m, h_in)  # (B, S*m)
    gx = _crop_coords(box[:, 1], box[:, 3], size, m, w_in)  # (B, S*m)
    gx = torch.where(flip[:, None], gx.flip(1), gx)  # mirrored sampling = hflip of the output
    n = size * m
    grid = torch.stack((gx[:, None, :].expand(b, n, n), gy[:, :, None].expand(b, n, n)), dim=-1)  # (B, n, n, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _triangle_pool(out, m) if m > 1 else out


def _triangle_pool(z: Tensor, m: int) -> Tensor:
    """Downsample (B, C, n, n) by ``m`` with a triangle filter of half-width m samples (the
    antialias kernel of bilinear resizing), renormalised where it runs past the crop's edge as
    torchvision's antialias does."""
    b, c, n, _ = z.shape
    taps = 2 * m - 1 if m % 2 else 2 * m  # samples within one output pixel of the centre
    offset = torch.arange(taps, device=z.device, dtype=z.dtype) - (taps - 1) / 2
    k = 1 - offset.abs() / m
    k = k / k.sum()
    pad = (taps - m) // 2

    def pool(t: Tensor) -> Tensor:
        t = F.conv2d(F.pad(t, (pad, pad, 0, 0)), k.view(1, 1, 1, taps), stride=(1, m))
        return F.conv2d(F.pad(t, (0, 0, pad, pad)), k.view(1, 1, taps, 1), stride=(m, 1))

    weight = pool(torch.ones(1, 1, n, n, device=z.device, dtype=z.dtype))  # (1, 1, S, S)
    return (pool(z.reshape(b * c, 1, n, n)) / weight).view(b, c, n // m, n // m)


def hflip(x: Tensor, flip: Tensor) -> Tensor:
    """Per-image horizontal flip where ``flip`` (B,) is true."""
    return torch.where(_view(flip), x.flip(-1), x)


def resize_center_crop(x: Tensor, size: int) -> Tensor:
    """``v2.Resize(size)`` (shorter side, bilinear, antialias) then ``v2.CenterCrop(size)``; a no-op
    when the batch is already size x size."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    new = (size, new_long) if h <= w else (new_long, size)
    if (h, w) != new:
        x = F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
    return x[..., top:top + size, left:left + size]


# ------------------------------------------------------------------------ colour
def grayscale(x: Tensor) -> Tensor:
    """Luma (B, 1, H, W) of an RGB batch, torchvision's ITU-R 601-2 weights (same op order)."""
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)


def _blend(x: Tensor, ref: Tensor, factor: Tensor) -> Tensor:
    """torchvision's ``_blend``: factor * x + (1 - factor) * ref, clamped to [0, 1]; factor 1 is exact identity."""
    f = _view(factor)
    return (x * f).add_(ref * (1.0 - f)).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, torch.zeros((), device=x.device), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    gray = grayscale(x) if x.shape[1] == 3 else x
    return _blend(x, gray.mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    if x.shape[1] == 1:  # torchvision (and PIL) leave one-channel images unchanged
        return x
    return _blend(x, grayscale(x), factor)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    """torchvision's ``_rgb_to_hsv`` (Pillow's algorithm), written out of place."""
    r, g, b = x.unbind(dim=-3)
    # elementwise max/min of the three planes: same values as aminmax over the channel axis, and
    # much faster on CPU (measured 401 -> 579 img/s for the STL-10 recipe)
    minc, maxc = torch.minimum(torch.minimum(r, g), b), torch.maximum(torch.maximum(r, g), b)
    eqc = maxc == minc  # grey pixels: S and H are 0 (avoids dividing by zero)
    crange = maxc - minc
    ones = torch.ones_like(maxc)
    s = crange / torch.where(eqc, ones, maxc)
    divisor = torch.where(eqc, ones, crange).unsqueeze(-3)
    rc, gc, bc = ((maxc.unsqueeze(-3) - x) / divisor).unbind(dim=-3)
    maxc_neq_r = maxc != r
    maxc_eq_g = maxc == g
    hg = (rc + 2.0 - bc) * (maxc_eq_g & maxc_neq_r)
    hr = (bc - gc) * ~maxc_neq_r
    hb = (gc + 4.0 - rc) * (maxc_neq_r & ~maxc_eq_g)
    h = ((hr + hg + hb) * (1.0 / 6.0) + 1.0).fmod(1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV -> RGB, the same function as torchvision's ``_hsv_to_rgb`` (which picks v, p, q, t per
    sextant with a gather) in closed form, c = v - v s clamp(min(k, 4 - k), 0, 1) with
    k = (n + 6 h) mod 6 and n = 5, 3, 1 for r, g, b: no index tensors, about 2.5x faster on CPU."""
    h, s, v = hsv.unbind(dim=-3)
    h6, vs = h * 6.0, v * s
    rgb = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + n, 6.0)
        rgb.append(v - vs * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(rgb, dim=-3)


def adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Rotate the hue by ``factor`` (B,) in [-0.5, 0.5] turns; one-channel images unchanged."""
    if x.shape[1] == 1:
        return x
    h, s, v = _rgb_to_hsv(x).unbind(dim=-3)
    h = (h + factor.view(-1, 1, 1)).remainder(1.0)
    return _hsv_to_rgb(torch.stack((h, s, v), dim=-3))


def _blend_step(x: Tensor, op: Tensor, factor: Tensor) -> Tensor:
    """One position of a per-image ColorJitter order: image b applies brightness, contrast or
    saturation (``op[b]``) with ``factor[b]``; factor 1 leaves it exactly unchanged."""
    rgb = x.shape[1] == 3
    gray = grayscale(x) if rgb else x  # (B, 1|C, H, W)
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)  # contrast reference (B, 1, 1, 1)
    zero = torch.zeros((), device=x.device)
    ref = torch.where(_view(op == CONTRAST), mean, zero)
    if rgb:
        ref = torch.where(_view(op == SATURATION), gray, ref)
    else:  # saturation is a no-op on one channel
        factor = torch.where(op == SATURATION, torch.ones_like(factor), factor)
    return _blend(x, ref, factor)


def color_jitter(x: Tensor, factors: Tensor, order: Tensor, on: Tensor, hue: bool = True) -> Tensor:
    """``v2.ColorJitter`` with a per-image op order, applied to the images where ``on``.

    factors: (B, 4) brightness, contrast, saturation factors and hue shift; order: (B, 4) op ids
    by position (torchvision's ``fn_idx``, a random permutation per image); on: (B,) bool.
    Images that are off must carry identity factors (1, 1, 1, 0); ``hue=False`` skips the hue
    op (recipes without hue jitter, one-channel data).

    The three blends commute with nothing, so order matters. Each image's order is honoured
    exactly, yet the costly HSV round trip runs once: the blends placed before the hue op run
    first (one batched blend per position, the op chosen per image), then the hue op, then the
    blends placed after it.
    """
    ident = torch.ones_like(factors[:, 0])
    hue_pos = (order == HUE).int().argmax(dim=1)  # (B,) position of the hue op
    for before in (True, False):
        for k in (range(0, 3) if before else range(1, 4)):  # nothing precedes position 0 or follows 3
            op = order[:, k]
            active = (k < hue_pos) if before else (k > hue_pos)
            active = active & (op != HUE)
            f = torch.where(active, factors.gather(1, op.clamp(max=SATURATION)[:, None])[:, 0], ident)
            x = _blend_step(x, op, f)
        if before and hue and x.shape[1] == 3:
            x = torch.where(_view(on), adjust_hue(x, factors[:, HUE]), x)
    return x


def random_grayscale(x: Tensor, on: Tensor) -> Tensor:
    """``rgb_to_grayscale(num_output_channels=C)`` where ``on``; a no-op on one-channel images."""
    if x.shape[1] == 1:
        return x
    return torch.where(_view(on), grayscale(x).expand_as(x), x)


def solarize(x: Tensor, on: Tensor, threshold: float = 0.5) -> Tensor:
    """``v2.functional.solarize``: invert pixels >= threshold, where ``on``."""
    return torch.where(_view(on) & (x >= threshold), 1.0 - x, x)


# ------------------------------------------------------------------------ blur, normalisation
def gaussian_kernels(sigma: Tensor, on: Tensor, kernel_size: int) -> Tensor:
    """1-D kernels (B, k) as torchvision builds them (softmax of -(x / sigma)^2 over k taps);
    images that are off get the unit impulse, so blurring them is an exact identity."""
    lim = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    pos = torch.linspace(-lim, lim, steps=kernel_size, device=sigma.device)  # (k,)
    kern = torch.softmax(-(pos[None] / sigma.clamp_min(1e-6)[:, None]).pow(2), dim=1)  # (B, k)
    impulse = (torch.arange(kernel_size, device=sigma.device) == kernel_size // 2).float()
    return torch.where(on[:, None], kern, impulse[None])


def gaussian_blur(x: Tensor, sigma: Tensor, on: Tensor, kernel_size: int) -> Tensor:
    """``v2.functional.gaussian_blur(kernel_size, sigma[b])`` per image where ``on``.

    Reflect padding like torchvision; the 2-D kernel is the outer product of two 1-D kernels, so
    two depthwise 1-D convolutions (rows, then columns) over all B*C planes compute it in one go.
    """
    b, c, h, w = x.shape
    k = kernel_size
    kern = gaussian_kernels(sigma, on, k)[:, None].expand(b, c, k).reshape(b * c, k)  # (B*C, k)
    pad = k // 2
    planes = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    planes = F.conv2d(planes, kern.view(b * c, 1, 1, k), groups=b * c)  # along W
    planes = F.conv2d(planes, kern.view(b * c, 1, k, 1), groups=b * c)  # along H
    return planes.view(b, c, h, w)


def normalize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(x - mean) / std per channel; mean, std: (C,) on x's device."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
