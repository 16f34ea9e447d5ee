"""CIFAR-10 (the python version: pickled batches): its record, loader and ``ablate data check``.

The paper's protocol (reference doc Sec. 3): pretrain on train (50k), the probe trains on train and
tests on test (10k). The batch files are pickles, so they are read by :class:`BatchUnpickler`, which
builds nothing but dicts, lists, strings, numbers and numpy arrays: a crafted file cannot run code.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ablate.datasets.dataset import Archive, Dataset, Sizes, find_files
from ablate.datasets.recipes import PHOTO
from ablate.datasets.safefiles import open_to_read
from ablate.datasets.summary import official_line, per_class
from ablate.errors import DatasetError

if TYPE_CHECKING:
    import torch

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
SIDE, CLASSES = 32, 10
IMAGE_BYTES = 3 * SIDE * SIDE
TRAIN, TEST = 50_000, 10_000
OFFICIAL = {"train": TRAIN, "test": TEST}


def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2, for latin-1 only."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"it encodes bytes as {encoding!r}")
    return text.encode("latin-1")


_ARRAY = np.zeros(1)
_NUMPY = {  # what numpy 1.x and 2.x name when they pickle an array, a dtype or a scalar
    "_reconstruct": _ARRAY.__reduce__()[0],
    "_frombuffer": _ARRAY.__reduce_ex__(5)[0],
    "scalar": np.int64(0).__reduce__()[0],
}


class BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 file holds: dicts, lists, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if module.startswith(("numpy.core.", "numpy._core.")) and name in _NUMPY:
            return _NUMPY[name]
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no CIFAR-10 file holds")


def _unpickle(path: Path) -> object:
    with os.fdopen(open_to_read(path), "rb") as f:  # a regular file: a FIFO named batches.meta would block
        return BatchUnpickler(f, encoding="latin1").load()


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch as torchvision's CIFAR10 reads it -> uint8 (n, 3, 32, 32), int64 (n,)."""
    bad = f"CIFAR-10 file {path} is malformed"
    try:
        entry = _unpickle(path)
    except DatasetError:
        raise
    except Exception as e:  # unpickling garbage raises anything
        raise DatasetError(
            f"{bad}: cannot unpickle it ({type(e).__name__}: {e}); expected a python-version batch file (a pickled "
            "dict with 'data' and 'labels')"
        ) from None
    if not isinstance(entry, dict):
        raise DatasetError(f"{bad}: it holds a {type(entry).__name__}, not a dict with 'data' and 'labels'")
    data = entry.get("data", entry.get(b"data"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise DatasetError(
            f"{bad}: 'data' must be a uint8 array (n, {IMAGE_BYTES}), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    labels = _labels(entry.get("labels", entry.get(b"labels")), len(data), bad)
    return data.reshape(-1, 3, SIDE, SIDE), labels  # rows are channel-major (R, G, B planes), row by row


def _labels(raw: object, n: int, bad: str) -> np.ndarray:
    """``raw`` as int64 labels (n,) in 0..9: integers only (no floats, strings, huge or nested values)."""
    want = f"expected {n} labels in 0..{CLASSES - 1} for its {n} images"
    try:
        y = np.asarray([] if raw is None else raw)
    except Exception:  # ragged or otherwise not an array
        raise DatasetError(f"{bad}: {want}, got a {type(raw).__name__} that is no list of integers") from None
    if y.dtype.kind not in "iu" or y.shape != (n,) or n == 0:
        raise DatasetError(f"{bad}: {want}, got {y.size} values of type {y.dtype} and shape {y.shape}")
    if y.min() < 0 or y.max() >= CLASSES:
        raise DatasetError(f"{bad}: {want}, got labels in {y.min()}..{y.max()}")
    return y.astype(np.int64)


def load(cfg: DataConfig, device: torch.device) -> Splits:
    import torch  # on use: the records load without torch (`ablate data list`, sweep checks)

    from ablate.datasets.images import Splits, TensorImageSet

    folder = batches_folder(RECORD.root(cfg))
    parts = [read_batch(folder / f) for f in FILES]
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts[:5]])).to(device)
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts[:5]])).to(device)
    test = TensorImageSet(torch.from_numpy(parts[5][0]).to(device), torch.from_numpy(parts[5][1]).to(device))
    train = TensorImageSet(train_x, train_y)
    return Splits(train, train, test, CLASSES, RECORD.channels, SIDE, RECORD.recipe)


def batches_folder(root: Path) -> Path:
    note = "the python version, cifar-10-python.tar.gz, unpacked"
    return find_files(root, ARCHIVE.folder, FILES, RECORD.title, note, RECORD.how_to_get(root))


def check(folder: Path) -> list[str]:
    """What `ablate data check cifar10` prints: images and classes per split, one batch in memory at a time."""
    d = batches_folder(folder)
    lines, found = [f"CIFAR-10 in {d}"], {}
    for split, files in (("train", FILES[:5]), ("test", FILES[5:])):
        counts = np.zeros(CLASSES, dtype=np.int64)
        for f in files:
            counts += np.bincount(read_batch(d / f)[1], minlength=CLASSES)
        found[split] = int(counts.sum())
        lines.append(
            f"  {split:<5} {found[split]:>6} images 3x32x32 uint8 in {len(files)} batches, {per_class(counts)}"
        )
    names = _class_names(d / "batches.meta")
    if names:
        lines.append(f"  classes: {', '.join(names)}")
    return [*lines, official_line(OFFICIAL, found)]


def _class_names(path: Path) -> list[str]:
    """The class names of ``batches.meta``, which the loader does not need: [] when absent or unreadable."""
    try:
        names = _unpickle(path).get("label_names", [])  # type: ignore[attr-defined]
        return [str(n) for n in names][:CLASSES] if isinstance(names, list) else []
    except Exception:  # an optional file: anything unreadable just leaves the names out
        return []


ARCHIVE = Archive(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    size=170_498_071,
    unpacked=(TRAIN + TEST) * IMAGE_BYTES + 6 * 600_000,  # the images + each batch's pickled labels and names
    page="https://www.cs.toronto.edu/~kriz/cifar.html",
)
RECORD = Dataset(
    name="cifar10",
    title="CIFAR-10",
    doc="the python version; the paper's protocol: pretrain on train, probe train -> test",
    load=load,
    sizes=lambda cfg: Sizes(TRAIN, TRAIN, TEST, resident=TRAIN + TEST, side=SIDE),
    channels=3,
    image_size=SIDE,
    classes=CLASSES,
    recipe="cifar10",
    # The paper's: no blur (32x32 is too small for it), CIFAR statistics.
    augmentation=replace(
        PHOTO, jitter=(0.4, 0.4, 0.4, 0.1), mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010)
    ),
    folder="cifar10",
    layout="`cifar-10-batches-py/{data_batch_1..5,test_batch}` (or be that folder)",
    marks=(ARCHIVE.folder, FILES[0]),
    splits=OFFICIAL,
    archive=ARCHIVE,
    check=check,
)
