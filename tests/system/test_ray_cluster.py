"""``ablate run --address`` on a two-node Ray cluster on this machine (ray.cluster_utils.Cluster: a
head and a worker node, 1 CPU each, separate raylets, one address): impossible resources and
node-local storage are refused. Trials across nodes, a lost node and a data-parallel trial across
nodes run on a real 3-node SLURM cluster instead (test_slurm*.py), where each node has its own
address, hostname and processes."""

from __future__ import annotations

from pathlib import Path

import pytest

import ablate
from ablate.errors import UserError
from ablate.runner.resources import fitting_trials
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
