"""Image-folder splits as :class:`FolderImageSet`, whose images decode in DataLoader workers.

What the folder holds is scanned by :mod:`ablate.datasets.imagefolder`. Images too many to hold on
the device decode in DataLoader workers (PIL). Each worker does only what needs the
full-resolution image, so the bytes sent to the device are small and fixed-size: pretraining
images get one random-resized crop per view (V = 2 uint8 crops per image: the two views of BYOL
must be independent crops), probe images are resized and center-cropped (resize to size / 0.875,
the usual 256 -> 224). Batches are pinned and copied to the device
without blocking; flip, colour, blur, solarize and normalisation follow there, batched
(:class:`ablate.train.augment.BatchAugment` takes one pre-cropped view per call).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ablate.datasets.images import Batch, Splits
from ablate.datasets.recipes import Recipe
from ablate.errors import DatasetError

PRETRAIN_VIEWS = 2


def decode_rgb(path: str):
    """A file -> RGB PIL image. PIL (libjpeg-turbo) handles every ImageNet file, CMYK JPEGs
    included; the crop is then taken on the PIL image, so only the small crop becomes a tensor."""
    with Image.open(path) as img:
        return img.convert("RGB")


class _Items(Dataset):
    """(path, label) samples -> (uint8 image or views, label); picklable for worker processes."""

    def __init__(self, samples: list[tuple[str, int]], transform: v2.Transform, views: int):
        self.samples, self.transform, self.views = samples, transform, views

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        path, label = self.samples[i]
        try:
            image = decode_rgb(path)
        except Exception as e:
            raise DatasetError(f"cannot decode image {path}: {e}") from None
        if self.views:  # independent random crops, one per view: (V, 3, S, S) uint8
            return torch.stack([self.transform(image) for _ in range(self.views)]), label
        return self.transform(image), label


class FolderImageSet:
    """A split of an image folder, decoded by ``workers`` DataLoader processes (0 = in the trial's
    process). ``views`` > 0: batches are (B, views, 3, S, S) random-resized crops; 0: (B, 3, S, S)."""

    def __init__(
        self, samples: list[tuple[str, int]], transform: v2.Transform, views: int, device: torch.device, workers: int
    ):
        self.items = _Items(samples, transform, views)
        self.views, self.device, self.workers = views, torch.device(device), workers
        self._loaders: dict[tuple, DataLoader] = {}  # one per batching, so persistent workers persist

    def __len__(self) -> int:
        return len(self.items)

    def _loader(self, batch_size: int, shuffle: bool, generator: torch.Generator | None, drop_last: bool) -> DataLoader:
        key = (batch_size, shuffle, drop_last, id(generator))
        if key not in self._loaders:
            if generator is not None and generator.device.type != "cpu":
                raise ValueError("FolderImageSet shuffles with a CPU generator (the DataLoader's sampler)")
            self._loaders[key] = DataLoader(
                self.items,
                batch_size=batch_size,
                shuffle=shuffle,
                generator=generator,
                drop_last=drop_last,
                num_workers=self.workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.workers > 0,
                prefetch_factor=4 if self.workers > 0 else None,
            )
        return self._loaders[key]

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> Iterator[Batch]:
        batches = iter(self._loader(batch_size, shuffle, generator, drop_last))
        while True:
            try:
                x, y = next(batches)
            except StopIteration:
                return
            except DatasetError as e:  # re-raised from a worker with its traceback: keep one line
                raise DatasetError(str(e).strip().splitlines()[-1].split("DatasetError: ", 1)[-1]) from None
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def folder_splits(
    train: list[tuple[str, int]],
    val: list[tuple[str, int]],
    num_classes: int,
    size: int,
    r: Recipe,
    workers: int,
    device: torch.device,
    auto: str,
) -> Splits:
    """Pretrain and probe on the ``train`` samples, test on ``val``: crops of ``size`` made in the
    workers as the recipe ``r`` asks (two random-resized crops per image, or one centre crop when it
    has none); ``auto`` is the recipe data.augment: auto stands for."""
    probe = v2.Compose([v2.Resize(int(size / 0.875), antialias=True), v2.CenterCrop(size), v2.PILToTensor()])
    if r.crop_scale:  # the recipe's random-resized crop, at full resolution in the worker
        crop = v2.Compose(
            [v2.RandomResizedCrop(size, scale=r.crop_scale, ratio=r.crop_ratio, antialias=True), v2.PILToTensor()]
        )
        views = PRETRAIN_VIEWS
    else:  # no random crop in the recipe: one resized, center-cropped image
        crop, views = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.PILToTensor()]), 0
    return Splits(
        pretrain=FolderImageSet(train, crop, views, device, workers),
        probe_train=FolderImageSet(train, probe, 0, device, workers),
        probe_test=FolderImageSet(val, probe, 0, device, workers),
        num_classes=num_classes,
        channels=3,
        native_size=size,
        recipe=auto,
    )


__all__ = ["FolderImageSet", "decode_rgb", "folder_splits"]
