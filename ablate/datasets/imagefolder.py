"""An image folder in the ImageNet layout (train/<class>/*, val/<class>/*): its record, scan and ``ablate data check``.

Pretrain and probe on train, test on val (:mod:`ablate.datasets.folderset` decodes the images in
DataLoader workers). The folder is prepared by hand (ImageNet's archives need a login):
``ablate data fetch imagefolder`` (or ``imagenet``) prints how. The scan follows symbolic links, as
torchvision's ImageFolder does, but enters no directory twice on one path (a link to a parent is
a loop, not more images) and takes only regular files (a FIFO named like an image would block).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ablate.config.registry import RECIPES
from ablate.datasets.dataset import Dataset, Sizes
from ablate.datasets.summary import official_line, per_class
from ablate.errors import DatasetError

if TYPE_CHECKING:
    import torch

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits

SIDE = 224  # the crop when data.image_size is 0
IMAGENET = {"train": 1_281_167, "val": 50_000}  # ILSVRC2012: the sizes the estimates assume for any image folder
OPEN_PER_SPLIT = 4  # images decoded per split by `ablate data check`
EXPECT = (
    "expected {root}/train/<class>/*.JPEG and {root}/val/<class>/* (ImageNet layout, val sorted into class folders)"
)
Samples = list[tuple[str, int]]

HOWTO = """\
ImageNet (ILSVRC2012) is not downloadable by ablate: its official archives need an account at
https://image-net.org (ILSVRC2012_img_train.tar, about 138 GB; ILSVRC2012_img_val.tar, about
6.3 GB; ILSVRC2012_devkit_t12.tar.gz, about 2.5 MB).

ablate reads it as an image folder (data.name: imagefolder) with val/ sorted into class folders:
  {root}/train/n01440764/n01440764_10026.JPEG       1000 class folders, 1,281,167 images
  {root}/val/n01440764/ILSVRC2012_val_00000293.JPEG  the same 1000 folders, 50,000 images
(the sweeps sweeps/imagenet_*.yaml read ${ABLATE_DATA:-data}/imagenet).

To prepare it, put the three archives in {root}/ and let torchvision unpack and sort them
(it checks their md5 and moves each val image into its class folder):
  python -c "from torchvision.datasets import ImageNet as I; I('{root}', split='train'); I('{root}', split='val')"
or unpack by hand and sort val/ with the usual valprep.sh
(https://github.com/soumith/imagenetloader.torch, valprep.sh, run inside {root}/val).
Then: ablate data check imagefolder --root {base}"""


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise DatasetError(f"image folder: cannot read {folder}: {e.strerror or e}; check its permissions") from None


def _images(top: Path, extensions: tuple[str, ...]) -> list[str]:
    """The image files below ``top`` in torchvision's order (directories by path, files by name); none
    when there is no folder ``top``."""
    if not top.is_dir():
        return []
    found: list[tuple[str, list[str]]] = []
    stack = [(top, frozenset[tuple[int, int]]())]
    while stack:
        folder, above = stack.pop()
        st = folder.stat()
        here = above | {(st.st_dev, st.st_ino)}
        files = []
        for e in _entries(folder):
            if e.is_dir():
                sub = e.stat()
                if (sub.st_dev, sub.st_ino) not in here:  # a link back to a folder above: a loop
                    stack.append((Path(e.path), here))
            elif e.is_file() and e.name.lower().endswith(extensions):
                files.append(e.path)
        found.append((str(folder), files))
    return [path for _, files in sorted(found) for path in files]


def classes(split: Path) -> list[str]:
    return [e.name for e in _entries(split) if e.is_dir()]


def samples(root: Path) -> tuple[Samples, Samples, list[str]]:
    """(train samples, val samples, class names) of an image folder; a DatasetError when it is not one."""
    from torchvision.datasets.folder import IMG_EXTENSIONS  # what torchvision's ImageFolder takes for an image

    expect = EXPECT.format(root=root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DatasetError(f"image folder not found: {root / split} is missing; {expect}")
    names = classes(root / "train")
    if not names:
        raise DatasetError(f"image folder {root} has no class folders; {expect}")
    unknown = sorted(set(classes(root / "val")) - set(names))
    if unknown:
        raise DatasetError(f"image folder {root / 'val'} has classes not in train/: {', '.join(unknown[:5])}; {expect}")
    out = []
    for split in ("train", "val"):
        images = [_images(root / split / name, IMG_EXTENSIONS) for name in names]
        empty = [name for name, found in zip(names, images) if not found]
        if empty:
            raise DatasetError(
                f"image folder {root / split} is malformed: no image in {', '.join(empty[:5])}; every class of "
                f"train/ needs images in {split}/ ({', '.join(IMG_EXTENSIONS)})"
            )
        out.append([(path, label) for label, found in enumerate(images) for path in found])
    return out[0], out[1], names


def load(cfg: DataConfig, device: torch.device) -> Splits:
    from ablate.datasets.folderset import folder_splits  # imports torchvision: only when one is loaded

    train, val, names = samples(RECORD.root(cfg))
    recipe = RECIPES[RECORD.recipe if cfg.augment == "auto" else cfg.augment]  # data.augment was checked against it
    size = cfg.image_size or SIDE
    return folder_splits(train, val, len(names), size, recipe, cfg.workers, device, RECORD.recipe)


def check(folder: Path) -> list[str]:
    """What `ablate data check imagefolder` prints: classes and images per split, a few images opened."""
    _val_is_sorted(folder)
    train, val, names = samples(folder)
    lines, found = [f"image folder {folder}"], {}
    for split, items in (("train", train), ("val", val)):
        found[split] = len(items)
        counts = per_class(np.bincount([label for _, label in items], minlength=len(names)))
        opened = [_open(p) for p, _ in items[:: max(1, len(items) // OPEN_PER_SPLIT)][:OPEN_PER_SPLIT]]
        sizes = ", ".join(f"{w}x{h}" for w, h in opened)
        lines.append(f"  {split:<5} {found[split]:>8} images, {counts}; opened {len(opened)}: {sizes} RGB")
    return [*lines, official_line(IMAGENET, found)]


def _open(path: str) -> tuple[int, int]:
    """(width, height) of an image as the loader's workers decode it; a DatasetError when they could not."""
    from ablate.datasets.folderset import decode_rgb  # PIL and torchvision: only when an image is opened

    try:
        return decode_rgb(path).size
    except Exception as e:  # PIL raises many kinds for a damaged file
        raise DatasetError(f"cannot decode image {path}: {e}") from None


def _val_is_sorted(folder: Path) -> None:
    val = folder / "val"
    if val.is_dir():
        entries = _entries(val)
        if entries and not any(e.is_dir() for e in entries):
            raise DatasetError(
                f"image folder {val} holds images but no class folders; sort them into val/<class>/ (ImageNet: "
                "torchvision's ImageNet(root, split='val') or valprep.sh; `ablate data fetch imagenet` explains)"
            )


RECORD = Dataset(
    name="imagefolder",
    title="image folder",
    doc="ImageNet, or any folder in its layout: pretrain on train, probe train -> val, decoded in DataLoader "
    "workers (the estimates assume ImageNet's sizes)",
    load=load,
    sizes=lambda cfg: Sizes(IMAGENET["train"], IMAGENET["train"], IMAGENET["val"], 0, cfg.image_size or SIDE),
    channels=3,
    image_size=SIDE,
    classes=1000,  # ImageNet's; an image folder has as many as train/ has class folders
    recipe="byol",
    folder="imagenet",
    layout="`train/<class>/*` and `val/<class>/*` (ImageNet layout, val sorted into class folders)",
    marks=("train", "val"),
    splits=IMAGENET,
    howto=HOWTO,
    check=check,
    aliases=("imagenet",),
)
