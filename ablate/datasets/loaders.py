"""Datasets as :class:`ImageSet` splits: what a trial pretrains on and what the probe trains and tests on.

Paper protocol (reference doc Sec. 3): STL-10 pretrains on train + unlabeled (105k) and probes
train (5k) -> test (8k); CIFAR-10 pretrains on train (50k) and probes train -> test (10k). The
offline ``digits`` (scikit-learn) and ``fake`` sets follow the CIFAR-10 pattern.

Small-image datasets live as one uint8 tensor on the trial's device (:class:`TensorImageSet`):
batches are index selections on the device, with no DataLoader and no host synchronisation.
ImageFolder data (ImageNet layout) decodes in DataLoader workers (:mod:`ablate.datasets.imagefolder`).
Loading never downloads: a missing or malformed dataset raises :class:`DatasetError` naming the
path, the files expected there and the command that gets them (``ablate data fetch``, :mod:`ablate.datasets`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.config.trial import DataConfig
from ablate.datasets.images import Splits, TensorImageSet
from ablate.errors import DatasetError

# The recipe ``data.augment: auto`` means, per dataset.
AUTO_RECIPE = {"digits": "digits", "stl10": "stl10", "cifar10": "cifar10", "imagefolder": "byol", "fake": "cifar10"}


# ------------------------------------------------------------------------ digits (scikit-learn)
DIGITS_SIZE = 16


def load_digits(device: torch.device) -> Splits:
    """scikit-learn's 1797 8x8 digits (values 0..16), upsampled bilinearly to 16x16 uint8, with a
    fixed stratified 75/25 split (seed 0, the same for every trial seed): pretrain and probe on
    the 1347 train images, test on the 450 others."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    digits = sk_digits()
    x = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    x = x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    y = torch.from_numpy(digits.target).long()
    train, test = (
        torch.from_numpy(i)
        for i in train_test_split(np.arange(len(y)), test_size=0.25, stratify=digits.target, random_state=0)
    )
    train_set = TensorImageSet(x[train].to(device), y[train].to(device))
    test_set = TensorImageSet(x[test].to(device), y[test].to(device))
    return Splits(train_set, train_set, test_set, 10, 1, DIGITS_SIZE, AUTO_RECIPE["digits"])


# ------------------------------------------------------------------------ fake
def load_fake(cfg: DataConfig, device: torch.device) -> Splits:
    """Deterministic synthetic RGB images (seed 0, independent of the trial seed).

    Not torchvision's FakeData (i.i.d. noise with random labels, one PIL image per item): each
    class has a smooth random colour pattern and every image is its class pattern plus noise, so
    the set is generated in a few vectorised ops and a probe on it can beat chance. Pretraining
    uses ``fake_size`` images; the probe trains on the first min(fake_size, 1024) of them and
    tests on max(2 * fake_classes, that // 4) further images.
    """
    size = cfg.image_size or 32
    n_probe = min(cfg.fake_size, 1024)
    n_test = max(2 * cfg.fake_classes, n_probe // 4)
    gen = torch.Generator().manual_seed(0)
    patterns = torch.rand(cfg.fake_classes, 3, 4, 4, generator=gen)
    patterns = F.interpolate(patterns, size=(size, size), mode="bilinear", align_corners=False)  # (K, 3, S, S)
    total = cfg.fake_size + n_test
    labels = torch.randint(cfg.fake_classes, (total,), generator=gen)
    images = torch.empty(total, 3, size, size, dtype=torch.uint8)
    for i in range(0, total, 4096):  # chunks bound the float intermediate
        lab = labels[i : i + 4096]
        noise = torch.rand(len(lab), 3, size, size, generator=gen)
        images[i : i + 4096] = (0.6 * patterns[lab] + 0.4 * noise).mul_(255).round_().to(torch.uint8)
    images, labels = images.to(device), labels.to(device)
    pretrain = TensorImageSet(images[: cfg.fake_size], labels[: cfg.fake_size])
    probe_train = TensorImageSet(images[:n_probe], labels[:n_probe])
    probe_test = TensorImageSet(images[cfg.fake_size :], labels[cfg.fake_size :])
    return Splits(pretrain, probe_train, probe_test, cfg.fake_classes, 3, size, AUTO_RECIPE["fake"])


# ------------------------------------------------------------------------ where a dataset comes from
def fetch_hint(name: str, root: Path | None) -> str:
    """The command that puts dataset ``name`` where ``data.root`` points: ``ablate data fetch`` writes
    ``<--root>/<name>``, so a data.root named after the dataset is fetched with --root its parent."""
    if name == "imagefolder":
        return "prepare it as `ablate data fetch imagenet` explains, then run `ablate data check imagefolder`"
    if root is not None and root.name == name:
        where = f" --root {root.parent}"
        return f"get it with `ablate data fetch {name}{where}` and check it with `ablate data check {name}{where}`"
    return (
        f"get it with `ablate data fetch {name} --root DIR` (it writes DIR/{name}: point data.root there) and check "
        f"it with `ablate data check {name} --root DIR`"
    )


# ------------------------------------------------------------------------ CIFAR-10
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_BYTES = 3 * 32 * 32


def cifar_folder(root: Path) -> Path:
    for folder in (root / "cifar-10-batches-py", root):
        if all((folder / f).is_file() for f in CIFAR_FILES):
            return folder
    folder = root / "cifar-10-batches-py" if not (root / "data_batch_1").exists() else root
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    raise DatasetError(
        f"CIFAR-10 not found in {folder}: missing {', '.join(missing)}; expected "
        f"{folder}/{{{','.join(CIFAR_FILES)}}} (the python version, cifar-10-python.tar.gz, "
        f"unpacked); {fetch_hint('cifar10', root)}"
    )


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch as torchvision's CIFAR10 reads it -> uint8 (n, 3, 32, 32), int64 (n,)."""
    bad = f"CIFAR-10 file {path} is malformed"
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = entry.get("data", entry.get(b"data"))
        labels = entry.get("labels", entry.get(b"labels"))
    except Exception as e:  # unpickling garbage raises anything
        raise DatasetError(
            f"{bad}: cannot unpickle it ({type(e).__name__}); expected a python-version batch "
            "file (a pickled dict with 'data' and 'labels')"
        ) from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_BYTES:
        raise DatasetError(
            f"{bad}: 'data' must be a uint8 array (n, {CIFAR_BYTES}), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),) or len(data) == 0 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(
            f"{bad}: expected {len(data)} labels in 0..9 for its {len(data)} images, "
            f"got {labels.size} (range {labels.min() if labels.size else '-'}.."
            f"{labels.max() if labels.size else '-'})"
        )
    return data.reshape(-1, 3, 32, 32), labels  # rows are channel-major (R, G, B planes), row by row


def load_cifar10(root: Path, device: torch.device) -> Splits:
    folder = cifar_folder(root)
    parts = [read_cifar_batch(folder / f) for f in CIFAR_FILES]
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts[:5]])).to(device)
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts[:5]])).to(device)
    test = TensorImageSet(torch.from_numpy(parts[5][0]).to(device), torch.from_numpy(parts[5][1]).to(device))
    train = TensorImageSet(train_x, train_y)
    return Splits(train, train, test, 10, 3, 32, AUTO_RECIPE["cifar10"])


# ------------------------------------------------------------------------ STL-10
STL_FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin"]
STL_SHAPE = (3, 96, 96)
STL_BYTES = 3 * 96 * 96
_CHUNK = 4096  # images per read: bounds host memory while the 2.7 GB unlabeled file streams in


def stl_folder(root: Path) -> Path:
    for folder in (root / "stl10_binary", root):
        if all((folder / f).is_file() for f in STL_FILES):
            return folder
    folder = root if (root / "train_X.bin").exists() else root / "stl10_binary"
    missing = [f for f in STL_FILES if not (folder / f).is_file()]
    raise DatasetError(
        f"STL-10 not found in {folder}: missing {', '.join(missing)}; expected "
        f"{folder}/{{{','.join(STL_FILES)}}} (torchvision's binary layout, stl10_binary.tar.gz "
        f"unpacked); {fetch_hint('stl10', root)}"
    )


def stl_count(path: Path) -> int:
    size = path.stat().st_size
    if size == 0 or size % STL_BYTES:
        raise DatasetError(
            f"STL-10 file {path} is malformed: {size} bytes is not a positive multiple of "
            f"{STL_BYTES} (3x96x96 uint8 images); is it truncated? (move the folder aside and run `ablate data "
            "fetch stl10` for a fresh copy)"
        )
    return size // STL_BYTES


def stl_labels(path: Path, count: int) -> Tensor:
    y = np.fromfile(path, dtype=np.uint8)
    if len(y) != count or y.min() < 1 or y.max() > 10:
        raise DatasetError(
            f"STL-10 file {path} is malformed: expected {count} labels in 1..10 (one byte per "
            f"image of the matching _X.bin), got {len(y)} in {y.min()}..{y.max()}"
        )
    return torch.from_numpy(y.astype(np.int64) - 1)  # 1..10 -> 0..9


def _read_stl_images(path: Path, count: int, out: Tensor) -> None:
    """Stream ``count`` images into ``out`` (count, 3, 96, 96) on its device, chunk by chunk.

    The file stores each channel column-major (torchvision transposes (0, 1, 3, 2) after reading);
    the transpose happens on the device while copying into place, so the file is read once and
    the images are copied once."""
    for i in range(0, count, _CHUNK):
        k = min(_CHUNK, count - i)
        chunk = np.fromfile(path, dtype=np.uint8, count=k * STL_BYTES, offset=i * STL_BYTES)
        chunk = torch.from_numpy(chunk).view(k, 3, 96, 96).to(out.device)  # (k, C, W, H)
        out[i : i + k].copy_(chunk.transpose(2, 3))


def load_stl10(root: Path, device: torch.device) -> Splits:
    folder = stl_folder(root)
    n_train, n_test, n_unl = (stl_count(folder / f) for f in ("train_X.bin", "test_X.bin", "unlabeled_X.bin"))
    train_y = stl_labels(folder / "train_y.bin", n_train).to(device)
    test_y = stl_labels(folder / "test_y.bin", n_test).to(device)
    # train and unlabeled share one tensor: the probe's train split is a view of its first rows
    pretrain_x = torch.empty(n_train + n_unl, *STL_SHAPE, dtype=torch.uint8, device=device)
    _read_stl_images(folder / "train_X.bin", n_train, pretrain_x[:n_train])
    _read_stl_images(folder / "unlabeled_X.bin", n_unl, pretrain_x[n_train:])
    test_x = torch.empty(n_test, *STL_SHAPE, dtype=torch.uint8, device=device)
    _read_stl_images(folder / "test_X.bin", n_test, test_x)
    pretrain_y = torch.cat([train_y, torch.full((n_unl,), -1, dtype=torch.int64, device=device)])
    pretrain = TensorImageSet(pretrain_x, pretrain_y)
    probe_train = TensorImageSet(pretrain_x[:n_train], train_y)
    return Splits(pretrain, probe_train, TensorImageSet(test_x, test_y), 10, 3, 96, AUTO_RECIPE["stl10"])


# ------------------------------------------------------------------------ entry point
def _digits(cfg: DataConfig, device: torch.device) -> Splits:
    return load_digits(device)


def _imagefolder(cfg: DataConfig, device: torch.device) -> Splits:
    from ablate.datasets.imagefolder import load_imagefolder  # imports torchvision (a second): only when used

    recipe = AUTO_RECIPE["imagefolder"] if cfg.augment == "auto" else cfg.augment
    return load_imagefolder(_root(cfg), cfg.image_size or 224, recipe, cfg.workers, device)


def _root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise DatasetError(
            f"dataset {cfg.name!r} needs data.root, the directory that holds it; {fetch_hint(cfg.name, None)}"
        )
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data.root {root} is not a directory (dataset {cfg.name!r}); {fetch_hint(cfg.name, root)}")
    return root


LOADERS: dict[str, Callable[[DataConfig, torch.device], Splits]] = {
    "digits": _digits,
    "fake": load_fake,
    "cifar10": lambda cfg, device: load_cifar10(_root(cfg), device),
    "stl10": lambda cfg, device: load_stl10(_root(cfg), device),
    "imagefolder": _imagefolder,
}


def load_splits(cfg: DataConfig, device: torch.device) -> Splits:
    """The splits of ``cfg.name`` on ``device`` (read from disk, never downloaded; DatasetError when missing or
    malformed)."""
    return LOADERS[cfg.name](cfg, torch.device(device))
