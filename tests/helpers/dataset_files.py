"""Tiny datasets in the real on-disk formats, written by the tests (STL-10, CIFAR-10, an image folder)."""

from __future__ import annotations

import pickle

import numpy as np

from ablate.datasets import cifar10, stl10

COLOURS = {"cat": (250, 10, 10), "dog": (10, 10, 250), "eel": (10, 250, 10)}


def stl_images(n, seed):
    """(n, 3, 96, 96) uint8 images with a known, orientation-revealing layout (C, H, W)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
    img[:, 0, :8, :] = 255  # a bright band along the top of the red channel
    return img


def write_stl(folder, train=(1, 10, 4), test=(7, 1), unlabeled=2):
    """Files as STL-10 ships them: each channel stored column-major, labels 1..10 one byte each.
    Returns the images (N, C, H, W) per split."""
    folder.mkdir(parents=True, exist_ok=True)
    imgs = {"train": stl_images(len(train), 0), "test": stl_images(len(test), 1), "unlabeled": stl_images(unlabeled, 2)}
    for split, img in imgs.items():
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(img.transpose(0, 1, 3, 2)).tobytes())
    (folder / "train_y.bin").write_bytes(bytes(train))
    (folder / "test_y.bin").write_bytes(bytes(test))
    return imgs


def write_stl_sizes(folder, train, test, unlabeled):
    """STL-10 files of blank images with the given labels, the unlabeled file sparse (sized, no bytes)."""
    folder.mkdir(parents=True)
    for split, labels in (("train", train), ("test", test)):
        (folder / f"{split}_X.bin").write_bytes(bytes(len(labels) * stl10.IMAGE_BYTES))
        (folder / f"{split}_y.bin").write_bytes(bytes(labels))
    with open(folder / "unlabeled_X.bin", "wb") as f:
        f.truncate(unlabeled * stl10.IMAGE_BYTES)


def write_cifar(folder, per_batch=2, test=3, meta=None):
    """Pickled batches in the python-version format (a dict with 'data' (n, 3072) and 'labels');
    returns {file: (data, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for k, name in enumerate(cifar10.FILES):
        n = test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = [(k + i) % 10 for i in range(n)]
        batch = {"batch_label": name, "data": x, "labels": y, "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
        written[name] = (x, y)
    names = meta or [f"c{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return written


def write_images(root, split, counts, first=(30, 20), step=2):
    """``counts`` {class: n} solid-colour PNGs under root/split/class/, image i ``first`` widened by i * ``step``."""
    from PIL import Image

    for cls, n in counts.items():
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = COLOURS.get(cls, (10 * i, 0, 0))
            Image.new("RGB", (first[0] + step * i, first[1]), colour).save(root / split / cls / f"{i}.png")


def write_folder(root, train=None, val=None):
    write_images(root, "train", train or {"cat": 2, "dog": 3})
    write_images(root, "val", val or {"cat": 1, "dog": 1})
