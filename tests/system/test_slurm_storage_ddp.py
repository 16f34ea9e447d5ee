"""Storage and data parallelism across the nodes of the real 3-node SLURM cluster (conftest.py).

* a data-parallel trial (``resources: {cpu: 2, workers: 2}``) on nodes of one CPU each: its two gloo
  workers run on two different nodes and compute the single-process trial;
* node-local storage is refused for a multi-node job with one line, before anything is submitted;
* the sweep with ``--storage s3://...``: an S3-compatible server (moto's) listens on the bridge
  address, and every node writes its trials' results and weights there.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

import ablate
from ablate.cli import main
from ablate.kinds.ssl import load_trial_config
from ablate.train.loop import pretrain
from helpers.jobs import assert_completed, expected_trial_ids, job_log, submit, submit_process, write_sweep
from helpers.s3 import TEST_CREDENTIALS
from helpers.tiny_sweeps import TINY_BASE
from helpers.tiny_sweeps import write_sweep as write_tiny

pytestmark = pytest.mark.system


def test_a_data_parallel_trial_spans_two_nodes_and_computes_the_single_process_trial(
    slurm_cluster, shared_dir, measured
):
    """2 workers x 1 CPU on 1-CPU nodes: one worker per node, gloo over the bridge. With sync_bn the
    rank-0 loss curve is the single-process one on the same global batch (float summation order
    only: rel 1e-4, as in tests/system/test_ray_cluster.py)."""
    base = TINY_BASE.replace("model: {width: 16}", "model: {width: 16, sync_bn: true}")
    sweep = write_tiny(shared_dir, "ddp", "resources: {cpu: 2, workers: 2}\nseeds: [0]\n", base)
    job = submit(slurm_cluster, shared_dir, sweep, "--shared-storage-ok", nodes=2)
    info = assert_completed(slurm_cluster, shared_dir, "ddp", job)
    log = job_log(shared_dir, "ddp", job)
    df = pd.read_parquet(shared_dir / "results" / "ddp").sort_values("epoch")
    assert list(df.epoch) == [1, 2] and list(df.status) == ["ok", "ok"], log  # rank 0's rows, once each
    hosts = df.node.iloc[0].split(",")
    assert len(hosts) == 2 and len(set(hosts)) == 2 and set(hosts) <= set(slurm_cluster.names), (hosts, log)
    single = pretrain(load_trial_config(dict(ablate.load_sweep(sweep).base) | {"seed": 0}), lambda r: None)
    expected = [r["loss"] for r in single]
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(df.loss, expected)), (list(df.loss), expected)
    measured(f"data-parallel trial on {df.node.iloc[0]} (gloo): job run time {info['RunTime']}")


def test_node_local_storage_is_refused_for_a_multi_node_job(slurm_cluster, shared_dir, tmp_path):
    sweep = write_sweep(shared_dir, "local")
    proc = submit_process(slurm_cluster, shared_dir, sweep, nodes=3, storage=str(tmp_path / "results"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--nodes 3 needs storage that every node sees" in proc.stderr and "/tmp is node-local" in proc.stderr
    assert not (tmp_path / "results").exists() and not slurm_cluster.run("squeue", "-h").stdout.strip()


@pytest.fixture
def s3_on_the_bridge(slurm_cluster, monkeypatch):
    """moto's S3 server on the machine's bridge address (which every node reaches), one bucket, and
    fake credentials in the environment the job inherits from sbatch."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'ablate[dev]')")
    server = moto_server.ThreadedMotoServer(ip_address=slurm_cluster.login_ip, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    creds = TEST_CREDENTIALS
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(slurm_cluster, "env", {**slurm_cluster.env, **creds})
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True)
    fs.create_dir("ablate")
    try:
        yield fs, f"s3://ablate/results?endpoint_override={host}:{port}&scheme=http"
    finally:
        server.stop()


def test_the_sweep_on_s3_runs_from_every_node(slurm_cluster, shared_dir, s3_on_the_bridge, capsys, measured):
    fs, storage = s3_on_the_bridge
    name = "slurm_s3"
    sweep = write_sweep(shared_dir, name, epochs=2, predictors="linear, none, directpred")
    job = submit(slurm_cluster, shared_dir, sweep, nodes=3, storage=storage)  # a URI: no --shared-storage-ok
    info = assert_completed(slurm_cluster, shared_dir, name, job)
    log = job_log(shared_dir, name, job)
    df = ds.dataset(f"ablate/results/{name}", filesystem=fs, format="parquet").to_table().to_pandas()
    final = df[df.is_final]
    assert set(final.trial_id) == expected_trial_ids(sweep) and final.trial_id.is_unique, log
    assert (final.status == "ok").all(), final[["trial_id", "status", "error"]]
    per_node = Counter(final.node)
    assert len(per_node) >= 2, (per_node, log)
    weights = fs.get_file_info(pafs.FileSelector(f"ablate/results/_{name}/weights", recursive=True))
    assert sum(i.path.endswith("/trunk_final.pt") for i in weights) == 3  # written by the node of each trial
    capsys.readouterr()
    folder = storage.replace("/results?", f"/results/{name}?")
    assert main(["status", folder]) == 0 and "3 done" in capsys.readouterr().out  # from the login side
    measured(f"3 trials on 3 nodes, results in S3: job run time {info['RunTime']}, trials per node {dict(per_node)}")
