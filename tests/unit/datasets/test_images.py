"""ImageSet batching: TensorImageSet in order, shuffled, with drop_last; on CUDA without synchronising."""

import pytest
import torch

from ablate.config.trial import DataConfig
from ablate.datasets.images import TensorImageSet
from ablate.datasets.loaders import load_splits


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
