"""``ablate data check``: what a dataset folder holds (files, sizes, shapes, class counts), checked
with the loaders' own validation, without loading the images: STL-10 is sized from its files and
read only for its label files (the 2.7 GB unlabeled file is never read), CIFAR-10 one batch at a
time, an image folder by scanning it and opening a few images.

Each check takes the folder a trial's ``data.root`` would name and returns the lines it prints; a
missing or malformed dataset raises the loaders' :class:`DatasetError`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ablate.datasets import loaders as data
from ablate.datasets.download import human
from ablate.datasets.registry import SUBFOLDER, TITLES, data_root, known
from ablate.errors import DatasetError

# the sizes each split has in the official release
OFFICIAL = {
    "stl10": {"train": 5000, "test": 8000, "unlabeled": 100_000},
    "cifar10": {"train": 50_000, "test": 10_000},
    "imagefolder": {"train": 1_281_167, "val": 50_000},  # ImageNet (ILSVRC2012)
}
# what marks a folder as holding the dataset (itself, or one level down as the archives unpack)
MARKERS = {
    "stl10": ("stl10_binary", "train_X.bin"),
    "cifar10": ("cifar-10-batches-py", "data_batch_1"),
    "imagefolder": ("train", "val"),
}
OPEN_PER_SPLIT = 4  # images decoded per split of an image folder


def per_class(counts: np.ndarray) -> str:
    present = int((counts > 0).sum())
    shown = f"{counts.min()} per class" if counts.min() == counts.max() else f"{counts.min()}..{counts.max()} per class"
    return f"{len(counts)} classes, {shown}" + (
        f" ({len(counts) - present} classes absent)" if present < len(counts) else ""
    )


def official_line(name: str, found: dict[str, int]) -> str:
    want = OFFICIAL[name]
    sizes = ", ".join(f"{k} {v}" for k, v in want.items())
    if {k: found.get(k) for k in want} == want:
        return f"  the official sizes ({sizes})"
    return f"  note: not the official sizes ({sizes}): a subset, or another dataset in this layout"


def check_stl10(folder: Path) -> list[str]:
    d = data.stl_folder(folder)
    n = {s: data.stl_count(d / f"{s}_X.bin") for s in ("train", "test", "unlabeled")}
    lines = [f"STL-10 in {d}"]
    for split in ("train", "test"):
        y = data.stl_labels(d / f"{split}_y.bin", n[split]).numpy()
        size = human((d / f"{split}_X.bin").stat().st_size)
        lines.append(
            f"  {split:<9} {n[split]:>7} images 3x96x96 uint8 ({size}), {per_class(np.bincount(y, minlength=10))}"
        )
    size = human((d / "unlabeled_X.bin").stat().st_size)
    lines.append(f"  unlabeled {n['unlabeled']:>7} images 3x96x96 uint8 ({size}), no labels (sized, not read)")
    return [*lines, official_line("stl10", n)]


def check_cifar10(folder: Path) -> list[str]:
    d = data.cifar_folder(folder)
    lines, found = [f"CIFAR-10 in {d}"], {}
    for split, files in (("train", data.CIFAR_FILES[:5]), ("test", data.CIFAR_FILES[5:])):
        counts = np.zeros(10, dtype=np.int64)
        for f in files:  # one batch in memory at a time
            counts += np.bincount(data.read_cifar_batch(d / f)[1], minlength=10)
        found[split] = int(counts.sum())
        lines.append(
            f"  {split:<5} {found[split]:>6} images 3x32x32 uint8 in {len(files)} batches, {per_class(counts)}"
        )
    names = _cifar_names(d / "batches.meta")
    if names:
        lines.append(f"  classes: {', '.join(names)}")
    return [*lines, official_line("cifar10", found)]


def _cifar_names(path: Path) -> list[str]:
    """The class names of ``batches.meta``, which the loader does not need: [] when absent or unreadable."""
    try:
        with open(path, "rb") as f:
            return [str(n) for n in pickle.load(f, encoding="latin1").get("label_names", [])]
    except Exception:  # optional file: anything unreadable just leaves the names out
        return []


def check_imagefolder(folder: Path) -> list[str]:
    import torch

    from ablate.datasets.imagefolder import decode_rgb, load_imagefolder

    _val_is_sorted(folder)
    splits = load_imagefolder(folder, 224, "byol", 0, torch.device("cpu"))
    lines, found = [f"image folder {folder}"], {}
    for split, images in (("train", splits.probe_train), ("val", splits.probe_test)):
        samples = images.items.samples
        found[split] = len(samples)
        counts = np.bincount([label for _, label in samples], minlength=splits.num_classes)
        opened = [_open(p, decode_rgb) for p, _ in samples[:: max(1, len(samples) // OPEN_PER_SPLIT)][:OPEN_PER_SPLIT]]
        sizes = ", ".join(f"{w}x{h}" for w, h in opened)
        lines.append(f"  {split:<5} {found[split]:>8} images, {per_class(counts)}; opened {len(opened)}: {sizes} RGB")
    return [*lines, official_line("imagefolder", found)]


def _open(path: str, decode) -> tuple[int, int]:
    """(width, height) of an image as the loader's workers decode it; a DatasetError when they could not."""
    try:
        return decode(path).size
    except Exception as e:  # PIL raises many kinds for a damaged file
        raise DatasetError(f"cannot decode image {path}: {e}") from None


def _val_is_sorted(folder: Path) -> None:
    val = folder / "val"
    if val.is_dir() and not any(p.is_dir() for p in val.iterdir()) and any(val.iterdir()):
        raise DatasetError(
            f"image folder {val} holds images but no class folders; sort them into val/<class>/ (ImageNet: "
            "torchvision's ImageNet(root, split='val') or valprep.sh; `ablate data fetch imagenet` explains)"
        )


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "stl10": check_stl10,
    "cifar10": check_cifar10,
    "imagefolder": check_imagefolder,
    "imagenet": check_imagefolder,
}
DATA_NAME = {"stl10": "stl10", "cifar10": "cifar10", "imagefolder": "imagefolder", "imagenet": "imagefolder"}


def locate(name: str, root: str | Path | None) -> Path:
    """The folder holding dataset ``name``: ``<root>/<its folder>`` (``data/stl10``), or ``root`` itself."""
    base = data_root(root)
    sub = base / SUBFOLDER[name]
    for candidate in (sub, base):
        if candidate.is_dir() and any((candidate / m).exists() for m in MARKERS[DATA_NAME[name]]):
            return candidate
    how = (
        f"fetch it with: ablate data fetch {name} --root {base}"
        if name in ("stl10", "cifar10")
        else "prepare it as `ablate data fetch imagenet` explains, or give --root the folder holding train/ and val/"
    )
    raise DatasetError(f"data check {name}: no {TITLES[name]} in {sub} (nor in {base}); {how}")


def check_dataset(name: str, root: str | Path | None = None) -> str:
    """What ``ablate data check NAME --root ROOT`` prints; DatasetError (one line) when it is missing or malformed."""
    known(name, list(CHECKS), "check")
    folder = locate(name, root)
    lines = CHECKS[name](folder)
    return "\n".join([*lines, f"ok: use it with data.name: {DATA_NAME[name]}, data.root: {folder}"])
