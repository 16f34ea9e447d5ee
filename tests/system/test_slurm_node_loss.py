"""A node lost mid-sweep on the real 3-node SLURM cluster (conftest.py): every process of a worker node
(its slurmd, its Ray worker step, the trial running there) is killed at once, as a power cut would.

The node is then marked DOWN, as slurmctld does once it misses its pings, and the job goes on
(``--no-kill``: SLURM drops the node from the job instead of ending the job), Ray retries the lost trial (``max_failures``) on a node that is left, from its last
checkpoint in the shared storage, and when the job ends every trial has exactly one final row, every
evaluated epoch exactly one row, and every file in the results reads. The node is then repaired
(its slurmd started again) and returns to service.
"""

from __future__ import annotations

import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ablate.results.layout import SweepDir
from helpers.jobs import assert_completed, expected_trial_ids, job_log, submit, write_sweep
from helpers.slurm import ENDED

pytestmark = pytest.mark.system

EPOCHS, EVERY = 12, 2
CHECKPOINTS = "checkpoint: {every: 1, keep: 2}\nmax_failures: 2\n"


def rows_so_far(results) -> pd.DataFrame:
    """The rows written so far (a file may be replaced while it is read: read each again then)."""
    frames = []
    for path in sorted(results.glob("*.parquet")):
        for _ in range(20):
            try:
                frames.append(pq.read_table(path, columns=["trial_id", "epoch", "node"]).to_pandas())
                break
            except OSError:
                time.sleep(0.05)
    return pd.concat(frames) if frames else pd.DataFrame(columns=["trial_id", "epoch", "node"])


def wait_for_victim(cluster, folder, name: str, job: str, head: str) -> tuple[str, str]:
    """(trial id, node) of a trial running on a worker node with a row and a checkpoint stored."""
    results = folder / "results" / name
    ray_dir = SweepDir.at(results).ray_dir.local / name
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert cluster.job_info(job).get("JobState") not in ENDED, job_log(folder, name, job)
        rows = rows_so_far(results)
        checkpointed = {p.parent.name for p in ray_dir.glob("*/checkpoint_*")}
        for tid, node in rows[rows.node != head][["trial_id", "node"]].drop_duplicates().itertuples(index=False):
            finished = rows[(rows.trial_id == tid) & (rows.epoch == EPOCHS)]
            if tid in checkpointed and finished.empty:
                return tid, node
        time.sleep(0.2)
    raise AssertionError(f"no trial on a worker node stored a row and a checkpoint:\n{job_log(folder, name, job)}")


@pytest.mark.slow  # ~100 s: Ray takes ~15 s to declare the node dead; the lost trial then waits for a free CPU
def test_a_node_lost_mid_sweep_resumes_its_trial_elsewhere(slurm_cluster, shared_dir, measured):
    name = "slurm_lost"
    sweep = write_sweep(shared_dir, name, epochs=EPOCHS, every=EVERY, predictors="linear, none, directpred",
                        extra=CHECKPOINTS)  # fmt: skip
    results = shared_dir / "results" / name
    job = submit(slurm_cluster, shared_dir, sweep, "--shared-storage-ok", nodes=3)
    while not slurm_cluster.job_info(job).get("BatchHost"):
        time.sleep(0.5)
    head = slurm_cluster.job_info(job)["BatchHost"]
    victim, lost = wait_for_victim(slurm_cluster, shared_dir, name, job, head)
    killed_at = time.monotonic()
    assert slurm_cluster.kill_node(lost), f"nothing ran on {lost}"

    # what slurmctld does once the node misses its pings (SlurmdTimeout), done at once: a DOWN node ends
    # every job on it that was not submitted with --no-kill (this one would end as NODE_FAIL)
    slurm_cluster.run("scontrol", "update", f"NodeName={lost}", "State=DOWN", "Reason=power_cut_test")
    info = assert_completed(slurm_cluster, shared_dir, name, job)
    ended_at = time.monotonic()
    log = job_log(shared_dir, name, job)
    assert lost not in slurm_cluster.run("scontrol", "show", "hostnames", info["NodeList"]).stdout.split()  # dropped

    df = pd.concat(pq.read_table(p).to_pandas() for p in sorted(results.glob("*.parquet")))  # each file reads
    assert sorted(p.name for p in results.iterdir()) == sorted(f"{t}.parquet" for t in expected_trial_ids(sweep))
    final = df[df.is_final]
    assert set(final.trial_id) == expected_trial_ids(sweep) and final.trial_id.is_unique, log
    assert (final.status == "ok").all(), final[["trial_id", "status", "error"]]
    for tid, rows in df.groupby("trial_id"):
        assert sorted(rows.epoch) == list(range(EVERY, EPOCHS + 1, EVERY)), (tid, list(rows.epoch))  # once each
    rows = df[df.trial_id == victim].sort_values("epoch")
    epoch = int(rows.resumed_from_epoch.dropna().iloc[0])
    assert 1 <= epoch < EPOCHS, rows[["epoch", "node", "resumed_from_epoch"]]
    after = rows[rows.epoch > epoch]
    assert (after.resumed_from_epoch == epoch).all() and lost not in set(after.node), after[["epoch", "node"]]
    assert set(rows[rows.epoch <= epoch].node) <= {lost}  # the rows the lost node computed are kept, not redone
    assert df[df.trial_id != victim].resumed_from_epoch.isna().all()  # the other trials never stopped
    measured(
        f"node lost: {lost} killed {ended_at - killed_at:.0f} s before the job ended; its trial resumed "
        f"from epoch {epoch} of {EPOCHS} on {after.node.iloc[0]}; job run time {info['RunTime']}"
    )

    slurm_cluster.start_node(lost)  # repaired: back in service for the next job
    assert slurm_cluster.node_states()[lost] == "idle"
