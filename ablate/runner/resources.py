"""What a trial asks of the Ray cluster, and the checks that refuse a sweep Ray could never run.

Ray leaves a trial PENDING for ever when no node can hold it, and a multi-node cluster whose
storage not every node sees loses checkpoints: both are refused before any trial starts.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ablate.config.tree import flatten, merge
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from ablate.results.shared import NODE_LOCAL_HINT, storage_problem
from ablate.runner.data_parallel import worker_resources
from ablate.runner.session import alive_nodes, init_ray, shutdown_ray
from ablate.sweep.validated import Sweep
from ablate.train.ddp import check_batch


def trial_resources(sweep: Sweep) -> dict[str, float]:
    """What one trial needs on the cluster: ``CPU``/``GPU`` of ONE worker bundle, and ``workers``
    bundles (1 for a single-process trial, whose bundle is the whole trial)."""
    r = sweep.resources
    if r.workers > 1:
        return {**worker_resources(r), "workers": r.workers}
    return {"CPU": r.cpu, "GPU": r.gpu, "workers": 1}


def _bundles_per_node(node: dict[str, float], need: dict[str, float]) -> int:
    if not need:
        return 1 << 30
    return min(int(node.get(k, 0) // v + 1e-9) if v else 1 << 30 for k, v in need.items())


def fitting_trials(resources: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """How many such trials the nodes hold at once (bundles are placed node by node)."""
    workers = int(resources.get("workers", 1))
    need = {k: v for k, v in resources.items() if k != "workers" and v}
    return sum(_bundles_per_node(n, need) for n in nodes) // workers


def check_feasible(
    resources: dict[str, float],
    nodes: list[dict[str, float]] | None = None,
    where: str = "the Ray cluster",
    bigger: str = "add bigger nodes",
) -> None:
    """Refuse a trial no node (or, data-parallel, no set of nodes) can hold: of the connected
    cluster, or of ``nodes`` (``where`` names them, ``bigger`` says where more room is)."""
    nodes = alive_nodes() if nodes is None else nodes
    if fitting_trials(resources, nodes) >= 1:
        return
    workers = int(resources.get("workers", 1))
    need = {k: v for k, v in resources.items() if k != "workers" and v}
    have = "; ".join(f"CPU {n.get('CPU', 0):g}, GPU {n.get('GPU', 0):g}" for n in nodes) or "no nodes"
    what = f"resources per trial {need}" if workers == 1 else f"{workers} data-parallel workers of {need} each"
    raise UserError(
        f"{what} fit on no node of {where} ({have}); lower resources.cpu / resources.gpu"
        f"{' / resources.workers' if workers > 1 else ''} in the sweep file or {bigger}"
    )


def local_node(gpus_asked: bool) -> dict[str, float]:
    """What the local Ray of ``ablate run`` (no ``--address``) can give trials: this machine's CPUs
    (``os.cpu_count``; Ray's own count, under a container's CPU quota, is never larger) and GPUs
    (torch's count, asked only when a trial asks for a GPU: it may start the CUDA driver)."""
    gpus = torch.cuda.device_count() if gpus_asked else 0
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}


def check_local(sweep: Sweep) -> None:
    """``ablate check`` without ``--address``: refuse, before any Ray starts, a trial the local Ray
    of ``ablate run`` could never place (:func:`check_feasible` on this machine)."""
    need = trial_resources(sweep)
    where = "the local Ray on this machine"
    check_feasible(need, [local_node(bool(need.get("GPU")))], where, "run it on a cluster (--address)")


def check_storage(location: Location, address: str | None, shared_ok: bool) -> None:
    """Refuse a multi-node cluster whose storage not every node sees: trials on other nodes would
    write their checkpoints where no retry (and no later run) finds them."""
    nodes = len(alive_nodes())
    if nodes <= 1 or shared_ok:
        return
    problem = storage_problem(location)
    if problem:
        raise UserError(
            f"the Ray cluster{f' at {address}' if address else ''} has {nodes} nodes but storage "
            f"{location} is not shared ({problem}); {NODE_LOCAL_HINT}, or pass --shared-storage-ok "
            "if every node mounts this path"
        )


def check_data_parallel(sweep: Sweep) -> None:
    """Every trial's global batch must split into ``resources.workers`` equal shards."""
    workers = sweep.resources.workers
    if workers <= 1:
        return
    kind = sweep.trial_kind
    if kind.batch_size is None:
        raise UserError(
            f"{sweep.path}: resources.workers: trials of kind {kind.name} do not run data-parallel; set workers: 1"
        )
    configs = [t.config for t in sweep.trials] or [kind.build(sweep.search_base)]
    for cfg in configs:
        problem = check_batch(kind.batch_size(cfg), workers)
        if problem:
            raise UserError(f"{sweep.path}: resources.workers: {problem}")


def with_gpu_share(tree: dict[str, Any], sweep: Sweep) -> dict[str, Any]:
    """A trial that gets a fraction of a GPU (``resources.gpu`` < 1) caps its own allocator at that
    share (95% of it, for the CUDA context), unless the config sets ``train.gpu_memory_fraction``:
    packed trials then cannot starve each other. The key is not part of the trial id."""
    gpu, key = sweep.resources.gpu, sweep.trial_kind.gpu_share_key
    if not key or not 0 < gpu < 1 or flatten(tree).get(key):
        return tree
    return merge(tree, {key: round(0.95 * gpu, 4)})


def check_cluster(sweep: Sweep, address: str, folder: SweepDir) -> None:
    """``ablate check --address``: attach to the Ray cluster and refuse a trial none of its nodes holds."""
    started = init_ray(address, folder.logs)
    try:
        check_feasible(trial_resources(sweep))
    finally:
        if started:
            shutdown_ray()
