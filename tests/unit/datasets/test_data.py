"""Dataset loaders (on tiny files in the real formats) and ImageSet batching."""

import pickle

import numpy as np
import pytest
import torch

from ablate.config.trial import DataConfig
from ablate.datasets import loaders as data
from ablate.datasets.images import TensorImageSet
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError
from ablate.train.augment import build_augment

CPU = torch.device("cpu")


# ------------------------------------------------------------------ TensorImageSet.batches
def indexed_set(n=10):
    """Image i is filled with the value i and has label 100 + i, so any batch shows its indices."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return TensorImageSet(images, torch.arange(n) + 100)


def order(batches):
    return [int(v) for x, y in batches for v in x[:, 0, 0, 0]]


def test_batches_in_order_are_views_with_matching_labels():
    s = indexed_set(10)
    got = list(s.batches(4, shuffle=False, generator=None, drop_last=False))
    assert [len(x) for x, _ in got] == [4, 4, 2]
    assert order(got) == list(range(10))
    assert got[1][0].data_ptr() == s.images[4].data_ptr()  # a view, not a copy
    for x, y in got:
        assert y.dtype == torch.int64 and torch.equal(y, x[:, 0, 0, 0].long() + 100)


def test_shuffle_is_repeatable_for_a_seed_and_a_permutation():
    s = indexed_set(10)
    a = order(s.batches(3, shuffle=True, generator=torch.Generator().manual_seed(7), drop_last=False))
    b = order(s.batches(3, shuffle=True, generator=torch.Generator().manual_seed(7), drop_last=False))
    c = order(s.batches(3, shuffle=True, generator=torch.Generator().manual_seed(8), drop_last=False))
    assert a == b and a != c and sorted(a) == list(range(10)) and a != list(range(10))
    g = torch.Generator().manual_seed(7)  # successive epochs on one generator differ
    assert order(s.batches(3, True, g, False)) != order(s.batches(3, True, g, False))
    for x, y in s.batches(3, shuffle=True, generator=g, drop_last=False):
        assert torch.equal(y, x[:, 0, 0, 0].long() + 100)


def test_drop_last_drops_the_short_batch():
    s = indexed_set(10)
    for shuffle in (False, True):
        got = list(s.batches(4, shuffle=shuffle, generator=torch.Generator().manual_seed(0), drop_last=True))
        assert [len(x) for x, _ in got] == [4, 4] and len(set(order(got))) == 8
    assert list(s.batches(16, shuffle=False, generator=None, drop_last=True)) == []


def test_tensor_image_set_rejects_wrong_inputs():
    with pytest.raises(ValueError, match="uint8"):
        TensorImageSet(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        TensorImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))


# ------------------------------------------------------------------ digits
def test_digits_splits_are_stratified_fixed_and_16x16():
    from sklearn.datasets import load_digits

    s = load_splits(DataConfig(name="digits"), CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (1347, 1347, 450)
    assert s.pretrain is s.probe_train and (s.num_classes, s.channels, s.native_size, s.recipe) == (10, 1, 16, "digits")
    x, y = s.pretrain.images, s.pretrain.labels
    assert x.shape == (1347, 1, 16, 16) and x.dtype == torch.uint8 and int(x.max()) == 255 and int(x.min()) == 0
    full = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(s.probe_test.labels.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - full * 0.25) <= 1)  # stratified
    again = load_splits(DataConfig(name="digits", augment="none"), CPU)  # same split every time
    assert torch.equal(again.probe_test.images, s.probe_test.images) and torch.equal(again.pretrain.labels, y)
    # the 16x16 images are the 8x8 digits upsampled: pooling back recovers them
    raw = torch.from_numpy(load_digits().images).float() * 255 / 16  # (N, 8, 8)
    small = torch.nn.functional.avg_pool2d(s.probe_test.images.float(), 2)[:, 0]
    matches = [min(float((small[i] - raw).abs().mean(dim=(1, 2)).min()), 999) for i in range(5)]
    assert max(matches) < 25  # each test image is within ~10% of one original digit


# ------------------------------------------------------------------ fake
def test_fake_is_deterministic_sized_and_learnable():
    cfg = DataConfig(name="fake", fake_size=300, fake_classes=5, image_size=24)
    s = load_splits(cfg, CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (300, 300, 75)
    assert s.pretrain.images.shape == (300, 3, 24, 24) and (s.channels, s.native_size, s.num_classes) == (3, 24, 5)
    assert set(s.pretrain.labels.tolist()) == set(range(5))
    assert torch.equal(load_splits(cfg, CPU).probe_test.images, s.probe_test.images)
    # class structure: nearest class mean of the probe train split classifies the test split
    tr, te = s.probe_train.images.float().flatten(1), s.probe_test.images.float().flatten(1)
    means = torch.stack([tr[s.probe_train.labels == k].mean(0) for k in range(5)])
    acc = (torch.cdist(te, means).argmin(1) == s.probe_test.labels).float().mean()
    assert acc > 0.9
    assert load_splits(DataConfig(name="fake", fake_size=8), CPU).native_size == 32


# ------------------------------------------------------------------ STL-10
def stl_images(n, seed):
    """(n, 3, 96, 96) uint8 images with a known, orientation-revealing layout (C, H, W)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
    img[:, 0, :8, :] = 255  # a bright band along the top of the red channel
    return img


def write_stl(folder, train=3, test=2, unlabeled=2):
    """Files as STL-10 ships them: each channel stored column-major, labels 1..10 one byte each."""
    folder.mkdir(parents=True, exist_ok=True)
    imgs = {"train": stl_images(train, 0), "test": stl_images(test, 1), "unlabeled": stl_images(unlabeled, 2)}
    for split, img in imgs.items():
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(img.transpose(0, 1, 3, 2)).tobytes())
    labels = {"train": np.array([1, 10, 4][:train], np.uint8), "test": np.array([7, 1][:test], np.uint8)}
    for split, y in labels.items():
        (folder / f"{split}_y.bin").write_bytes(y.tobytes())
    return imgs, labels


@pytest.mark.parametrize("point_at_binary_folder", [False, True])
def test_stl10_reads_the_binary_format_the_right_way_up(tmp_path, monkeypatch, point_at_binary_folder):
    monkeypatch.setattr(data, "_CHUNK", 2)  # several chunks per file
    imgs, labels = write_stl(tmp_path / "stl10_binary")
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
    assert all(f in msg for f in data.STL_FILES) and "ablate data fetch stl10" in msg
    with pytest.raises(DatasetError, match="stl10_binary/.*train_X.bin"):
        load_splits(DataConfig(name="stl10", root=str(tmp_path / "stl10_binary" / "..")), CPU)


# ------------------------------------------------------------------ CIFAR-10
def write_cifar(folder, per_batch=2, test=3):
    """Pickled batches in the python-version format (a dict with 'data' (n, 3072) and 'labels')."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for k, name in enumerate(data.CIFAR_FILES):
        n = test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = [(k + i) % 10 for i in range(n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": x, "labels": y, "filenames": [f"{i}.png" for i in range(n)]}, f)
        written[name] = (x, y)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return written


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


# ------------------------------------------------------------------ imagefolder
COLOURS = {"cat": (250, 10, 10), "dog": (10, 10, 250), "eel": (10, 250, 10)}


def write_folder(root, train=None, val=None):
    from PIL import Image

    train = train or {"cat": 2, "dog": 3}
    val = val or {"cat": 1, "dog": 1}
    for split, counts in (("train", train), ("val", val)):
        for cls, n in counts.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (30 + 2 * i, 20), COLOURS[cls]).save(root / split / cls / f"{i}.png")


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
    with pytest.raises(DatasetError, match="malformed"):
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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_stay_on_the_device_without_synchronising():
    s = load_splits(DataConfig(name="fake", fake_size=64), torch.device("cuda"))
    assert s.pretrain.images.is_cuda
    cpu_order = order(
        (x.cpu(), y) for x, y in indexed_set(10).batches(3, True, torch.Generator().manual_seed(1), False)
    )
    cuda_set = TensorImageSet(indexed_set(10).images.cuda(), indexed_set(10).labels.cuda())
    gpu_order = order((x.cpu(), y) for x, y in cuda_set.batches(3, True, torch.Generator().manual_seed(1), False))
    assert cpu_order == gpu_order  # a CPU generator gives the same order whatever the data's device
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for gen in (torch.Generator().manual_seed(0), torch.Generator(device="cuda").manual_seed(0)):
            got = list(s.pretrain.batches(16, shuffle=True, generator=gen, drop_last=True))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(got) == 4 and all(x.is_cuda and y.is_cuda for x, y in got)
