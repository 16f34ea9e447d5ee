"""``ablate submit --slurm`` end to end on a real 3-node SLURM cluster on this machine (conftest.py).

A sweep of three tiny digits trials (1 CPU each) runs as one job on 1 node and on 3 nodes: on 3, the
Ray head starts at the first node's address, one worker step per other node joins it, the trials run
on different nodes (the ``node`` column), one of them with a plugin predictor that Ray's runtime
environment ships to whichever node runs it, the results land once in the shared folder, a second
submission runs nothing, and ``ablate status`` / ``ablate table`` read them from the login side (this
machine, outside the nodes). The 1-node run is the baseline for the wall time (opt-in: it adds a
job). The time-limit warning and requeue on 3 nodes: test_slurm_node_loss.py.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pandas as pd
import pytest

from ablate.cli import main
from helpers.jobs import (
    assert_completed,
    expected_trial_ids,
    job_log,
    parquet_digest,
    phases,
    ray_processes_of,
    submit,
    write_sweep,
)
from helpers.plugins import lowrank

pytestmark = pytest.mark.system

THREE = "linear, none, directpred"
TABLE = "table: {rows: [predictor.name], metric: z_std}\n"


def run_seconds(info: dict[str, str]) -> int:
    """``RunTime=HH:MM:SS`` (or ``D-HH:MM:SS``) of ``scontrol show job`` in seconds."""
    days, _, hms = info["RunTime"].rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


@pytest.mark.skipif(
    not os.environ.get("ABLATE_SLURM_COMPARE"),
    reason="the 1-node baseline of the 3-node sweep's wall time; set ABLATE_SLURM_COMPARE=1 to measure it",
)
def test_one_node_job_runs_the_sweep(slurm_cluster, shared_dir, measured):
    """--nodes 1: the head alone, on 127.0.0.1; the three trials one after another on node1's CPU
    (the same sweep as below, for the wall time of 3 nodes vs 1)."""
    name = "slurm_one"
    sweep = write_sweep(shared_dir, name, epochs=2, predictors=THREE, extra=TABLE)
    job = submit(slurm_cluster, shared_dir, sweep, nodes=1)
    info = assert_completed(slurm_cluster, shared_dir, name, job)
    log = job_log(shared_dir, name, job)
    assert re.search(r"Ray head on node\d at 127\.0\.0\.1:\d+, 0 worker node\(s\)", log), log
    final = pd.read_parquet(shared_dir / "results" / name).query("is_final")
    assert set(final.trial_id) == expected_trial_ids(sweep) and (final.status == "ok").all(), log
    assert final.node.nunique() == 1 and final.node.iloc[0] in slurm_cluster.names
    assert not ray_processes_of(job), "Ray outlived its job"
    measured(f"3 trials on 1 node: job run time {run_seconds(info)} s ({phases(log)})")


def test_three_node_job_spreads_the_sweep_then_a_resubmission_runs_nothing(slurm_cluster, shared_dir, capsys, measured):
    name = "slurm_three"
    (shared_dir / "plugin").mkdir(exist_ok=True)
    (shared_dir / "plugin" / "lowrank.py").write_text(lowrank())
    plugin = "plugins: [plugin/lowrank.py]\n"  # relative to the sweep file, not the job's working directory
    sweep = write_sweep(shared_dir, name, epochs=2, predictors="linear, lowrank, directpred", extra=TABLE + plugin)
    results = shared_dir / "results" / name
    job = submit(slurm_cluster, shared_dir, sweep, "--shared-storage-ok", nodes=3)
    info = assert_completed(slurm_cluster, shared_dir, name, job)
    log = job_log(shared_dir, name, job)

    head = slurm_cluster.by_name(info["BatchHost"])
    assert re.search(rf"Ray head on {head.name} at {re.escape(head.ip)}:\d+, 2 worker node\(s\)", log), log
    assert "Ray is up on 3 node(s)" in log, log
    df = pd.read_parquet(results)
    final = df[df.is_final]
    assert set(final.trial_id) == expected_trial_ids(sweep), log
    assert (final.status == "ok").all(), final[["trial_id", "status", "error"]]
    plugged = final[final.plugin.notna()]
    assert plugged["predictor.name"].tolist() == ["lowrank"] and plugged.plugin.tolist() == ["lowrank.py"]
    per_node = Counter(final.node)
    assert set(per_node) <= set(slurm_cluster.names) and len(per_node) >= 2, (per_node, log)
    assert len(df) == len(df[["trial_id", "epoch"]].drop_duplicates())  # every row once
    assert sorted(p.name for p in results.iterdir()) == sorted(f"{t}.parquet" for t in final.trial_id)
    assert "stopping Ray on 3 node(s)" in log and not ray_processes_of(job), "Ray outlived its job"
    measured(
        f"3 trials on 3 nodes: job run time {run_seconds(info)} s ({phases(log)}), "
        f"trials per node {dict(sorted(per_node.items()))}"
    )

    before = parquet_digest(results)
    job2 = submit(slurm_cluster, shared_dir, sweep, "--shared-storage-ok", nodes=3)
    assert_completed(slurm_cluster, shared_dir, name, job2)
    assert "nothing to run" in job_log(shared_dir, name, job2), job_log(shared_dir, name, job2)
    assert parquet_digest(results) == before  # the resumed job rewrote nothing

    capsys.readouterr()  # the login side: this machine, outside every node's namespaces
    assert main(["status", str(results)]) == 0
    assert "3 done" in capsys.readouterr().out
    assert main(["table", str(results)]) == 0
    table = capsys.readouterr().out
    assert all(p in table for p in ("linear", "lowrank", "directpred")), table
