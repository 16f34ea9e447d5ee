"""A node lost mid-sweep, then the time limit, on the real 3-node SLURM cluster (conftest.py).

Every process of a worker node (its slurmd, its Ray worker step, the trial running there) is killed
at once, as a power cut would, and the node is marked DOWN, as slurmctld does once it misses its
pings. The job goes on (``--no-kill``: SLURM drops the node from the job instead of ending it), and
Ray retries the lost trial (``max_failures``) on a node that is left, from its last checkpoint in the
shared storage. Then SLURM's time-limit warning arrives (USR1 to the batch shell): the sweep stops,
the job requeues itself, the repaired node (its slurmd started again) returns to service, and the
requeued run on 3 nodes again finishes the sweep. At the end every trial has exactly one final row,
every evaluated epoch exactly one row, and every file in the results reads.
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ablate.results.layout import SweepDir
from helpers.jobs import expected_trial_ids, job_log, submit, write_sweep
from helpers.slurm import ENDED

pytestmark = pytest.mark.system

EPOCHS, EVERY = 12, 2


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


def wait_for_resume(cluster, folder, name: str, job: str, victim: str) -> None:
    """Until a row of ``victim`` computed after a resume is in the results (the job still running)."""
    results = folder / "results" / name
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert cluster.job_info(job).get("JobState") not in ENDED, job_log(folder, name, job)
        for _ in range(20):  # the file may be replaced while it is read
            try:
                rows = pq.read_table(results / f"{victim}.parquet", columns=["resumed_from_epoch"]).to_pandas()
                break
            except OSError:
                rows = pd.DataFrame({"resumed_from_epoch": []})
                time.sleep(0.05)
        if rows.resumed_from_epoch.notna().any():
            return
        time.sleep(0.5)
    raise AssertionError(f"the lost trial {victim} did not resume:\n{job_log(folder, name, job)}")


def wait_requeued_run(cluster, folder, name: str, job: str) -> dict[str, str]:
    """Until the job's second run (restart 1) has ended; its ``scontrol show job`` fields."""
    deadline = time.monotonic() + 400
    while True:
        info = cluster.job_info(job)
        if info.get("JobState") in ENDED and info.get("Restarts") == "1":
            return info
        assert time.monotonic() < deadline, f"{info}\n{job_log(folder, name, job)}"
        time.sleep(1)


@pytest.mark.slow  # ~2-3 min: Ray takes ~15 s to declare a node dead, and the requeued job starts Ray again
def test_a_node_lost_mid_sweep_then_the_time_limit_requeues_the_job(slurm_cluster, shared_dir, measured):
    name = "slurm_lost"
    extra = "checkpoint: {every: 1, keep: 2}\nmax_failures: 2\n"
    sweep = write_sweep(
        shared_dir, name, epochs=EPOCHS, every=EVERY, predictors="linear, none, directpred", extra=extra
    )
    results = shared_dir / "results" / name
    job = submit(slurm_cluster, shared_dir, sweep, "--shared-storage-ok", "--max-requeues", "1", nodes=3)
    while not slurm_cluster.job_info(job).get("BatchHost"):
        time.sleep(0.5)
    head = slurm_cluster.job_info(job)["BatchHost"]
    victim, lost = wait_for_victim(slurm_cluster, shared_dir, name, job, head)
    killed_at = time.monotonic()
    assert slurm_cluster.kill_node(lost), f"nothing ran on {lost}"
    # what slurmctld does once the node misses its pings (SlurmdTimeout), done at once: a DOWN node ends
    # every job on it that was not submitted with --no-kill (this one would end as NODE_FAIL)
    slurm_cluster.run("scontrol", "update", f"NodeName={lost}", "State=DOWN", "Reason=power_cut_test")
    wait_for_resume(slurm_cluster, shared_dir, name, job, victim)
    resumed_after = time.monotonic() - killed_at
    assert (
        lost not in slurm_cluster.run("scontrol", "show", "hostnames", slurm_cluster.job_info(job)["NodeList"]).stdout
    )

    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)  # the time-limit warning
    slurm_cluster.start_node(lost)  # repaired: the requeued job asks for 3 nodes again
    info = wait_requeued_run(slurm_cluster, shared_dir, name, job)
    log = job_log(shared_dir, name, job)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{log}"
    first, _, second = log.partition("restart 1")
    assert "time limit in" in first and "requeueing job" in first, log
    assert "ablate run exited with code 130" in first, log  # SIGTERM reached ablate run, which stopped
    assert "Ray is up on 3 node(s)" in second and "ablate run exited with code 0" in second, log
    done_before = re.search(r"resuming: (\d) of 3 trials already done", second)
    assert done_before and re.search(
        rf"\b{3 - int(done_before.group(1))} trials? run, {done_before.group(1)} already done", second
    ), log

    df = pd.concat(pq.read_table(p).to_pandas() for p in sorted(results.glob("*.parquet")))  # each file reads
    assert sorted(p.name for p in results.iterdir()) == sorted(f"{t}.parquet" for t in expected_trial_ids(sweep))
    final = df[df.is_final]
    assert set(final.trial_id) == expected_trial_ids(sweep) and final.trial_id.is_unique, log
    assert (final.status == "ok").all(), final[["trial_id", "status", "error"]]
    for tid, rows in df.groupby("trial_id"):
        assert sorted(rows.epoch) == list(range(EVERY, EPOCHS + 1, EVERY)), (tid, list(rows.epoch))  # once each
    rows = df[df.trial_id == victim].sort_values("epoch")
    epoch = int(rows.resumed_from_epoch.min())  # the first resume: after the node was lost
    assert 1 <= epoch < EPOCHS, rows[["epoch", "node", "resumed_from_epoch"]]
    assert set(rows[rows.epoch <= epoch].node) <= {lost}  # the rows the lost node computed are kept, not redone
    moved = rows[rows.resumed_from_epoch == epoch]
    assert len(moved) and lost not in set(moved.node), rows[["epoch", "node", "resumed_from_epoch"]]
    assert rows[rows.epoch > epoch].resumed_from_epoch.is_monotonic_increasing  # a later resume: the requeue
    measured(
        f"node lost: {lost} killed at epoch <= {epoch}; its trial resumed from epoch {epoch} of {EPOCHS} on "
        f"{moved.node.iloc[0]} ({resumed_after:.0f} s after the kill); after the requeue it resumed from epoch "
        f"{int(rows.resumed_from_epoch.max())}; {int(done_before.group(1))} of 3 trials were done before the requeue"
    )
