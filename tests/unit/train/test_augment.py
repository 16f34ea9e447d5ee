"""Batched augmentation: per-image randomness, equality with torchvision's functional ops, recipes."""

import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ablate.datasets.records import RECIPES
from ablate.train import augment_ops as ops
from ablate.train.augment import (
    AugmentParams,
    BatchAugment,
    build_augment,
    crop_boxes,
    eval_transform,
    torchvision_transform,
)


def images(b=4, c=3, size=32, seed=0) -> torch.Tensor:
    """Smooth-ish random uint8 images (noise upsampled) so that crops and blurs have structure."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b, c, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ per-image randomness
def test_two_images_of_one_batch_get_different_parameters():
    aug = build_augment("stl10", 96, 3)
    p = aug.sample_params(64, gen(1))
    assert p.box.shape == (64, 4) and p.factors.shape == (64, 4) and p.order.shape == (64, 4)
    assert not torch.equal(p.box[0], p.box[1])
    assert len({tuple(b.tolist()) for b in p.box}) > 48  # not one crop for the batch
    jittered = p.factors[p.jitter]
    assert 30 < len(jittered) < 64  # applied with p = 0.8 per image, not all-or-nothing
    assert len({tuple(f.tolist()) for f in jittered}) == len(jittered)
    assert len({tuple(o.tolist()) for o in p.order}) > 10  # random op order per image (24 possible)
    assert len(set(p.sigma.tolist())) == 64
    assert 0 < int(p.flip.sum()) < 64 and 0 < int(p.gray.sum()) < 64
    assert bool(p.blur.all())  # STL-10 blurs always


def test_identical_images_in_one_batch_get_different_views():
    x = images(1).expand(8, -1, -1, -1).contiguous()
    out = build_augment("cifar10", 32, 3)(x, gen(0))
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 8))


def test_same_seed_same_output_other_seed_other_output():
    aug, x = build_augment("byol", 32, 3), images(8)
    a, b = aug(x, gen(3), view=1), aug(x, gen(3), view=1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, aug(x, gen(4), view=1))
    g = gen(3)  # two calls on one generator continue the stream: x1 and x2 differ
    assert not torch.allclose(aug(x, g, view=0), aug(x, g, view=0))


def test_apply_is_deterministic_given_params():
    aug, x = build_augment("stl10", 32, 3), images(6)
    p = aug.sample_params(6, gen(0))
    assert torch.equal(aug.apply(x, p), aug.apply(x, p))


def test_view_probabilities_are_per_view():
    aug = build_augment("byol", 32, 3)
    p0, p1 = aug.sample_params(4000, gen(0), view=0), aug.sample_params(4000, gen(0), view=1)
    assert bool(p0.blur.all()) and not bool(p0.solarize.any())
    assert 0.07 < p1.blur.float().mean() < 0.13 and 0.16 < p1.solarize.float().mean() < 0.24


# ------------------------------------------------------------------ random resized crop
def test_crop_boxes_follow_random_resized_crop():
    u = torch.rand(5000, 36, generator=gen(0))
    box = crop_boxes(u, 96, 96, (0.08, 1.0), (3 / 4, 4 / 3))
    top, left, h, w = box.unbind(1)
    assert torch.equal(box, box.round())  # integer pixels like torchvision
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 96) & (left + w <= 96) & (h >= 1) & (w >= 1)).all())
    area = h * w / 96**2
    assert area.min() > 0.06 and area.max() <= 1.0 and area.mean() > 0.3
    ratio = w / h
    assert ratio.min() > 0.6 and ratio.max() < 1.6
    assert top.float().std() > 5 and left.float().std() > 5  # positions vary per image


def test_crop_fallback_is_torchvisions_central_crop():
    u = torch.rand(3, 36, generator=gen(0))
    for (hh, ww), ratio in [((40, 100), (3 / 4, 4 / 3)), ((100, 40), (3 / 4, 4 / 3)), ((50, 50), (0.5, 2.0))]:
        box = crop_boxes(u, hh, ww, (5.0, 6.0), ratio)  # an area > image never fits: always the fallback
        rrc = v2.RandomResizedCrop(8, scale=(5.0, 6.0), ratio=ratio)
        ref = rrc.make_params([torch.zeros(3, hh, ww)])
        expect = torch.tensor([ref["top"], ref["left"], ref["height"], ref["width"]], dtype=torch.float32)
        assert torch.equal(box, expect.expand(3, 4))


@pytest.mark.parametrize("flip", [False, True])
def test_resized_crop_flip_matches_torchvision_when_upscaling(flip):
    x = ops.to_float(images(4, size=32))
    box = torch.tensor([[0, 0, 32, 32], [3, 5, 10, 20], [20, 1, 12, 9], [7, 9, 25, 17]], dtype=torch.float32)
    out = ops.resized_crop_flip(x, box, torch.full((4,), flip), 32)
    for b in range(4):
        i, j, h, w = (int(v) for v in box[b])
        ref = TF.resized_crop(x[b], i, j, h, w, [32, 32], antialias=True)
        ref = TF.horizontal_flip(ref) if flip else ref
        torch.testing.assert_close(out[b], ref, atol=2e-5, rtol=0)


def test_resized_crop_antialiases_when_downscaling():
    x = ops.to_float(images(2, size=64))
    box = torch.tensor([[0, 0, 64, 64], [4, 8, 48, 40]], dtype=torch.float32)
    out = ops.resized_crop_flip(x, box, torch.tensor([False, True]), 16)
    refs = []
    for b in range(2):
        i, j, h, w = (int(v) for v in box[b])
        refs.append(TF.resized_crop(x[b], i, j, h, w, [16, 16], antialias=True))
        aliased = TF.resized_crop(x[b], i, j, h, w, [16, 16], antialias=False)
        if b == 1:
            refs[b], aliased = TF.horizontal_flip(refs[b]), TF.horizontal_flip(aliased)
        assert (out[b] - refs[b]).abs().mean() < 0.5 * (aliased - refs[b]).abs().mean()
    torch.testing.assert_close(out[0], refs[0], atol=1e-5, rtol=0)  # integer factor 4: exact


# ------------------------------------------------------------------ colour, blur, solarize vs torchvision
FACTORS = torch.tensor([0.3, 1.0, 1.7, 0.55])


@pytest.mark.parametrize(
    "name, batched, single",
    [
        ("brightness", ops.adjust_brightness, TF.adjust_brightness),
        ("contrast", ops.adjust_contrast, TF.adjust_contrast),
        ("saturation", ops.adjust_saturation, TF.adjust_saturation),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_blend_ops_match_torchvision(name, batched, single, channels):
    x = ops.to_float(images(4, c=channels))
    out = batched(x, FACTORS)
    for b in range(4):
        torch.testing.assert_close(out[b], single(x[b], float(FACTORS[b])), atol=1e-6, rtol=0)


def test_hue_matches_torchvision_and_is_a_noop_on_one_channel():
    x = ops.to_float(images(4))
    x[0, :, :4, :4] = 0.5  # grey pixels: the hue of a grey pixel is undefined, must stay grey
    shift = torch.tensor([-0.5, -0.1, 0.03, 0.5])
    out = ops.adjust_hue(x, shift)
    for b in range(4):
        torch.testing.assert_close(out[b], TF.adjust_hue(x[b], float(shift[b])), atol=1e-5, rtol=0)
    gray = ops.to_float(images(2, c=1))
    assert torch.equal(ops.adjust_hue(gray, shift[:2]), gray)


def test_grayscale_and_solarize_match_torchvision():
    x = ops.to_float(images(4))
    on = torch.tensor([True, False, True, False])
    out = ops.random_grayscale(x, on)
    sol = ops.solarize(x, on)
    for b in range(4):
        ref = TF.rgb_to_grayscale(x[b], num_output_channels=3) if on[b] else x[b]
        torch.testing.assert_close(out[b], ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(sol[b], TF.solarize(x[b], 0.5) if on[b] else x[b], atol=0, rtol=0)
    one = ops.to_float(images(2, c=1))
    assert torch.equal(ops.random_grayscale(one, on[:2]), one)


@pytest.mark.parametrize("kernel", [9, 23])
def test_blur_matches_torchvision_per_image_sigma(kernel):
    x = ops.to_float(images(4, size=32))
    sigma = torch.tensor([0.1, 0.7, 1.3, 2.0])
    on = torch.tensor([True, True, False, True])
    out = ops.gaussian_blur(x, sigma, on, kernel)
    for b in range(4):
        ref = TF.gaussian_blur(x[b], [kernel, kernel], [float(sigma[b])] * 2) if on[b] else x[b]
        torch.testing.assert_close(out[b], ref, atol=1e-5, rtol=0)
    assert torch.equal(out[2], x[2])  # unit impulse: exactly unchanged


def test_color_jitter_honours_each_images_op_order():
    x = ops.to_float(images(4))
    factors = torch.tensor([[1.6, 0.5, 1.8, 0.2]]).expand(4, 4).contiguous()
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]])
    out = ops.color_jitter(x, factors, order, torch.ones(4, dtype=torch.bool))
    jitter = {0: TF.adjust_brightness, 1: TF.adjust_contrast, 2: TF.adjust_saturation, 3: TF.adjust_hue}
    for b in range(4):
        ref = x[b]
        for op in order[b].tolist():
            ref = jitter[op](ref, float(factors[b, op]))
        torch.testing.assert_close(out[b], ref, atol=1e-5, rtol=0)
    assert not torch.allclose(
        out[0], ops.color_jitter(x, factors, order[[1, 0, 2, 3]], torch.ones(4, dtype=torch.bool))[0]
    )


def test_color_jitter_leaves_images_that_are_off_exactly_unchanged_and_one_channel_skips_saturation():
    x = ops.to_float(images(4))
    factors = torch.tensor([[1.6, 0.5, 1.8, 0.2], [1.0, 1.0, 1.0, 0.0], [0.7, 1.3, 0.4, -0.3], [1.0, 1.0, 1.0, 0.0]])
    order = torch.tensor([[3, 0, 1, 2], [0, 3, 1, 2], [1, 2, 3, 0], [2, 1, 0, 3]])
    on = torch.tensor([True, False, True, False])
    out = ops.color_jitter(x, factors, order, on)
    assert torch.equal(out[1], x[1]) and torch.equal(out[3], x[3])  # bit for bit, not just close
    assert not torch.allclose(out[0], x[0])
    gray = ops.to_float(images(2, c=1))
    out = ops.color_jitter(gray, factors[[0, 2]], order[[0, 2]], on[[0, 2]], hue=False)
    for b, i in enumerate((0, 2)):
        ref = gray[b]
        for op in order[i].tolist():
            if op in (ops.BRIGHTNESS, ops.CONTRAST):  # saturation and hue do nothing to one channel
                blend = TF.adjust_brightness if op == ops.BRIGHTNESS else TF.adjust_contrast
                ref = blend(ref, float(factors[i, op]))
        torch.testing.assert_close(out[b], ref, atol=1e-6, rtol=0)


def test_select_is_where_by_image_bit_for_bit():
    a, b = ops.to_float(images(4, seed=1)), ops.to_float(images(4, seed=2))
    on = torch.tensor([True, False, False, True])
    assert torch.equal(ops.where_images(on, a, b), torch.where(on.view(-1, 1, 1, 1), a, b))


def test_blur_passes_of_cpu_and_gpu_compute_the_same_sums():
    x = ops.to_float(images(3, size=24))
    taps = ops.gaussian_kernels(torch.tensor([0.3, 1.0, 2.0]), torch.tensor([True, True, False]), 9)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    shifted, depthwise = ops._separable_shifted(padded, taps), ops._separable_depthwise(padded, taps)
    assert shifted.shape == depthwise.shape == x.shape
    # two orders of 2 x 9 fp32 multiply-adds on values in [0, 1]: up to ~18 ulp apart on some CPUs
    torch.testing.assert_close(shifted, depthwise, atol=4e-6, rtol=0)


@pytest.mark.parametrize("recipe, size", [("stl10", 32), ("byol", 40)])
def test_cpu_chunks_give_the_same_batch_as_one_pass(recipe, size, monkeypatch):
    """On CPU a batch is augmented a few images at a time (cache); every op is per image, so the
    result must be the whole-batch result exactly."""
    import ablate.train.augment as augment

    aug, x = build_augment(recipe, size, 3), images(10, size=48)
    p = aug.sample_params(10, gen(3), view=1, in_size=(48, 48))
    monkeypatch.setattr(augment, "CPU_CHUNK_FLOATS", 10**9)
    whole = aug.apply(x, p)
    monkeypatch.setattr(augment, "CPU_CHUNK_FLOATS", 3 * 3 * 48 * 48)  # chunks of 3, 3, 3, 1 images
    assert torch.equal(aug.apply(x, p), whole)


def reference(x: torch.Tensor, p: AugmentParams, aug: BatchAugment) -> torch.Tensor:
    """The recipe per image with torchvision's functional ops and the given parameters."""
    r, outs = aug.recipe, []
    jitter = {0: TF.adjust_brightness, 1: TF.adjust_contrast, 2: TF.adjust_saturation, 3: TF.adjust_hue}
    for b in range(x.shape[0]):
        i, j, h, w = (int(v) for v in p.box[b])
        y = TF.resized_crop(ops.to_float(x[b]), i, j, h, w, [aug.size, aug.size], antialias=True)
        y = TF.horizontal_flip(y) if p.flip[b] else y
        if p.jitter[b]:
            for op in p.order[b].tolist():
                y = jitter[op](y, float(p.factors[b, op]))
        y = TF.rgb_to_grayscale(y, num_output_channels=3) if p.gray[b] else y
        y = TF.gaussian_blur(y, [aug.blur_kernel] * 2, [float(p.sigma[b])] * 2) if p.blur[b] else y
        y = TF.solarize(y, 0.5) if p.solarize[b] else y
        outs.append(TF.normalize(y, list(r.mean), list(r.std)) if r.mean else y)
    return torch.stack(outs)


@pytest.mark.parametrize("recipe, view", [("byol", 1), ("stl10", 0), ("cifar10", 0)])
def test_apply_matches_torchvision_functional_pipeline(recipe, view):
    aug, x = build_augment(recipe, 32, 3), images(12, size=32)
    p = aug.sample_params(12, gen(5), view=view)
    if recipe == "byol":  # make sure every branch is exercised in this batch
        p.blur[:6], p.solarize[:6], p.gray[:3], p.jitter[:9] = True, True, True, True
        p.factors[:9] = torch.tensor([1.3, 0.7, 1.2, 0.05])
    torch.testing.assert_close(aug.apply(x, p), reference(x, p, aug), atol=2e-4, rtol=0)


# ------------------------------------------------------------------ recipes, shapes, normalisation
@pytest.mark.parametrize(
    "recipe, size, channels",
    [("stl10", 96, 3), ("cifar10", 32, 3), ("byol", 48, 3), ("digits", 16, 1), ("none", 16, 1), ("stl10", 24, 3)],
)
def test_output_shape_dtype_range(recipe, size, channels):
    x = images(5, c=channels, size=max(size, 16))
    out = build_augment(recipe, size, channels)(x, gen(0), view=1)
    assert out.shape == (5, channels, size, size) and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    r = RECIPES[recipe]
    if r.mean is None:
        assert out.min() >= 0 and out.max() <= 1
    else:  # normalised: undo it and land in [0, 1]
        mean, std = torch.tensor(r.mean).view(1, 3, 1, 1), torch.tensor(r.std).view(1, 3, 1, 1)
        raw = out * std + mean
        assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5 and out.min() < 0


def test_digits_recipe_on_one_channel_never_flips_and_jitters_brightness_contrast():
    aug = build_augment("digits", 16, 1)
    p = aug.sample_params(500, gen(0))
    assert not bool(p.flip.any())
    assert torch.equal(p.factors[:, 2:], torch.tensor([[1.0, 0.0]]).expand(500, 2))  # no saturation / hue
    assert p.factors[p.jitter, :2].std(0).min() > 0.1
    area = p.box[:, 2] * p.box[:, 3] / 256
    assert area.min() >= 0.3  # scale (0.4, 1) up to pixel rounding


def test_none_recipe_is_the_eval_transform():
    x = images(3, size=32)
    assert torch.equal(build_augment("none", 32, 3)(x, gen(0)), eval_transform("none", 32, 3)(x))
    assert torch.equal(build_augment("none", 32, 3)(x, gen(0)), x.float() / 255)


def test_eval_transform_normalises_and_resizes_like_torchvision():
    x = images(2, size=40)
    out = eval_transform("cifar10", 32, 3)(x)
    ref = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize(32, antialias=True),
            v2.CenterCrop(32),
            v2.Normalize(list(RECIPES["cifar10"].mean), list(RECIPES["cifar10"].std)),
        ]
    )
    for b in range(2):
        torch.testing.assert_close(out[b], ref(x[b]), atol=1e-5, rtol=0)
    plain = eval_transform("stl10", 40, 3)(x)
    assert torch.equal(plain, x.float() / 255)


def test_precropped_views_take_the_view_and_skip_the_crop():
    aug = build_augment("none", 16, 3)
    views = torch.stack((images(3, size=16, seed=1), images(3, size=16, seed=2)), dim=1)  # (B, 2, C, S, S)
    assert torch.equal(aug(views, gen(0), view=1), views[:, 1].float() / 255)
    byol = build_augment("byol", 16, 3)
    assert byol(views, gen(0), view=0).shape == (3, 3, 16, 16)


def test_tiny_images_cap_the_blur_kernel():
    aug = build_augment("byol", 8, 3)
    assert aug.blur_kernel == 15
    assert aug(images(2, size=8), gen(0)).shape == (2, 3, 8, 8)


@pytest.mark.parametrize("recipe, size, channels", [("stl10", 32, 3), ("byol", 32, 3), ("digits", 16, 1)])
def test_torchvision_pipeline_builds_the_same_recipe(recipe, size, channels):
    torch.manual_seed(0)
    t = torchvision_transform(recipe, size, channels, view=1)
    x = images(1, c=channels, size=size)[0]
    out = t(x)
    assert out.shape == (channels, size, size) and out.dtype == torch.float32
    names = [type(s).__name__ for s in t.transforms]
    assert ("RandomHorizontalFlip" in names) == RECIPES[recipe].flip
    assert ("Normalize" in names) == (RECIPES[recipe].mean is not None)
    assert not torch.equal(out, t(x))  # random per call


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(KeyError, match="stl10"):
        build_augment("simclr", 32, 3)


def test_recipe_constants_are_the_papers():
    stl, cifar, byol = RECIPES["stl10"], RECIPES["cifar10"], RECIPES["byol"]
    assert stl.jitter == (0.8, 0.8, 0.8, 0.2) and stl.blur_kernel == 9 and stl.blur_p == (1.0,) and stl.mean is None
    assert cifar.jitter == (0.4, 0.4, 0.4, 0.1) and cifar.blur_kernel == 0 and cifar.std == (0.2023, 0.1994, 0.2010)
    assert byol.blur_p == (1.0, 0.1) and byol.solarize_p == (0.0, 0.2) and byol.blur_kernel == 23
    assert all(r.jitter_p == 0.8 and r.gray_p == 0.2 for r in (stl, cifar, byol))
    assert math.isclose(stl.crop_scale[0], 0.08)


# ------------------------------------------------------------------ CUDA (skipped without a GPU)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("recipe", ["stl10", "byol", "digits"])
def test_cuda_augment_matches_cpu_and_never_synchronises(recipe):
    channels = 1 if recipe == "digits" else 3
    aug, x = build_augment(recipe, 32, channels), images(16, c=channels, size=32)
    p = aug.sample_params(16, gen(0), view=1)
    torch.testing.assert_close(
        aug.apply(x.cuda(), p.to(torch.device("cuda"))).cpu(), aug.apply(x, p), atol=2e-4, rtol=0
    )
    g = torch.Generator(device="cuda").manual_seed(0)
    xc = x.cuda()
    aug(xc, g, view=1)  # warm-up: uploads the recipe's constants once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = aug(xc, g, view=1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.is_cuda and out.shape == (16, channels, 32, 32)
