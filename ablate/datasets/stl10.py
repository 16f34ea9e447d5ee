"""STL-10 (torchvision's binary layout): its record, loader and ``ablate data check``.

The paper's protocol (reference doc Sec. 3): pretrain on train + unlabeled (105k), the probe trains
on train (5k) and tests on test (8k). The images stream from their files into one uint8 tensor on
the trial's device, chunk by chunk; ``ablate data check`` sizes the 2.7 GB unlabeled file and never
reads it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ablate.datasets.dataset import Archive, Dataset, Sizes, find_files
from ablate.datasets.download import human
from ablate.datasets.recipes import PHOTO
from ablate.datasets.summary import official_line, per_class
from ablate.errors import DatasetError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits

FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin"]
SIDE, CLASSES = 96, 10
SHAPE = (3, SIDE, SIDE)
IMAGE_BYTES = 3 * SIDE * SIDE
OFFICIAL = {"train": 5000, "test": 8000, "unlabeled": 100_000}
_CHUNK = 4096  # images per read: bounds host memory while the 2.7 GB unlabeled file streams in


def binary_folder(root: Path) -> Path:
    note = "torchvision's binary layout, stl10_binary.tar.gz unpacked"
    return find_files(root, ARCHIVE.folder, FILES, RECORD.title, note, RECORD.how_to_get(root))


def count(path: Path) -> int:
    """Images in an ``_X.bin`` file, from its size."""
    size = path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise DatasetError(
            f"STL-10 file {path} is malformed: {size} bytes is not a positive multiple of {IMAGE_BYTES} (3x96x96 "
            "uint8 images); is it truncated? (move the folder aside and run `ablate data fetch stl10` for a fresh copy)"
        )
    return size // IMAGE_BYTES


def labels(path: Path, n: int) -> np.ndarray:
    """The ``n`` labels of a ``_y.bin`` file (one byte per image, 1..10) as int64 0..9; sized before it is read."""
    size = path.stat().st_size
    y = np.fromfile(path, dtype=np.uint8) if size == n else np.zeros(0, np.uint8)
    if size != n or y.min() < 1 or y.max() > CLASSES:
        found = f"{y.min()}..{y.max()}" if size == n else f"{size} bytes"
        raise DatasetError(
            f"STL-10 file {path} is malformed: expected {n} labels in 1..{CLASSES} (one byte per image of the "
            f"matching _X.bin), got {found}"
        )
    return y.astype(np.int64) - 1


def _read_images(path: Path, n: int, out: Tensor) -> None:
    """Stream ``n`` images into ``out`` (n, 3, 96, 96) on its device, chunk by chunk.

    The file stores each channel column-major (torchvision transposes (0, 1, 3, 2) after reading);
    the transpose happens on the device while copying into place, so the file is read once and
    the images are copied once."""
    import torch

    for i in range(0, n, _CHUNK):
        k = min(_CHUNK, n - i)
        chunk = np.fromfile(path, dtype=np.uint8, count=k * IMAGE_BYTES, offset=i * IMAGE_BYTES)
        chunk = torch.from_numpy(chunk).view(k, *SHAPE).to(out.device)  # (k, C, W, H)
        out[i : i + k].copy_(chunk.transpose(2, 3))


def load(cfg: DataConfig, device: torch.device) -> Splits:
    import torch  # on use: the records load without torch (`ablate data list`, sweep checks)

    from ablate.datasets.images import Splits, TensorImageSet

    folder = binary_folder(RECORD.root(cfg))
    n_train, n_test, n_unl = (count(folder / f) for f in ("train_X.bin", "test_X.bin", "unlabeled_X.bin"))
    train_y = torch.from_numpy(labels(folder / "train_y.bin", n_train)).to(device)
    test_y = torch.from_numpy(labels(folder / "test_y.bin", n_test)).to(device)
    # train and unlabeled share one tensor: the probe's train split is a view of its first rows
    pretrain_x = torch.empty(n_train + n_unl, *SHAPE, dtype=torch.uint8, device=device)
    _read_images(folder / "train_X.bin", n_train, pretrain_x[:n_train])
    _read_images(folder / "unlabeled_X.bin", n_unl, pretrain_x[n_train:])
    test_x = torch.empty(n_test, *SHAPE, dtype=torch.uint8, device=device)
    _read_images(folder / "test_X.bin", n_test, test_x)
    pretrain_y = torch.cat([train_y, torch.full((n_unl,), -1, dtype=torch.int64, device=device)])
    pretrain = TensorImageSet(pretrain_x, pretrain_y)
    probe_train = TensorImageSet(pretrain_x[:n_train], train_y)
    return Splits(pretrain, probe_train, TensorImageSet(test_x, test_y), CLASSES, RECORD.channels, SIDE, RECORD.recipe)


def check(folder: Path) -> list[str]:
    """What `ablate data check stl10` prints: sized from the files, only the label files read."""
    d = binary_folder(folder)
    n = {s: count(d / f"{s}_X.bin") for s in ("train", "test", "unlabeled")}
    lines = [f"STL-10 in {d}"]
    for split in ("train", "test"):
        y = labels(d / f"{split}_y.bin", n[split])
        size = human((d / f"{split}_X.bin").stat().st_size)
        counts = per_class(np.bincount(y, minlength=CLASSES))
        lines.append(f"  {split:<9} {n[split]:>7} images 3x96x96 uint8 ({size}), {counts}")
    size = human((d / "unlabeled_X.bin").stat().st_size)
    lines.append(f"  unlabeled {n['unlabeled']:>7} images 3x96x96 uint8 ({size}), no labels (sized, not read)")
    return [*lines, official_line(OFFICIAL, n)]


def sizes(cfg: DataConfig) -> Sizes:
    train, test, unlabeled = OFFICIAL["train"], OFFICIAL["test"], OFFICIAL["unlabeled"]
    return Sizes(train + unlabeled, train, test, resident=train + test + unlabeled, side=SIDE)


ARCHIVE = Archive(
    url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    md5="91f7769df0f17e558f3565bffb0c7dfb",
    folder="stl10_binary",
    size=2_640_397_119,
    unpacked=sum(OFFICIAL.values()) * IMAGE_BYTES + OFFICIAL["train"] + OFFICIAL["test"],  # + a byte per label
    page="https://cs.stanford.edu/~acoates/stl10/",
)
RECORD = Dataset(
    name="stl10",
    title="STL-10",
    doc="the binary version; the paper's protocol: pretrain on train + unlabeled, probe train -> test",
    load=load,
    sizes=sizes,
    channels=3,
    image_size=SIDE,
    classes=CLASSES,
    recipe="stl10",
    # The paper's: blur always, no normalisation.
    augmentation=replace(PHOTO, jitter=(0.8, 0.8, 0.8, 0.2), blur_kernel=9, blur_p=(1.0,)),
    folder="stl10",
    layout="`stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin` (or be that folder)",
    marks=(ARCHIVE.folder, FILES[0]),
    splits=OFFICIAL,
    archive=ARCHIVE,
    check=check,
)
