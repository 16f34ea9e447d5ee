"""A data-parallel trial (2 gloo ranks on CPU) computes the single-process trial on the same global batch.

The ranks run :func:`ablate.trial.pretrain` in two processes joined by a torch.distributed gloo
process group (what Ray Train sets up for each worker; the Ray path itself is exercised in
tests/system/test_ray_cluster.py). With ``model.sync_bn`` every step is the single-process step
up to float summation order, so the loss curves agree to ``REL_TOL``; without it BatchNorm sees
per-shard statistics and the curves differ measurably.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ablate.kinds.ssl import load_trial_config
from ablate.train.loop import pretrain

# 3 epochs x 3 steps of batch 64: float summation order (per-shard sums, all-reduce) is the only
# difference between the two runs; it stays below 1e-5 relative here. 1e-4 leaves room for BLAS.
REL_TOL = 1e-4
CFG = {
    "train": {"epochs": 3, "steps_per_epoch": 3, "batch_size": 64, "threads": 1},
    "eval": {"every": 1, "probe_epochs": 2},
    "projector": {"hidden_dim": 64, "out_dim": 16},
    "model": {"width": 16},
    "optim": {"lr": 0.05},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, cfg: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        rows: list[dict] = []
        pretrain(load_trial_config(cfg), rows.append)
        Path(out, f"rank{rank}.json").write_text(
            json.dumps([{k: r.get(k) for k in ("epoch", "loss", "probe_top1", "z_std", "status")} for r in rows])
        )
    finally:
        dist.destroy_process_group()


def run_ranks(cfg: dict, tmp_path: Path, world: int = 2) -> list[list[dict]]:
    # fork: the ranks start in a moment with torch already imported (spawn re-imports everything)
    mp.start_processes(
        _rank_main, args=(world, _free_port(), cfg, str(tmp_path)), nprocs=world, join=True, start_method="fork"
    )
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]


def merged(**over) -> dict:
    out = json.loads(json.dumps(CFG))
    for key, value in over.items():
        out.setdefault(key, {}).update(value) if isinstance(value, dict) else out.__setitem__(key, value)
    return out


def test_two_gloo_ranks_with_sync_bn_give_the_single_process_loss_curve(tmp_path):
    cfg = merged(model={"sync_bn": True}, predictor={"name": "directpred"})
    single = pretrain(load_trial_config(cfg), lambda r: None)
    rank0, rank1 = run_ranks(cfg, tmp_path)
    want = [r["loss"] for r in single]
    got = [r["loss"] for r in rank0]
    assert len(got) == len(want) == 3
    assert all(math.isclose(a, b, rel_tol=REL_TOL) for a, b in zip(got, want)), (got, want)
    assert [r["loss"] for r in rank1] == got  # the epoch loss is the global batch's on every rank
    assert all(r["probe_top1"] is not None for r in rank0) and all(r["probe_top1"] is None for r in rank1)
    # rank 0 evaluates the same network as the single process
    assert all(math.isclose(a["z_std"], b["z_std"], rel_tol=1e-3) for a, b in zip(rank0, single))


def test_without_sync_bn_the_shards_normalise_with_their_own_statistics(tmp_path):
    """The control: each rank really trains on its half of the batch (BatchNorm statistics of 32
    images, not 64), so without sync_bn the curve moves away from the single-process one."""
    cfg = merged(model={"sync_bn": False})
    single = pretrain(load_trial_config(cfg), lambda r: None)
    rank0, _ = run_ranks(cfg, tmp_path)
    diffs = [abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(rank0, single)]
    assert max(diffs) > 10 * REL_TOL, diffs


def test_the_innermost_worker_error_names_the_failed_trial():
    from ray.train import ControllerError, WorkerGroupError

    from ablate.runner.data_parallel import worker_error

    try:
        raise ValueError("train.batch_size=5000 exceeds the 1347 pretraining images")
    except ValueError as e:
        failure = e
    err = WorkerGroupError("rank 0 failed", {1: RuntimeError("other rank"), 0: failure})
    assert worker_error(err) == "ValueError: train.batch_size=5000 exceeds the 1347 pretraining images"
    assert (
        worker_error(ControllerError(RuntimeError("placement group never ready")))
        == "RuntimeError: placement group never ready"
    )
