"""STL-10 in torchvision's binary layout: the loader (the right way up, as torchvision reads it), its check,
and one-line errors for every malformed file."""

import numpy as np
import pytest
import torch

from ablate.cli import main
from ablate.config.trial import DataConfig
from ablate.datasets import dataset, stl10
from ablate.datasets.check import check_dataset
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError
from helpers.dataset_files import write_stl, write_stl_sizes

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(dataset.ROOT_ENV, raising=False)


@pytest.mark.parametrize("point_at_binary_folder", [False, True])
def test_stl10_reads_the_binary_format_the_right_way_up(tmp_path, monkeypatch, point_at_binary_folder):
    monkeypatch.setattr(stl10, "_CHUNK", 2)  # several chunks per file
    imgs = write_stl(tmp_path / "stl10_binary")
    root = tmp_path / "stl10_binary" if point_at_binary_folder else tmp_path
    s = load_splits(DataConfig(name="stl10", root=str(root)), CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (5, 3, 2)
    assert (s.num_classes, s.channels, s.native_size, s.recipe) == (10, 3, 96, "stl10")
    assert np.array_equal(s.pretrain.images[:3].numpy(), imgs["train"])
    assert np.array_equal(s.pretrain.images[3:].numpy(), imgs["unlabeled"])
    assert np.array_equal(s.probe_test.images.numpy(), imgs["test"])
    assert int(s.probe_test.images[0, 0, :8].min()) == 255  # the band is at the top: not transposed
    assert s.pretrain.labels.tolist() == [0, 9, 3, -1, -1] and s.probe_test.labels.tolist() == [6, 0]
    assert s.probe_train.images.data_ptr() == s.pretrain.images.data_ptr()  # train stored once


def test_stl10_agrees_with_torchvisions_reader(tmp_path):
    from torchvision.datasets import STL10

    write_stl(tmp_path / "stl10_binary")
    tv = STL10.__new__(STL10)  # skip the md5 check of the real files; use its reader only
    tv.root = str(tmp_path)
    tv_x, tv_y = tv._STL10__loadfile("train_X.bin", "train_y.bin")
    s = load_splits(DataConfig(name="stl10", root=str(tmp_path)), CPU)
    assert np.array_equal(s.probe_train.images.numpy(), tv_x)
    assert np.array_equal(s.probe_train.labels.numpy(), tv_y)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda f: (f / "train_X.bin").write_bytes((f / "train_X.bin").read_bytes()[:-100]),
            "train_X.bin is malformed",
        ),
        (lambda f: (f / "unlabeled_X.bin").write_bytes(b""), "unlabeled_X.bin is malformed"),
        (lambda f: (f / "test_y.bin").write_bytes(b"\x01"), "expected 2 labels"),
        (lambda f: (f / "train_y.bin").write_bytes(b"\x01\x0b\x02"), "labels in 1..10"),
    ],
)
def test_malformed_stl10_is_a_dataset_error(tmp_path, damage, message):
    write_stl(tmp_path / "stl10_binary")
    damage(tmp_path / "stl10_binary")
    with pytest.raises(DatasetError, match=message) as e:
        load_splits(DataConfig(name="stl10", root=str(tmp_path)), CPU)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_missing_stl10_names_the_expected_files(tmp_path):
    write_stl(tmp_path / "stl10_binary")
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(DatasetError) as e:
        load_splits(DataConfig(name="stl10", root=str(tmp_path)), CPU)
    msg = str(e.value)
    assert "missing unlabeled_X.bin" in msg and str(tmp_path / "stl10_binary") in msg and "\n" not in msg
    assert all(f in msg for f in stl10.FILES) and "ablate data fetch stl10" in msg
    with pytest.raises(DatasetError, match="stl10_binary/.*train_X.bin"):
        load_splits(DataConfig(name="stl10", root=str(tmp_path / "stl10_binary" / "..")), CPU)


def test_stl10_check_counts_splits_and_classes_without_reading_the_unlabeled_file(tmp_path, monkeypatch):
    write_stl(tmp_path / "stl10" / "stl10_binary", train=(1, 2, 2), test=(3, 3))
    read = []
    fromfile = np.fromfile
    monkeypatch.setattr(np, "fromfile", lambda path, *a, **k: read.append(str(path)) or fromfile(path, *a, **k))
    text = check_dataset("stl10", tmp_path)
    assert read and not any("unlabeled" in p for p in read)
    lines = text.splitlines()
    assert lines[0] == f"STL-10 in {tmp_path}/stl10/stl10_binary"
    assert lines[1].split()[:2] == ["train", "3"] and "10 classes, 0..2 per class (8 classes absent)" in lines[1]
    assert lines[2].split()[:2] == ["test", "2"] and "unlabeled       2 images" in lines[3]
    assert "not the official sizes (train 5000, test 8000, unlabeled 100000)" in lines[4]
    assert lines[-1] == f"ok: use it with data.name: stl10, data.root: {tmp_path}/stl10"


def test_stl10_of_the_official_sizes_says_so_from_file_sizes_alone(tmp_path):
    labels = {split: [1 + i % 10 for i in range(n)] for split, n in (("train", 5000), ("test", 8000))}
    write_stl_sizes(tmp_path / "stl10" / "stl10_binary", labels["train"], labels["test"], 100_000)  # sparse
    text = check_dataset("stl10", tmp_path)
    assert "train        5000 images 3x96x96 uint8 (138.2 MB), 10 classes, 500 per class" in text
    assert "unlabeled  100000 images 3x96x96 uint8 (2.8 GB)" in text and "the official sizes" in text


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "train_y.bin").write_bytes(b"\x01\x0b\x02"), "labels in 1..10"),
        (lambda f: (f / "test_X.bin").write_bytes(b"\x00" * 100), "test_X.bin is malformed"),
        (lambda f: (f / "unlabeled_X.bin").unlink(), "missing unlabeled_X.bin"),
    ],
)
def test_a_broken_stl10_is_one_line_naming_the_problem(tmp_path, damage, message):
    write_stl(tmp_path / "stl10" / "stl10_binary")
    damage(tmp_path / "stl10" / "stl10_binary")
    with pytest.raises(DatasetError, match=message) as e:
        check_dataset("stl10", tmp_path)
    assert "\n" not in str(e.value)


def test_nothing_there_says_how_to_fetch_it(tmp_path):
    with pytest.raises(DatasetError) as e:
        check_dataset("stl10", tmp_path)
    assert str(e.value) == (
        f"data check stl10: no STL-10 in {tmp_path}/stl10 (nor in {tmp_path}); fetch it with: ablate data fetch stl10 "
        f"--root {tmp_path}"
    )


@pytest.mark.parametrize(
    "labels, got",
    [
        (b"", "got 0 bytes"),  # an empty label file: no min/max to take
        (b"\x01\x02\x03\x04", "got 4 bytes"),  # more labels than images: sized, not read
        (b"\x00\x01\x02", "got 0..2"),  # 0 is not a label (1..10)
    ],
)
def test_a_malformed_label_file_is_one_line_in_the_loader_and_the_check(tmp_path, capsys, labels, got):
    write_stl(tmp_path / "stl10" / "stl10_binary")
    (tmp_path / "stl10" / "stl10_binary" / "train_y.bin").write_bytes(labels)
    with pytest.raises(DatasetError, match=rf"train_y.bin is malformed: expected 3 labels in 1..10 .*, {got}$"):
        load_splits(DataConfig(name="stl10", root=str(tmp_path / "stl10")), CPU)
    assert main(["data", "check", "stl10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: STL-10 file ") and err.count("\n") == 1 and got in err


def test_a_huge_label_file_is_sized_not_read(tmp_path, monkeypatch):
    write_stl(tmp_path / "stl10_binary")
    with open(tmp_path / "stl10_binary" / "test_y.bin", "wb") as f:
        f.truncate(2**40)  # sparse: a terabyte on paper
    read = []
    fromfile = np.fromfile
    monkeypatch.setattr(np, "fromfile", lambda path, *a, **k: read.append(str(path)) or fromfile(path, *a, **k))
    with pytest.raises(DatasetError, match=r"test_y.bin is malformed: expected 2 labels .*, got 1099511627776 bytes"):
        load_splits(DataConfig(name="stl10", root=str(tmp_path)), CPU)
    assert not any("test_y" in p for p in read)
