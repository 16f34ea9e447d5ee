"""The dataset records: one per dataset, the registry that holds them, the facts every reader takes from
them (`ablate data list`, the docs, data.augment), and a plugin's dataset validated like ours."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.config.registry import Origin, loading
from ablate.config.trial import DataConfig
from ablate.datasets import dataset, download
from ablate.datasets.dataset import data_root
from ablate.datasets.download import mirror_url
from ablate.datasets.listing import list_lines, markdown_table
from ablate.datasets.records import DATASETS, RECIPES, Recipe, register_dataset
from ablate.errors import UserError
from ablate.kinds.ssl import load_trial_config

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name, cls", [("stl10", "STL10"), ("cifar10", "CIFAR10")])
def test_archives_are_the_ones_torchvision_downloads(name, cls):
    import torchvision.datasets

    tv, ours = getattr(torchvision.datasets, cls), DATASETS[name].archive
    assert (ours.url, ours.md5, ours.folder, ours.filename) == (tv.url, tv.tgz_md5, tv.base_folder, tv.filename)


def test_data_root_is_root_else_ablate_data_else_data(monkeypatch, tmp_path):
    monkeypatch.delenv(dataset.ROOT_ENV, raising=False)
    assert str(data_root(None)) == "data"
    monkeypatch.setenv(dataset.ROOT_ENV, str(tmp_path))
    assert data_root(None) == tmp_path and data_root("elsewhere").name == "elsewhere"


def test_a_mirror_serves_the_archive_by_its_file_name(monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    name = DATASETS["stl10"].archive.filename
    assert mirror_url(name, None) is None
    assert mirror_url(name, "https://m.example/datasets/") == "https://m.example/datasets/stl10_binary.tar.gz"
    monkeypatch.setenv(download.MIRROR_ENV, "file:///shared/data")
    assert mirror_url(name, None) == "file:///shared/data/stl10_binary.tar.gz"
    with pytest.raises(UserError, match=r"^--mirror 'mirror\.local/x': not a URL; give the folder that serves stl10"):
        mirror_url(name, "mirror.local/x")


def test_the_built_ins_are_registered_in_the_docs_order_with_their_recipes():
    assert list(DATASETS) == ["digits", "cifar10", "stl10", "imagefolder", "fake"]
    assert all(DATASETS.origin(name).builtin for name in DATASETS)
    for record in DATASETS.values():
        assert record.recipe in RECIPES and (record.augmentation is None or RECIPES[record.name] is record.augmentation)
        assert record.needs_root == (record.archive is not None or bool(record.howto))


def test_the_built_ins_are_ours_even_when_a_plugin_imports_the_registry_first():
    code = (
        "from ablate.config.registry import Origin, loading\n"
        "with loading(Origin('plugin.py', 'abc')):\n"
        "    from ablate.datasets.records import DATASETS, RECIPES\n"
        "print(all(DATASETS.origin(n).builtin for n in DATASETS), all(RECIPES.origin(n).builtin for n in RECIPES))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True"]


@pytest.fixture
def plugin():
    """A plugin's dataset, with its own recipe, registered as a plugin does it; removed afterwards."""
    digits = DATASETS["digits"]
    record = replace(
        digits, name="tiny_digits", title="tiny digits", augmentation=Recipe(flip=True), recipe="tiny_digits"
    )
    with loading(Origin("my_plugin.py", "0" * 64)):
        register_dataset(record)
    yield record
    for registry in (DATASETS, RECIPES):
        registry._records.pop("tiny_digits"), registry._origins.pop("tiny_digits")


def test_a_plugin_dataset_is_one_record_that_every_reader_sees(plugin, capsys):
    cfg = load_trial_config({"data": {"name": "tiny_digits", "augment": "tiny_digits"}})
    assert cfg.data.name == "tiny_digits" and RECIPES["tiny_digits"].flip
    assert main(["data", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[:3] == ["tiny_digits", "tiny", "digits"]
    with loading(Origin("other_plugin.py")), pytest.raises(UserError, match="'stl10' is already registered by ablate"):
        register_dataset(replace(plugin, name="stl10", augmentation=None, recipe="byol"))
    with pytest.raises(UserError, match=r"its recipe 'nope' is not an augmentation recipe"):
        register_dataset(replace(plugin, name="other", augmentation=None, recipe="nope"))
    assert "other" not in DATASETS


def test_data_augment_takes_the_registered_recipes_only():
    assert load_trial_config({"data": {"augment": "stl10"}}).data.augment == "stl10"
    with pytest.raises(UserError) as e:
        load_trial_config({"data": {"augment": "stl"}})
    assert str(e.value) == (
        "<config>: data.augment: unknown augmentation recipe 'stl'; choose one of auto, byol, none, digits, cifar10, "
        "stl10; did you mean 'stl10'?"
    )


def test_data_list_prints_one_line_per_record(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == list_lines() and len(lines) == 1 + len(DATASETS)
    for line, record in zip(lines[1:], DATASETS.values()):
        n = record.sizes(DataConfig(name=record.name))
        assert line.startswith(f"{record.name} ") and f"  {record.title}  " in line
        assert f"{n.pretrain:,}; {n.probe_train:,} -> {n.probe_test:,}" in line
        assert f"  {record.channels}x{record.image_size}x{record.image_size}  " in line
        assert f"  {record.classes}  " in line
        assert (f"ablate data fetch {record.name}" in line) == record.needs_root
    assert main(["data", "list", "stl10"]) == 2
    assert "data list: takes no dataset" in capsys.readouterr().err


@pytest.mark.parametrize("doc", ["docs/data.md", "docs/datasets.md"])
def test_the_docs_table_is_the_records(doc):
    assert markdown_table() in (ROOT / doc).read_text(), (
        f"{doc}: its dataset table differs from the records; paste ablate.datasets.listing.markdown_table()"
    )
