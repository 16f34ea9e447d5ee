"""CIFAR-10's python version: the loader (as torchvision reads it), its check, and pickles that cannot
run code or give a traceback however they are crafted."""

import os
import pickle
import threading

import numpy as np
import pytest
import torch

from ablate.cli import main
from ablate.config.trial import DataConfig
from ablate.datasets import dataset
from ablate.datasets.check import check_dataset
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError
from helpers.dataset_files import write_cifar

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(dataset.ROOT_ENV, raising=False)


@pytest.mark.parametrize("point_at_batches_folder", [False, True])
def test_cifar10_loads_pickled_batches(tmp_path, point_at_batches_folder):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_batches_folder else tmp_path
    s = load_splits(DataConfig(name="cifar10", root=str(root)), CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (10, 10, 3)
    assert (s.num_classes, s.channels, s.native_size, s.recipe) == (10, 3, 32, "cifar10")
    x, y = written["data_batch_2"]
    assert np.array_equal(s.pretrain.images[2:4].numpy(), x.reshape(2, 3, 32, 32))
    assert s.pretrain.labels[2:4].tolist() == y and s.probe_test.labels.tolist() == written["test_batch"][1]


def test_cifar10_agrees_with_torchvisions_reader(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10, cifar

    write_cifar(tmp_path / "cifar-10-batches-py")
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # tiny files fail the md5 checks
    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    tv = CIFAR10(str(tmp_path), train=False, download=False)
    s = load_splits(DataConfig(name="cifar10", root=str(tmp_path)), CPU)
    assert np.array_equal(s.probe_test.images.permute(0, 2, 3, 1).numpy(), tv.data)  # tv stores HWC
    assert s.probe_test.labels.tolist() == tv.targets


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "data_batch_3").write_bytes(b"not a pickle"), "data_batch_3 is malformed: cannot unpickle"),
        (
            lambda f: pickle.dump(
                {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, open(f / "test_batch", "wb")
            ),
            "test_batch is malformed: 'data' must be",
        ),
        (
            lambda f: pickle.dump(
                {"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, open(f / "data_batch_1", "wb")
            ),
            "expected 2 labels",
        ),
        (lambda f: (f / "data_batch_5").unlink(), "missing data_batch_5"),
    ],
)
def test_broken_cifar10_is_a_dataset_error(tmp_path, damage, message):
    write_cifar(tmp_path / "cifar-10-batches-py")
    damage(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DatasetError, match=message) as e:
        load_splits(DataConfig(name="cifar10", root=str(tmp_path)), CPU)
    assert "cifar-10-batches-py" in str(e.value) and "\n" not in str(e.value)


def test_dataset_root_must_exist(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_splits(DataConfig(name="cifar10", root=str(tmp_path / "nope")), CPU)
    with pytest.raises(DatasetError, match="needs data.root"):
        load_splits(DataConfig(name="stl10"), CPU)


def test_cifar10_check_reads_batches_and_names_classes(tmp_path):
    write_cifar(
        tmp_path / "cifar10" / "cifar-10-batches-py", test=4, meta=["plane", "car"] + [f"c{i}" for i in range(8)]
    )
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


class Boom:
    """Unpickling it runs a shell command (the classic crafted pickle)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("file", ["data_batch_1", "batches.meta"])
def test_a_crafted_pickle_runs_no_code_in_the_loader_or_the_check(tmp_path, capsys, file):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "pwned"
    (folder / file).write_bytes(
        pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "x": Boom(marker)})
    )
    if file == "data_batch_1":
        with pytest.raises(
            DatasetError, match=r"data_batch_1 is malformed: cannot unpickle it .*asks for posix.system"
        ):
            load_splits(DataConfig(name="cifar10", root=str(tmp_path / "cifar10")), CPU)
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == (2 if file == "data_batch_1" else 0)
    out, err = capsys.readouterr()
    assert not marker.exists()
    assert ("classes:" not in out) if file == "batches.meta" else err.count("\n") == 1


@pytest.mark.parametrize(
    "labels, got",
    [
        ([0, 10**30], "got 2 values of type object"),  # beyond int64
        ([0.0, float("nan")], "got 2 values of type float64"),
        (["cat", "dog"], "of type <U3"),
        ({"a": 1}, "got 1 values of type object and shape ()"),
        ([{"a": 1}, {"b": 2}], "got 2 values of type object"),
        ([[0], [1, 2]], "a list that is no list of integers"),  # ragged
        ([0, -1], "got labels in -1..0"),
        (np.array([0, 2**63 + 5], dtype=np.uint64), "got labels in 0..9223372036854775813"),
        (None, "got 0 values"),
    ],
)
def test_labels_of_any_other_kind_are_one_line(tmp_path, capsys, labels, got):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": labels}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DatasetError, match=r"test_batch is malformed: expected 2 labels in 0..9 for its 2 images") as e:
        load_splits(DataConfig(name="cifar10", root=str(tmp_path / "cifar10")), CPU)
    assert got in str(e.value)
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_batch_that_is_no_dict_is_one_line(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DatasetError, match=r"data_batch_2 is malformed: it holds a list, not a dict"):
        load_splits(DataConfig(name="cifar10", root=str(tmp_path)), CPU)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_pickled_with_any_protocol_still_load(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    written = write_cifar(folder)
    x, y = written["data_batch_1"]
    batch = {"data": x, "labels": np.array(y, dtype=np.int64), "filenames": [b"a.png"] * len(y)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=protocol))
    s = load_splits(DataConfig(name="cifar10", root=str(tmp_path)), CPU)
    assert (
        np.array_equal(s.pretrain.images[:2].numpy(), x.reshape(2, 3, 32, 32)) and s.pretrain.labels[:2].tolist() == y
    )


def test_class_names_from_the_meta_file_are_escaped_in_the_report(tmp_path, capsys):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", meta=["plane\x1b[2J", "car\r\nok: all fine"])
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  classes: plane\\x1b[2J, car\\r\\nok: all fine\n" in out and "\x1b" not in out and "\r" not in out


def test_a_fifo_for_the_optional_meta_file_does_not_block_the_check(tmp_path, capsys):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "batches.meta").unlink()
    os.mkfifo(folder / "batches.meta")
    done = {}
    thread = threading.Thread(
        target=lambda: done.update(code=main(["data", "check", "cifar10", "--root", str(tmp_path)]))
    )
    thread.daemon = True
    thread.start()
    thread.join(30)
    if thread.is_alive():  # a writer unblocks the reader, so that the test process can end
        with open(os.open(folder / "batches.meta", os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("ablate data check blocked on a FIFO")
    assert done["code"] == 0 and "classes:" not in capsys.readouterr().out
