"""``ablate submit --slurm`` end to end on a real single-node SLURM (tests/system/conftest.py).

A tiny digits sweep (2 trials, 1 epoch of 2 steps) is submitted, runs on Ray started by the job,
and its Parquet results appear; a second submission resumes and runs nothing. A third test stops a
running job the way SLURM's time-limit warning does (USR1 to the batch shell) and checks that the
job requeues itself and finishes the sweep in its second run.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]

TINY_SWEEP = """\
name: {name}
description: ablate submit --slurm system test
base:
  kind: ssl
  data: {{name: digits}}
  model: {{trunk: convnet}}
  train: {{epochs: {epochs}, steps_per_epoch: {steps}, device: cpu, threads: 1}}
  eval: {{every: 1, probe_epochs: 2}}
grid:
  predictor.name: [linear, none]
seeds: [0]
resources: {{cpu: 1}}
"""

# `ablate submit` as a user types it, in the job's environment
SUBMIT = "import sys; from ablate import cli; sys.exit(cli.main(['submit', *sys.argv[1:]]))"


@pytest.fixture
def ray_tmp_cleanup():
    """Remove the Ray temp dirs (/tmp/ray-<job>) of the jobs a test ran; the script leaves them for debugging."""
    jobs: list[str] = []
    yield jobs
    for job in jobs:
        shutil.rmtree(f"/tmp/ray-{job}", ignore_errors=True)


def write_sweep(tmp_path: Path, name: str, epochs: int = 1, steps: int = 2) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_SWEEP.format(name=name, epochs=epochs, steps=steps))
    return path


def submit(cluster, tmp_path: Path, sweep: Path, *extra: str) -> str:
    """Run ``ablate submit --slurm`` in ``tmp_path``; the job id it printed."""
    cpus = str(min(2, cluster.cpus))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SUBMIT,
            str(sweep),
            "--slurm",
            "--nodes",
            "1",
            "--cpus-per-task",
            cpus,
            "--time",
            "0:15:00",
            "--storage",
            str(tmp_path / "results"),
            *extra,
        ],
        cwd=tmp_path,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"SLURM job (\d+)", proc.stdout)
    assert m, proc.stdout
    return m.group(1)


def job_log(tmp_path: Path, name: str, job: str) -> str:
    path = tmp_path / "results" / f"_{name}" / "slurm" / f"{job}.out"
    return path.read_text(errors="replace") if path.exists() else f"(no log at {path})"


def expected_trial_ids(sweep: Path) -> set[str]:
    from ablate.sweep.load import read_sweep

    return {t.trial_id for t in read_sweep(sweep).trials}


def parquet_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def ray_processes_of(job: str) -> list[str]:
    """Command lines of processes still using this job's Ray temp dir (/tmp/ray-<job>)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"/tmp/ray-{job}" in text:
            found.append(text[:200])
    return found


def assert_completed(cluster, tmp_path: Path, name: str, job: str) -> dict[str, str]:
    info = cluster.wait_job(job, timeout=300)
    assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", (
        f"job {job}: {info.get('JobState')} {info.get('ExitCode')}\n{job_log(tmp_path, name, job)}"
    )
    return info


def test_submit_runs_sweep_then_resubmit_resumes(slurm_cluster, tmp_path, ray_tmp_cleanup):
    name = "slurm_e2e"
    sweep = write_sweep(tmp_path, name)
    results = tmp_path / "results" / name

    job = submit(slurm_cluster, tmp_path, sweep)
    ray_tmp_cleanup.append(job)
    assert_completed(slurm_cluster, tmp_path, name, job)
    log = job_log(tmp_path, name, job)
    assert (results.parent / f"_{name}" / "slurm" / f"{job}.sbatch").is_file()
    df = pd.read_parquet(results)
    final = df[df["is_final"]]
    assert set(final["trial_id"]) == expected_trial_ids(sweep), log
    assert (final["status"] == "ok").all(), final[["trial_id", "status", "error"]]
    assert "stopping Ray" in log, log
    assert not ray_processes_of(job), "Ray outlived its job"
    before = parquet_digest(results)

    job2 = submit(slurm_cluster, tmp_path, sweep)
    ray_tmp_cleanup.append(job2)
    assert job2 != job
    assert_completed(slurm_cluster, tmp_path, name, job2)
    log2 = job_log(tmp_path, name, job2)
    assert "nothing to run" in log2, log2
    assert parquet_digest(results) == before  # the resumed job rewrote nothing


@pytest.mark.slow  # ~80 s: two trials, and SLURM holds the requeued job back for cred_expire (10 s here)
def test_time_limit_warning_stops_and_requeues(slurm_cluster, tmp_path, ray_tmp_cleanup):
    """USR1 to the batch shell (what --signal=B:USR1@grace sends before --time runs out) stops
    ablate run, keeps what finished, requeues the job, and the requeued run finishes the sweep."""
    name = "slurm_requeue"
    sweep = write_sweep(tmp_path, name, epochs=8)  # ~20 s per trial on 2 cores: time to signal the second
    results = tmp_path / "results" / name
    job = submit(slurm_cluster, tmp_path, sweep, "--max-requeues", "1", "--max-concurrent", "1")
    ray_tmp_cleanup.append(job)

    deadline = time.monotonic() + 300
    while "trials 1/2" not in job_log(tmp_path, name, job):  # the first trial is done, the second running
        assert time.monotonic() < deadline, job_log(tmp_path, name, job)
        assert slurm_cluster.job_info(job).get("JobState") in ("PENDING", "RUNNING", "CONFIGURING"), job_log(
            tmp_path, name, job
        )
        time.sleep(1)
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)

    deadline = time.monotonic() + 360
    while True:  # the requeued run (restart 1) must finish the sweep
        info = slurm_cluster.job_info(job)
        if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") and info.get("Restarts") == "1":
            break
        assert time.monotonic() < deadline, f"{info}\n{job_log(tmp_path, name, job)}"
        time.sleep(2)
    log = job_log(tmp_path, name, job)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{log}"
    first, _, second = log.partition("restart 1")
    assert "time limit in" in first and "requeueing job" in first, log
    assert "ablate run exited with code 130" in first, log  # SIGTERM reached ablate run, which stopped
    final = pd.read_parquet(results).query("is_final")
    assert set(final["trial_id"]) == expected_trial_ids(sweep), log
    assert re.search(r"\b1 trials? run, 1 already done", second), log  # the requeued run resumed
    assert "ablate run exited with code 0" in second, log
