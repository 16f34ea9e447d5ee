"""Data-parallel trials: ``resources: {workers: N}`` runs one trial as N DDP workers (Ray Train).

The same :func:`ablate.train.loop.pretrain` runs single-process and data-parallel; when a
``torch.distributed`` process group of more than one rank is initialised, the loop
(:class:`DataParallel`) makes the N workers together compute exactly the single-process step on
the global batch B = ``train.batch_size``:

* every worker draws the same global sample order and the same per-image augmentation parameters
  of the whole global batch (same seeded generators), and keeps its own slice of B / N images:
  no worker sees another's images, and together they see the single-process batch;
* the online encoder and predictor are wrapped in ``DistributedDataParallel``: the loss of a
  worker is the mean over its shard, and averaging the gradients over workers gives the gradient
  of the mean over the global batch;
* DirectPred's / the plug-in predictor's statistics F_hat = E[f f^T] (Eq. 19) are averaged over
  workers before W_p is set (:func:`ablate.models.predictors._global_mean`), so every worker sets the
  same W_p from the global batch;
* BatchNorm normalises each worker's shard with its own statistics, unless ``model.sync_bn``:
  then statistics are over the global batch (``torch.nn.SyncBatchNorm`` on CUDA; on CPU/gloo,
  where torch's SyncBatchNorm refuses to run, :class:`AllReduceBatchNorm`). Only with sync_bn (or
  a model without BatchNorm) is the data-parallel step the single-process one, up to float
  summation order;
* only rank 0 evaluates, reports rows, writes checkpoints and weights; the others report empty
  heartbeats so the report barrier of Ray Train stays in step.

The Ray side, which starts the N workers, is :mod:`ablate.runner.data_parallel`.
"""

from __future__ import annotations

import dataclasses
import inspect
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


# ---------------------------------------------------------------- the process group as the loop sees it
@dataclass(frozen=True)
class DataParallel:
    """This worker's place in a data-parallel trial."""

    rank: int
    world: int

    @classmethod
    def current(cls) -> DataParallel | None:
        """The initialised process group if it has more than one rank, else None (single process)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return cls(dist.get_rank(), dist.get_world_size())
        return None

    def shard(self, global_batch: int) -> slice:
        """This rank's rows of a global batch of ``global_batch`` (a multiple of ``world``)."""
        per = global_batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def mean(self, value: Tensor) -> Tensor:
        """Average a tensor over ranks (a copy; the input is left alone)."""
        out = value.detach().clone()
        dist.all_reduce(out)
        return out / self.world

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def hosts(self) -> str:
        """Every rank's hostname, comma-separated in rank order (a collective: every rank calls it)."""
        names: list[object] = [None] * self.world
        dist.all_gather_object(names, platform.node())
        return ",".join(str(n) for n in names)


def check_batch(batch_size: int, workers: int) -> str | None:
    """Why ``train.batch_size`` cannot be split over ``workers`` equal shards, or None."""
    if workers > 1 and batch_size % workers:
        return (
            f"train.batch_size={batch_size} does not split into {workers} equal worker shards; "
            f"use a multiple of resources.workers={workers}"
        )
    return None


# ---------------------------------------------------------------- batches and augmentation of a shard
def slice_params(params: Any, rows: slice) -> Any:
    """Rows ``rows`` of an :class:`ablate.train.augment.AugmentParams` (tensors sliced along dim 0)."""
    return dataclasses.replace(
        params,
        **{
            f.name: getattr(params, f.name)[rows]
            for f in dataclasses.fields(params)
            if isinstance(getattr(params, f.name), Tensor)
        },
    )


def augment_shard(augment: Any, x: Tensor, generator: torch.Generator, view: int, dp: DataParallel) -> Tensor:
    """Augment this rank's shard x (b, ...) with its rows of parameters drawn for the global batch.

    Drawing (b * world) parameter rows and keeping ours consumes the generator exactly as the
    single-process loop does for the global batch, so worker r's images get the very parameters
    they would get in one process (:meth:`ablate.train.augment.BatchAugment.__call__` = sample + apply)."""
    precropped = x.dim() == 5  # (b, V, C, S, S): views cropped by decode workers
    xv = x[:, view] if precropped else x
    params = augment.sample_params(
        xv.shape[0] * dp.world, generator, view, tuple(xv.shape[-2:]), crop=not precropped, device=xv.device
    )
    return augment.apply(xv, slice_params(params, dp.shard(xv.shape[0] * dp.world)))


class _ShardSampler(torch.utils.data.Sampler):
    """Index batches of one rank: the global order is ``randperm`` of the shared generator (the same
    on every rank), cut into global batches of B, of which this rank takes its B / world."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, dp: DataParallel) -> None:
        self.n, self.batch_size, self.generator, self.dp = n, batch_size, generator, dp

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        rows = self.dp.shard(self.batch_size)
        for i in range(0, self.n - self.batch_size + 1, self.batch_size):
            yield order[i : i + self.batch_size][rows]

    def __len__(self) -> int:
        return self.n // self.batch_size


def shard_batches(
    images: Any, batch_size: int, generator: torch.Generator, dp: DataParallel, cache: dict
) -> Iterator[tuple[Tensor, Tensor]]:
    """This rank's part of every global pretraining batch (shuffled, drop_last).

    Images decoded by DataLoader workers (:class:`ablate.datasets.folderset.FolderImageSet`) are decoded
    only for this rank's indices; sets held in memory on the device are batched as in one process
    and sliced (an index_select of B instead of B / world images: negligible next to a step)."""
    rows = dp.shard(batch_size)
    dataset = getattr(images, "items", None)
    if not isinstance(dataset, torch.utils.data.Dataset):
        for x, y in images.batches(batch_size, shuffle=True, generator=generator, drop_last=True):
            yield x[rows], y[rows]
        return
    key = (id(images), batch_size)
    if key not in cache:  # one loader per set, so persistent decode workers persist across epochs
        workers = getattr(images, "workers", 0)
        device = torch.device(getattr(images, "device", "cpu"))
        cache[key] = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=_ShardSampler(len(dataset), batch_size, generator, dp),
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )
    device = torch.device(getattr(images, "device", "cpu"))
    for x, y in cache[key]:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


# ---------------------------------------------------------------- model wrapping
class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all ranks, for CPU (gloo) process groups.

    torch's SyncBatchNorm runs on GPUs only. This computes the same statistics with two
    differentiable all-reduces (``torch.distributed.nn.functional.all_reduce``, whose backward is
    the all-reduce of the gradient): the global mean, then the global biased variance
    E[(x - mean)^2] (two passes: as accurate as one-process BatchNorm); running statistics use the
    unbiased variance of the global batch, as BatchNorm does for one batch of that size. In eval
    mode, or without a process group, it is plain BatchNorm."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and DataParallel.current() is not None):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = xf.new_tensor([xf.numel() / xf.shape[1]])  # values per channel on this rank
        stats = all_reduce(torch.cat([xf.sum(dims), count]))  # (C + 1,): global sums, global count
        n = stats[-1]
        mean = stats[:-1] / n  # (C,)
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n  # (C,) biased, as used to normalise
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * (n / (n - 1)).clamp_min(0)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def all_reduce(t: Tensor) -> Tensor:
    """Differentiable sum over ranks: the backward is the sum over ranks of the incoming gradients."""
    try:
        from torch.distributed import _functional_collectives as fc

        return fc.wait_tensor(fc.all_reduce(t, "sum", dist.group.WORLD))
    except (ImportError, AttributeError, RuntimeError):  # older torch: the autograd-aware c10d wrapper
        from torch.distributed.nn.functional import all_reduce as reduce

        return reduce(t)


def convert_sync_bn(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``module`` over the global batch: torch's SyncBatchNorm on CUDA,
    :class:`AllReduceBatchNorm` elsewhere. Parameters and buffers are kept (same objects), so an
    optimizer or a checkpoint made before the conversion still applies."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        out = AllReduceBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP over the whole pair: one forward computes both views, the target branch (frozen
    parameters, ignored by DDP) and the loss; gradients of the online encoder and the predictor
    are averaged over ranks. Buffers are not broadcast: BatchNorm running statistics are the same
    on every rank with sync_bn, and only rank 0's are ever used (it alone evaluates)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **no_sync)
