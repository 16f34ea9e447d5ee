"""``ablate submit`` as the SLURM system tests drive it: a tiny digits sweep, the submission (as a user
types it, in the job's environment), the job's log, its end, and what the results folder holds."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from helpers.slurm import SlurmCluster

TINY_SWEEP = """\
name: {name}
description: ablate submit --slurm system test
base:
  kind: ssl
  data: {{name: digits}}
  model: {{trunk: convnet}}
  train: {{epochs: {epochs}, steps_per_epoch: {steps}, device: cpu, threads: 1}}
  eval: {{every: {every}, probe_epochs: 2}}
grid:
  predictor.name: [{predictors}]
seeds: [0]
resources: {{cpu: 1}}
{extra}"""

# `ablate submit` as a user types it, in the job's environment
SUBMIT = "import sys; from ablate import cli; sys.exit(cli.main(['submit', *sys.argv[1:]]))"


def write_sweep(
    folder: Path,
    name: str,
    epochs: int = 1,
    steps: int = 2,
    every: int = 1,
    predictors: str = "linear, none",
    extra: str = "",
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        TINY_SWEEP.format(name=name, epochs=epochs, steps=steps, every=every, predictors=predictors, extra=extra)
    )
    return path


def submit_process(
    cluster: SlurmCluster, folder: Path, sweep: Path, *extra: str, nodes: int = 1, storage: str | None = None
) -> subprocess.CompletedProcess:
    """``ablate submit SWEEP --nodes N --cpus-per-task <node CPUs> ...`` run in ``folder``."""
    argv = [str(sweep), "--slurm", "--nodes", str(nodes), "--cpus-per-task", str(min(2, cluster.cpus))]
    argv += ["--time", "0:15:00", "--storage", storage or str(folder / "results"), *extra]
    return subprocess.run(
        [sys.executable, "-c", SUBMIT, *argv],
        cwd=folder,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def submit(cluster: SlurmCluster, folder: Path, sweep: Path, *extra: str, **kw) -> str:
    """:func:`submit_process`, which must succeed; the job id it printed."""
    proc = submit_process(cluster, folder, sweep, *extra, **kw)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"SLURM job (\d+)", proc.stdout)
    assert m, proc.stdout
    return m.group(1)


def job_log(folder: Path, name: str, job: str) -> str:
    path = folder / "results" / f"_{name}" / "slurm" / f"{job}.out"
    return path.read_text(errors="replace") if path.exists() else f"(no log at {path})"


def expected_trial_ids(sweep: Path) -> set[str]:
    from ablate.sweep.load import read_sweep

    return {t.trial_id for t in read_sweep(sweep).trials}


def parquet_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def ray_processes_of(job: str) -> list[str]:
    """Command lines of processes still using one of this job's Ray folders (/tmp/ray-<job>-<k>)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"/tmp/ray-{job}-" in text:
            found.append(text[:200])
    return found


def assert_completed(cluster: SlurmCluster, folder: Path, name: str, job: str, timeout: float = 300) -> dict:
    """Wait for the job; it must have COMPLETED with exit code 0. Its ``scontrol show job`` fields."""
    info = cluster.wait_job(job, timeout=timeout)
    assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", (
        f"job {job}: {info.get('JobState')} {info.get('ExitCode')}\n{job_log(folder, name, job)}\n{cluster.logs()}"
    )
    return info


def phases(log: str) -> str:
    """How long the job's first run took to start Ray and to run ``ablate run``, from the log's
    timestamps: ``"Ray up in A s, ablate run B s"``."""
    stamps = {}
    for key, pattern in (("start", r"Ray head on"), ("up", r"Ray is up|going on with|running ablate run"),
                         ("end", r"ablate run exited")):  # fmt: skip
        m = re.search(rf"\[ablate (\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d)\] [^\n]*?(?:{pattern})", log)
        stamps[key] = datetime.fromisoformat(m.group(1)) if m else None
    if None in stamps.values():
        return "(phases not in the log)"
    ray_s = (stamps["up"] - stamps["start"]).total_seconds()
    return f"Ray up in {ray_s:.0f} s, ablate run {(stamps['end'] - stamps['up']).total_seconds():.0f} s"
