"""The splits a trial sees: :class:`ImageSet` (what the loop and the evaluation iterate), the
in-memory :class:`TensorImageSet`, and :class:`Splits` (pretrain / probe-train / probe-test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]  # uint8 images (B, C, H, W) and int64 labels (B,), -1 = unlabeled


class ImageSet(Protocol):
    """The one interface the trial loop and the evaluation use.

    ``batches`` yields (x, labels) on the trial's device: x uint8 (B, C, H, W), or (B, V, C, S, S)
    for a set that yields V random-resized crops per image made in its decode workers
    (``views`` = V; :class:`ablate.train.augment.BatchAugment` takes one view each call); labels int64
    (B,), -1 where unlabeled.
    """

    views: int

    def __len__(self) -> int: ...

    def batches(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None, drop_last: bool
    ) -> Iterator[Batch]: ...


class TensorImageSet:
    """A split held as one uint8 tensor (N, C, H, W) and labels (N,) on the trial's device."""

    views = 0

    def __init__(self, images: Tensor, labels: Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1] or labels.device != images.device:
            raise ValueError(f"labels must be ({images.shape[0]},) on {images.device}, got {tuple(labels.shape)}")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> Iterator[Batch]:
        """Batches of the split. With ``shuffle``, the order is ``randperm`` of the generator (on
        its own device, CPU for bit-for-bit repeatable runs), moved to the data's device once per
        pass; without it, batches are views of the stored tensor (no copy)."""
        n = len(self)
        stop = n - n % batch_size if drop_last else n
        if not shuffle:
            for i in range(0, stop, batch_size):
                yield self.images[i : i + batch_size], self.labels[i : i + batch_size]
            return
        gen_device = generator.device if generator is not None else self.device
        order = torch.randperm(n, generator=generator, device=gen_device)
        if order.device != self.device:
            order = order.pin_memory() if self.device.type == "cuda" else order
            order = order.to(self.device, non_blocking=True)
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size]
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)


@dataclass(frozen=True)
class Splits:
    """A dataset's three splits and what a trial needs to know about its images."""

    pretrain: ImageSet  # self-supervised pretraining (labels -1 where the data has none)
    probe_train: ImageSet  # linear probe / kNN memory bank
    probe_test: ImageSet  # probe / kNN evaluation
    num_classes: int
    channels: int
    native_size: int  # side of the stored images (the crop size when data.image_size is 0)
    recipe: str  # the augmentation recipe data.augment=auto stands for
