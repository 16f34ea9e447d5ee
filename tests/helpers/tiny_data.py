"""Tiny datasets in the official on-disk formats (STL-10 binary, CIFAR-10's python pickles, an ImageNet
image folder), written by the tests under one data root laid out as ``ablate data fetch`` lays it out
(``<root>/stl10/stl10_binary``, ``<root>/cifar10/cifar-10-batches-py``, ``<root>/imagenet/{train,val}``),
so a shipped sweep's ``${ABLATE_DATA:-data}/...`` finds them with ABLATE_DATA pointed at the root."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

STL_SPLITS = {"train": 16, "test": 8, "unlabeled": 16}
CIFAR_PER_BATCH, CLASSES = 8, 10


def write_stl10(folder: Path, rng: np.random.Generator) -> None:
    """uint8 images stored channel by channel, column-major (as STL-10 ships them); labels 1..10."""
    folder.mkdir(parents=True)
    for split, n in STL_SPLITS.items():
        (folder / f"{split}_X.bin").write_bytes(rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tobytes())
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((np.arange(n) % CLASSES + 1).astype(np.uint8).tobytes())


def write_cifar10(folder: Path, rng: np.random.Generator) -> None:
    """Pickled dicts with 'data' (n, 3072) uint8 and 'labels', as the python version ships them."""
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (CIFAR_PER_BATCH, 3072), dtype=np.uint8)
        labels = [i % CLASSES for i in range(CIFAR_PER_BATCH)]
        (folder / name).write_bytes(pickle.dumps({"batch_label": name, "data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(CLASSES)]}))


def write_image_folder(folder: Path, rng: np.random.Generator, per_class: dict[str, int]) -> None:
    """``<split>/<class>/<i>.png``: small RGB images, two classes."""
    from PIL import Image

    for split, n in per_class.items():
        for cls in ("n01", "n02"):
            (folder / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / cls / f"{i}.png")


def write_data_root(root: Path) -> Path:
    """Every on-disk dataset of the shipped sweeps, tiny, under ``root``; returns ``root``."""
    rng = np.random.default_rng(0)
    write_stl10(root / "stl10" / "stl10_binary", rng)
    write_cifar10(root / "cifar10" / "cifar-10-batches-py", rng)
    write_image_folder(root / "imagenet", rng, {"train": 4, "val": 2})
    return root
