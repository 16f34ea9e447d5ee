"""The official archives ``ablate data fetch`` downloads, and where datasets live on disk, as data.

The URLs, file names, md5 checksums and top-level folders are torchvision's
(``torchvision.datasets.STL10`` / ``CIFAR10``: ``url``, ``filename``, ``tgz_md5``, ``base_folder``;
a unit test keeps them equal). A test swaps :data:`ARCHIVES` entries for tiny archives of its own.

Layout: the data root (``--root``, else ``$ABLATE_DATA``, else ``data``) holds one folder per
dataset, ``<root>/stl10``, ``<root>/cifar10``, ``<root>/imagenet``: the ``data.root`` of a trial,
as the shipped sweeps write it (``${ABLATE_DATA:-data}/stl10``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ablate.errors import UserError

ROOT_ENV, DEFAULT_ROOT = "ABLATE_DATA", "data"
MIRROR_ENV = "ABLATE_DATA_MIRROR"
MIRROR_SCHEMES = ("http://", "https://", "file://")


@dataclass(frozen=True)
class Archive:
    """One official dataset archive.

    ``size`` is the archive's length in bytes as its server reports it; ``unpacked`` is what its
    files take once extracted, computed from the file formats (both only size the free-space check).
    """

    title: str
    url: str
    md5: str
    folder: str  # the archive's one top-level folder, which the loader looks for in data.root
    size: int
    unpacked: int
    page: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES: dict[str, Archive] = {
    "stl10": Archive(
        title="STL-10",
        url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        md5="91f7769df0f17e558f3565bffb0c7dfb",
        folder="stl10_binary",
        size=2_640_397_119,
        unpacked=113_000 * 3 * 96 * 96 + 13_000,  # 113k 3x96x96 uint8 images + 13k label bytes
        page="https://cs.stanford.edu/~acoates/stl10/",
    ),
    "cifar10": Archive(
        title="CIFAR-10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        size=170_498_071,
        unpacked=60_000 * 3 * 32 * 32 + 6 * 600_000,  # 60k 3x32x32 images + each batch's pickled labels and names
        page="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}

# data.name (or `ablate data` name) -> its folder under the data root
SUBFOLDER = {"stl10": "stl10", "cifar10": "cifar10", "imagefolder": "imagenet", "imagenet": "imagenet"}
TITLES = {"stl10": "STL-10", "cifar10": "CIFAR-10", "imagefolder": "image folder", "imagenet": "ImageNet"}
# names that are prepared by hand: `ablate data fetch` explains how instead
NOT_FETCHABLE = ("imagenet", "imagefolder")

IMAGENET_HOWTO = """\
ImageNet (ILSVRC2012) is not downloadable by ablate: its official archives need an account at
https://image-net.org (ILSVRC2012_img_train.tar, about 138 GB; ILSVRC2012_img_val.tar, about
6.3 GB; ILSVRC2012_devkit_t12.tar.gz, about 2.5 MB).

ablate reads it as an image folder (data.name: imagefolder) with val/ sorted into class folders:
  {root}/train/n01440764/n01440764_10026.JPEG       1000 class folders, 1,281,167 images
  {root}/val/n01440764/ILSVRC2012_val_00000293.JPEG  the same 1000 folders, 50,000 images
(the sweeps sweeps/imagenet_*.yaml read ${{ABLATE_DATA:-data}}/imagenet).

To prepare it, put the three archives in {root}/ and let torchvision unpack and sort them
(it checks their md5 and moves each val image into its class folder):
  python -c "from torchvision.datasets import ImageNet as I; I('{root}', split='train'); I('{root}', split='val')"
or unpack by hand and sort val/ with the usual valprep.sh
(https://github.com/soumith/imagenetloader.torch, valprep.sh, run inside {root}/val).
Then: ablate data check imagefolder --root {base}"""


def data_root(root: str | Path | None) -> Path:
    """The data root: ``root``, else ``$ABLATE_DATA``, else ``data`` (relative to the working directory)."""
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()


def archive_url(archive: Archive, mirror: str | None) -> str:
    """Where to download ``archive`` from: the official URL, or ``<mirror>/<archive file name>``
    (``mirror``, else ``$ABLATE_DATA_MIRROR``)."""
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if mirror is None:
        return archive.url
    if not mirror.startswith(MIRROR_SCHEMES):
        raise UserError(
            f"--mirror {mirror!r}: not a URL; give the folder that serves {archive.filename}, "
            "e.g. https://mirror.example.org/datasets/ or file:///shared/datasets/"
        )
    return f"{mirror.rstrip('/')}/{archive.filename}"


def known(name: str, names: tuple[str, ...] | list[str], action: str) -> None:
    """``name`` is one of ``names``, or a one-line error listing them."""
    if name not in names:
        raise UserError(f"data {action} {name!r}: unknown dataset; choose one of {', '.join(names)}")
