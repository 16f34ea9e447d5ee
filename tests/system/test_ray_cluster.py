"""``ablate run --address`` on a real two-node Ray cluster on this machine (ray.cluster_utils.Cluster:
a head and a worker node, 1 CPU each, separate raylets). Trials spread over both nodes; a node
removed mid-trial sends its trial back to its checkpoint; a data-parallel trial runs as a Ray Train
job with one worker per node; impossible resources and node-local storage are refused."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import ablate
from ablate.errors import UserError
from ablate.kinds.ssl import load_trial_config
from ablate.results.layout import SweepDir
from ablate.runner.resources import fitting_trials
from ablate.train.loop import pretrain
from helpers.tiny_sweeps import TINY_BASE, write_sweep

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # another module's local Ray: this module needs the cluster's
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c, worker
    ray.shutdown()
    c.shutdown()


def run(cluster, path: Path, storage: Path, **kw):
    c, _ = cluster
    return ablate.run(path, address=c.address, storage=str(storage), shared_storage_ok=True, **kw)


def test_fitting_trials_counts_bundles_node_by_node():
    nodes = [{"CPU": 1.0}, {"CPU": 1.0}]
    assert fitting_trials({"CPU": 1, "GPU": 0, "workers": 1}, nodes) == 2
    assert fitting_trials({"CPU": 2, "GPU": 0, "workers": 1}, nodes) == 0  # 2 CPUs in total, not on one node
    assert fitting_trials({"CPU": 1, "GPU": 0, "workers": 2}, nodes) == 1  # one worker per node
    assert fitting_trials({"CPU": 1, "GPU": 1, "workers": 1}, nodes) == 0


def test_a_trial_no_node_can_hold_is_refused(cluster, tmp_path):
    path = write_sweep(tmp_path, "big", "resources: {cpu: 2}\n")
    with pytest.raises(
        UserError,
        match=r"resources per trial \{'CPU': 2\.0\} fit on no node of the Ray cluster "
        r"\(CPU 1, GPU 0; CPU 1, GPU 0\)",
    ):
        run(cluster, path, tmp_path / "res")
    wide = write_sweep(
        tmp_path, "wide", "resources: {cpu: 3, workers: 3}\n", TINY_BASE.replace("batch_size: 64", "batch_size: 63")
    )
    with pytest.raises(UserError, match=r"3 data-parallel workers of \{'CPU': 1\.0\} each fit on no node"):
        run(cluster, wide, tmp_path / "res")
    assert not list((tmp_path / "res").rglob("*.parquet"))


def test_node_local_storage_is_refused_on_a_multi_node_cluster(cluster, tmp_path):
    c, _ = cluster
    path = write_sweep(tmp_path, "local", "seeds: [0]\n")
    with pytest.raises(
        UserError,
        match=r"has 2 nodes but storage .* is not shared \(/tmp is node-local\); "
        r".*--shared-storage-ok",
    ):
        ablate.run(path, address=c.address, storage=str(tmp_path / "res"))


def test_a_data_parallel_trial_runs_as_a_ray_train_job_across_both_nodes(cluster, tmp_path):
    """2 workers x 1 CPU: one on each node (gloo over TCP). With sync_bn the rank-0 loss curve is
    the single-process one on the same global batch (float summation order only: rel 1e-4)."""
    base = TINY_BASE.replace("model: {width: 16}", "model: {width: 16, sync_bn: true}")
    path = write_sweep(
        tmp_path,
        "ddp",
        """\
        resources: {cpu: 2, workers: 2}
        checkpoint: {every: 1, keep: 1}
        seeds: [0]
        """,
        base,
    )
    summary = run(cluster, path, tmp_path / "res")
    assert summary.exit_code == 0 and not summary.failed
    df = pd.read_parquet(tmp_path / "res" / "ddp").sort_values("epoch")
    assert list(df.epoch) == [1, 2] and list(df.status) == ["ok", "ok"]  # rows of rank 0 only, once each
    sweep = ablate.load_sweep(path)
    single = pretrain(load_trial_config({k: v for k, v in sweep.base.items()} | {"seed": 0}), lambda r: None)
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(df.loss, [r["loss"] for r in single])), (
        list(df.loss),
        [r["loss"] for r in single],
    )
    assert df.probe_top1.notna().all()
    weights = SweepDir.at(tmp_path / "res" / "ddp").weights(df.trial_id.iloc[0]).local / "trunk_final.pt"
    assert weights.is_file()  # written by rank 0
    assert not list(SweepDir.at(tmp_path / "res" / "ddp").train_dir.local.glob("*/epoch_*"))  # finished: cleaned up


def test_trials_spread_over_both_nodes_and_a_lost_node_resumes_its_trial_from_a_checkpoint(cluster, tmp_path):
    """Two 1-CPU trials on two 1-CPU nodes run one per node. Once both have stored a checkpoint the
    worker node is removed: its trial fails, is retried (max_failures) on the head node once that is
    free, continues from its checkpoint, and every trial ends with each epoch's row exactly once."""
    c, worker = cluster
    # 24 short epochs: the trial whose actor starts first must not finish (and drop its checkpoints)
    # before the other one, started a few seconds later on the other node, has stored one
    base = TINY_BASE.replace("epochs: 2, steps_per_epoch: 2", "epochs: 24, steps_per_epoch: 4").replace(
        "every: 1, probe_epochs: 2", "every: 8, probe_epochs: 2"
    )
    path = write_sweep(
        tmp_path,
        "spread",
        """\
        grid:
          optim.lr: [0.03, 0.05]
        seeds: [0]
        checkpoint: {every: 1, keep: 2}
        max_failures: 2
        """,
        base,
    )
    results = tmp_path / "res" / "spread"
    seen: dict[str, object] = {}

    def finished_trials() -> int:
        """Trials with a final row so far (files are replaced while we read: retry on a race)."""
        for _ in range(20):
            try:
                return sum(
                    bool(pq.read_table(f, columns=["is_final"]).column(0).to_pylist()[-1])
                    for f in results.glob("*.parquet")
                )
            except (OSError, IndexError):
                time.sleep(0.05)
        raise RuntimeError("results kept changing under the reader")

    def remove_worker_when_both_have_checkpoints() -> None:
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                trials = {p.parent.name for p in (SweepDir.at(results).ray_dir.local / "spread").glob("*/checkpoint_*")}
                if len(trials) == 2:
                    seen["finished_at_removal"] = finished_trials()
                    seen["checkpointed"] = trials
                    c.remove_node(worker)
                    return
                time.sleep(0.05)
        except Exception as e:
            seen["error"] = repr(e)

    killer = threading.Thread(target=remove_worker_when_both_have_checkpoints, daemon=True)
    killer.start()
    summary = run(cluster, path, tmp_path / "res")
    killer.join(timeout=5)
    assert seen.get("checkpointed"), f"the two trials never both stored a checkpoint {seen}"
    # both trials had a checkpoint and neither had finished: they ran at the same time, one per node
    assert seen["finished_at_removal"] == 0
    assert summary.exit_code == 0 and not summary.failed
    df = pd.read_parquet(results)
    assert df.trial_id.nunique() == 2
    for tid, rows in df.groupby("trial_id"):
        assert sorted(rows.epoch) == [8, 16, 24] and rows.is_final.sum() == 1, tid  # evaluated epochs once each
    resumed = df[df.resumed_from_epoch.notna()]
    assert resumed.trial_id.nunique() == 1  # the trial of the removed node, not the other one
    epoch = int(resumed.resumed_from_epoch.iloc[0])
    assert 1 <= epoch < 24
    rows = df[df.trial_id == resumed.trial_id.iloc[0]]
    assert rows[rows.epoch > epoch].resumed_from_epoch.eq(epoch).all()
    assert rows[rows.epoch <= epoch].resumed_from_epoch.isna().all()  # not recomputed after the loss
