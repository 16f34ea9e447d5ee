"""Image folders (ImageNet layout): crops made in the workers, the check, and a scan that neither hangs
nor loops on FIFOs and symbolic links."""

import os
import pickle
import threading

import pytest
import torch
from PIL import Image

from ablate.cli import main
from ablate.config.trial import DataConfig
from ablate.datasets import dataset
from ablate.datasets.check import check_dataset
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError
from ablate.train.augment import build_augment
from helpers.dataset_files import COLOURS, write_folder, write_images

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(dataset.ROOT_ENV, raising=False)


def test_imagefolder_crops_views_in_workers_and_centre_crops_probes(tmp_path):
    write_folder(tmp_path)
    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path), image_size=16), CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (5, 5, 2)
    assert (s.num_classes, s.channels, s.native_size, s.recipe, s.pretrain.views) == (2, 3, 16, "byol", 2)
    batches = list(s.pretrain.batches(2, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True))
    assert len(batches) == 2
    for x, y in batches:
        assert x.shape == (2, 2, 3, 16, 16) and x.dtype == torch.uint8 and y.dtype == torch.int64
        for b in range(2):  # solid-colour images: every crop keeps the class colour
            colour = torch.tensor(COLOURS[["cat", "dog"][int(y[b])]], dtype=torch.uint8)
            assert torch.equal(x[b, :, :, 5, 5], colour.expand(2, 3))
    x1 = build_augment("byol", 16, 3)(batches[0][0], torch.Generator().manual_seed(0), view=0)
    assert x1.shape == (2, 3, 16, 16)
    probe = list(s.probe_test.batches(8, shuffle=False, generator=None, drop_last=False))
    assert probe[0][0].shape == (2, 3, 16, 16) and probe[0][1].tolist() == [0, 1]


def test_imagefolder_without_random_crop_yields_single_images(tmp_path):
    write_folder(tmp_path)
    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8, augment="none"), CPU)
    x, _ = next(s.pretrain.batches(4, shuffle=False, generator=None, drop_last=False))
    assert s.pretrain.views == 0 and x.shape == (4, 3, 8, 8)


def test_imagefolder_items_survive_pickling_for_worker_processes(tmp_path):
    write_folder(tmp_path)
    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8), CPU)
    items = pickle.loads(pickle.dumps(s.pretrain.items))
    assert items[0][0].shape == (2, 3, 8, 8)


def test_broken_imagefolder_is_a_dataset_error(tmp_path):
    write_folder(tmp_path / "a", val={"cat": 1, "eel": 1})
    with pytest.raises(DatasetError, match="classes not in train/: eel"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path / "a")), CPU)
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"b/val is missing; expected .*/train/<class>"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path / "b")), CPU)
    write_folder(tmp_path / "c")
    (tmp_path / "c" / "val" / "dog" / "0.png").unlink()
    with pytest.raises(DatasetError, match="malformed: no image in dog; every class of train/ needs images in val/"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path / "c")), CPU)
    (tmp_path / "c" / "val" / "dog").rmdir()  # no folder at all for a class of train/
    with pytest.raises(DatasetError, match="malformed: no image in dog; every class of train/ needs images in val/"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path / "c")), CPU)


def test_undecodable_image_is_a_one_line_dataset_error_even_from_a_worker(tmp_path, monkeypatch):
    from torch._utils import ExceptionWrapper

    write_folder(tmp_path)
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"not a png")
    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8), CPU)
    with pytest.raises(DatasetError, match=r"^cannot decode image .*0\.png") as e:
        list(s.pretrain.batches(8, shuffle=False, generator=None, drop_last=False))
    assert "\n" not in str(e.value)

    def from_worker(*args):  # what a DataLoader worker's failure looks like in the main process
        try:
            s.pretrain.items[0]
        except DatasetError:
            ExceptionWrapper(where="in DataLoader worker process 0").reraise()
        yield None

    monkeypatch.setattr(s.pretrain, "_loader", from_worker)
    with pytest.raises(DatasetError, match=r"^cannot decode image .*0\.png") as e:
        list(s.pretrain.batches(8, shuffle=False, generator=None, drop_last=False))
    assert "\n" not in str(e.value)


def test_imagefolder_check_counts_classes_and_opens_images(tmp_path):
    write_images(tmp_path / "imagenet", "train", {"ant": 3, "bee": 3, "cat": 3}, first=(40, 30), step=1)
    write_images(tmp_path / "imagenet", "val", {"ant": 1, "bee": 1, "cat": 1}, first=(40, 30), step=1)
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
    write_images(tmp_path, "train", {"ant": 1})
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match=r"val holds images but no class folders; sort them .* valprep\.sh"):
        check_dataset("imagenet", tmp_path)


def test_an_undecodable_image_is_a_dataset_error(tmp_path):
    write_images(tmp_path, "train", {"ant": 1})
    write_images(tmp_path, "val", {"ant": 1})
    (tmp_path / "train" / "ant" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"^cannot decode image .*train/ant/0\.png: cannot identify image file"):
        check_dataset("imagefolder", tmp_path)


def within(seconds, fn):
    """``fn()``'s result, or a failed test when it is still running after ``seconds`` (a hang)."""
    out = {}
    thread = threading.Thread(target=lambda: out.update(value=fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return out.get("value")


def test_a_symlink_loop_is_entered_once_and_fifos_are_not_images(tmp_path, capsys):
    write_folder(tmp_path)
    os.symlink(tmp_path / "train" / "cat", tmp_path / "train" / "cat" / "again")  # cat/again/again/... forever
    os.symlink(tmp_path / "train", tmp_path / "train" / "dog" / "up")  # back to train/, which holds dog/
    os.mkfifo(tmp_path / "train" / "cat" / "blocks.png")  # an image name, but opening it waits for a writer
    os.mkfifo(tmp_path / "val" / "dog" / "blocks.jpg")
    s = within(30, lambda: load_splits(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8), CPU))
    paths = [p for p, _ in s.probe_train.items.samples]
    assert [os.path.relpath(p, tmp_path) for p in paths[:2]] == ["train/cat/0.png", "train/cat/1.png"]
    assert not any("blocks" in p or "again" in p for p in paths)
    assert len(s.probe_test) == 2
    assert within(30, lambda: main(["data", "check", "imagefolder", "--root", str(tmp_path)])) == 0
    assert "train" in capsys.readouterr().out


def test_the_scan_follows_links_to_folders_elsewhere_as_torchvision_does(tmp_path):
    write_folder(tmp_path / "real")
    (tmp_path / "linked" / "train").mkdir(parents=True)
    os.symlink(tmp_path / "real" / "val", tmp_path / "linked" / "val")
    for cls in ("cat", "dog"):
        os.symlink(tmp_path / "real" / "train" / cls, tmp_path / "linked" / "train" / cls)
    from torchvision.datasets import ImageFolder

    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path / "linked"), image_size=8), CPU)
    assert s.probe_train.items.samples == ImageFolder(str(tmp_path / "linked" / "train")).samples


def test_an_unreadable_class_folder_is_one_line(tmp_path, monkeypatch):
    write_folder(tmp_path)
    real = os.scandir

    def refuse(path):
        if str(path).endswith("dog"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(DatasetError, match=r"^image folder: cannot read .*/train/dog: Permission denied; check its"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path)), CPU)


def test_a_file_name_with_control_characters_is_escaped_in_the_error(tmp_path, capsys):
    write_images(tmp_path, "train", {"ant": 1})
    write_images(tmp_path, "val", {"ant": 1})
    evil = tmp_path / "train" / "ant" / "x\x1b[2K\rok: all good\n.png"
    evil.write_bytes(b"not a png")
    (tmp_path / "train" / "ant" / "0.png").unlink()
    assert main(["data", "check", "imagefolder", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\r" not in err
    assert "x\\x1b[2K\\rok: all good\\n.png" in err
