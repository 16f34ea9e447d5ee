"""The registry of official archives: torchvision's URLs and checksums, the data root, mirrors."""

import pytest

from ablate.datasets import registry
from ablate.datasets.registry import ARCHIVES, archive_url, data_root
from ablate.errors import UserError


@pytest.mark.parametrize("name, cls", [("stl10", "STL10"), ("cifar10", "CIFAR10")])
def test_archives_are_the_ones_torchvision_downloads(name, cls):
    import torchvision.datasets

    tv, ours = getattr(torchvision.datasets, cls), ARCHIVES[name]
    assert (ours.url, ours.md5, ours.folder, ours.filename) == (tv.url, tv.tgz_md5, tv.base_folder, tv.filename)


def test_data_root_is_root_else_ablate_data_else_data(monkeypatch, tmp_path):
    monkeypatch.delenv(registry.ROOT_ENV, raising=False)
    assert str(data_root(None)) == "data"
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    assert data_root(None) == tmp_path and data_root("elsewhere").name == "elsewhere"


def test_a_mirror_serves_the_archive_by_its_file_name(monkeypatch):
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    stl = ARCHIVES["stl10"]
    assert archive_url(stl, None) == stl.url
    assert archive_url(stl, "https://m.example/datasets/") == "https://m.example/datasets/stl10_binary.tar.gz"
    monkeypatch.setenv(registry.MIRROR_ENV, "file:///shared/data")
    assert archive_url(stl, None) == "file:///shared/data/stl10_binary.tar.gz"
    with pytest.raises(UserError, match=r"^--mirror 'mirror\.local/x': not a URL; give the folder that serves stl10"):
        archive_url(stl, "mirror.local/x")
