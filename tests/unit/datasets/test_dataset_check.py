"""``ablate data check``: what a dataset folder holds, checked with the loaders' validation, without loading it."""

import pickle

import numpy as np
import pytest
from PIL import Image

from ablate.cli import main
from ablate.config.trial import DataConfig
from ablate.datasets import loaders as data
from ablate.datasets import registry
from ablate.datasets.check import check_dataset
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(registry.ROOT_ENV, raising=False)


def write_stl(folder, train=(1, 2, 2), test=(3, 3), unlabeled=2):
    folder.mkdir(parents=True)
    for split, n in (("train", len(train)), ("test", len(test)), ("unlabeled", unlabeled)):
        (folder / f"{split}_X.bin").write_bytes(bytes(n * data.STL_BYTES))
    (folder / "train_y.bin").write_bytes(bytes(train))
    (folder / "test_y.bin").write_bytes(bytes(test))


def write_cifar(folder, per_batch=2, test=4):
    folder.mkdir(parents=True)
    for k, name in enumerate(data.CIFAR_FILES):
        n = test if name == "test_batch" else per_batch
        batch = {"data": np.zeros((n, 3072), np.uint8), "labels": [(k + i) % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["plane", "car"] + [f"c{i}" for i in range(8)]}))


def test_stl10_check_counts_splits_and_classes_without_reading_the_unlabeled_file(tmp_path, monkeypatch):
    write_stl(tmp_path / "stl10" / "stl10_binary")
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
    folder = tmp_path / "stl10" / "stl10_binary"
    write_stl(folder, train=[1 + i % 10 for i in range(5000)], test=[1 + i % 10 for i in range(8000)], unlabeled=0)
    with open(folder / "unlabeled_X.bin", "wb") as f:  # sparse: 2.8 GB on paper, nothing on disk
        f.truncate(100_000 * data.STL_BYTES)
    text = check_dataset("stl10", tmp_path)
    assert "train        5000 images 3x96x96 uint8 (138.2 MB), 10 classes, 500 per class" in text
    assert "unlabeled  100000 images 3x96x96 uint8 (2.8 GB)" in text and "the official sizes" in text


def test_cifar10_check_reads_batches_and_names_classes(tmp_path):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    lines = check_dataset("cifar10", tmp_path).splitlines()
    assert (
        lines[1].split()[:3] == ["train", "10", "images"]
        and "in 5 batches, 10 classes, 0..2 per class (4 classes absent)" in lines[1]
    )
    assert lines[2].split()[:2] == ["test", "4"] and "(6 classes absent)" in lines[2]
    assert lines[3] == "  classes: plane, car, c0, c1, c2, c3, c4, c5, c6, c7"


def test_the_dataset_folder_itself_may_be_given_as_root(tmp_path):
    write_cifar(tmp_path / "mine" / "cifar-10-batches-py")
    assert check_dataset("cifar10", tmp_path / "mine").endswith(f"data.root: {tmp_path}/mine")


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


def write_images(root, split, classes, per_class):
    for c in classes:
        (root / split / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40 + i, 30), (10 * i, 0, 0)).save(root / split / c / f"{i}.png")


def test_imagefolder_check_counts_classes_and_opens_images(tmp_path):
    write_images(tmp_path / "imagenet", "train", ["ant", "bee", "cat"], 3)
    write_images(tmp_path / "imagenet", "val", ["ant", "bee", "cat"], 1)
    Image.new("RGB", (8, 8)).save(tmp_path / "imagenet" / "val" / "ant" / "extra.png")
    lines = check_dataset("imagefolder", tmp_path).splitlines()
    assert lines[0] == f"image folder {tmp_path}/imagenet"
    assert (
        lines[1].split()[:2] == ["train", "9"]
        and "3 classes, 3 per class; opened 4: 40x30, 42x30, 41x30, 40x30 RGB" in lines[1]
    )
    assert lines[2].split()[:2] == ["val", "4"] and "3 classes, 1..2 per class; opened 4" in lines[2]
    assert lines[-1] == f"ok: use it with data.name: imagefolder, data.root: {tmp_path}/imagenet"


def test_an_unsorted_val_folder_points_to_valprep(tmp_path):
    write_images(tmp_path, "train", ["ant"], 1)
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match=r"val holds images but no class folders; sort them .* valprep\.sh"):
        check_dataset("imagenet", tmp_path)


def test_an_undecodable_image_is_a_dataset_error(tmp_path):
    write_images(tmp_path, "train", ["ant"], 1)
    write_images(tmp_path, "val", ["ant"], 1)
    (tmp_path / "train" / "ant" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"^cannot decode image .*train/ant/0\.png: cannot identify image file"):
        check_dataset("imagefolder", tmp_path)


def test_cli_data_check_prints_the_report_or_one_error_line(tmp_path, capsys):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"CIFAR-10 in {tmp_path}/cifar10/cifar-10-batches-py\n")
    assert main(["data", "check", "stl10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: data check stl10: no STL-10 in") and err.count("\n") == 1
    assert main(["data", "check", "stl10", "--mirror", "http://x/"]) == 2
    assert "--mirror is for data fetch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, root, command",
    [
        ("stl10", "stl10", "ablate data fetch stl10 --root {tmp}`"),  # data.root named after the dataset
        ("cifar10", "mine", "ablate data fetch cifar10 --root DIR` (it writes DIR/cifar10: point data.root there)"),
    ],
)
def test_the_loaders_point_to_data_fetch_and_check(tmp_path, name, root, command):
    (tmp_path / root).mkdir()
    with pytest.raises(DatasetError) as e:
        load_splits(DataConfig(name=name, root=str(tmp_path / root)), "cpu")
    msg = str(e.value)
    assert command.format(tmp=tmp_path) in msg and f"ablate data check {name}" in msg and "never" not in msg
    with pytest.raises(DatasetError, match=f"is not a directory .*ablate data fetch {name}"):
        load_splits(DataConfig(name=name, root=str(tmp_path / "absent" / name)), "cpu")
