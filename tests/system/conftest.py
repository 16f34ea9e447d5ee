"""A real single-node SLURM for the system tests: Debian's slurmctld + slurmd + munge, started as root.

The cluster is private to the test session: its slurm.conf, state, spool, logs and pid files live in
a temporary folder, it listens on free ports, and the clients find it through ``SLURM_CONF`` (pass
``cluster.env`` to every subprocess). An already configured SLURM on the machine is left alone.
munged is reused when one answers, else started (and stopped again) by the fixture.

Skips (with the reason) when not root or when the packages are missing and cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "munged", "munge", "unmunge")


def which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"({path} not written)"


@dataclass
class SlurmCluster:
    """Handle on the running test cluster."""

    root: Path  # conf, state, spool and logs
    node: str
    cpus: int
    env: dict[str, str]  # os.environ + SLURM_CONF (+ /usr/sbin on PATH)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def job_info(self, job: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (finished jobs stay listed for MinJobAge seconds)."""
        out = self.run("scontrol", "show", "job", "-o", job, check=False).stdout
        info: dict[str, str] = {}
        for word in out.split():
            key, sep, value = word.partition("=")
            if sep and key not in info:
                info[key] = value
        return info

    def wait_job(self, job: str, timeout: float = 300) -> dict[str, str]:
        """Poll until the job has ended; its final ``scontrol show job`` fields (JobState, ExitCode)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job_info(job)
            if info.get("JobState") in (
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "OUT_OF_MEMORY",
                "PREEMPTED",
                "BOOT_FAIL",
                "DEADLINE",
            ):
                return info
            time.sleep(2)
        self.run("scancel", job, check=False)
        raise AssertionError(f"SLURM job {job} did not finish in {timeout:.0f} s: {self.job_info(job)}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{tail(p)}" for p in sorted(self.root.glob("*.log")))


def _install() -> str | None:
    """apt-get the SLURM packages if a binary is missing; the reason to skip, or None."""
    if all(which(b) for b in BINARIES):
        return None
    if not which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it (" + " ".join(PACKAGES) + ")"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    missing = [b for b in BINARIES if not which(b)]
    return f"installed {' '.join(PACKAGES)} but {missing} are still missing" if missing else None


def _munge_ok(env: dict[str, str]) -> bool:
    try:
        cred = subprocess.run([which("munge") or "munge", "-n"], env=env, capture_output=True, timeout=10)
        back = subprocess.run(
            [which("unmunge") or "unmunge"], input=cred.stdout, env=env, capture_output=True, timeout=10
        )
        return cred.returncode == 0 and back.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_munge(env: dict[str, str]) -> subprocess.Popen | None:
    """Reuse a running munged, else create the key if missing and start one as the munge user."""
    if _munge_ok(env):
        return None
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        if which("mungekey"):
            subprocess.run([which("mungekey"), "--create", f"--keyfile={key}"], check=True, timeout=30)
        elif which("create-munge-key"):
            subprocess.run([which("create-munge-key"), "-f"], check=True, timeout=30)
        else:
            key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    proc = subprocess.Popen(
        [which("munged"), "--foreground"],
        user="munge",
        group="munge",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(50):
        if _munge_ok(env):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.terminate()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    pytest.fail(f"munged did not start: {err.strip()}")


def _slurm_conf(root: Path, node: str, cpus: int, memory_mb: int) -> str:
    # cred_expire is also how long a requeued job waits before it starts again (default 120 s)
    return f"""\
ClusterName=ablatetest
SlurmctldHost={node}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=600
KillWait=30
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.txt
NodeName={node} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _memory_mb() -> int:
    """RealMemory: MemTotal minus 10% (a node that reports less than RealMemory is drained)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    return 1024


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running single-node SLURM (started in seconds, stopped at the end of the session)."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM system tests start slurmctld, slurmd and munged and need root")
    reason = _install()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    cpus = os.cpu_count() or 1
    try:
        cpus = len(os.sched_getaffinity(0))  # what nproc prints
    except AttributeError:
        pass
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, node, cpus, _memory_mb()))
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": SBIN_PATH}
    cluster = SlurmCluster(root=root, node=node, cpus=cpus, env=env)
    munged = _start_munge(env)
    if munged is not None:
        cluster.procs.append(munged)
    try:
        for daemon in ("slurmctld", "slurmd"):
            cluster.procs.append(
                subprocess.Popen([which(daemon), "-D"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                break
            if any(p.poll() is not None for p in cluster.procs):
                break
            time.sleep(1)
        if state != "idle":
            pytest.fail(f"the test SLURM node did not become idle (state {state!r}); logs:\n{cluster.logs()}")
        yield cluster
    finally:
        try:  # cancel what is left (a failed test's job) so no job outlives the session
            queued = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
            if queued:
                cluster.run("scancel", *queued, check=False)
                for _ in range(60):
                    if not cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
                        break
                    time.sleep(1)
        except subprocess.TimeoutExpired:
            pass
        for proc in reversed(cluster.procs):  # slurmd, slurmctld, then munged if we started it
            _stop(proc)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for every in-process ``ablate run`` of the session (``ablate run`` reuses an initialised Ray)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
