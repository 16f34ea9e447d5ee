"""What every test SLURM needs, whatever its shape: Debian's packages (installed with apt-get when
missing), munge, and a handle that runs the SLURM clients against the cluster's own ``slurm.conf``.

The single-node cluster (tests/system/conftest.py) and the multi-node one (:mod:`helpers.netcluster`)
are built from these parts. Everything here needs root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "munged", "munge", "unmunge")
ENDED = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)


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


def install(packages: tuple[str, ...] = PACKAGES, binaries: tuple[str, ...] = BINARIES) -> str | None:
    """apt-get ``packages`` if one of ``binaries`` is missing; the reason it could not, or None."""
    if all(which(b) for b in binaries):
        return None
    if not which("apt-get"):
        return f"{' '.join(packages)} are not installed and there is no apt-get to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    missing = [b for b in binaries if not which(b)]
    return f"installed {' '.join(packages)} but {missing} are still missing" if missing else None


def munge_ok(env: dict[str, str], socket_path: str | None = None) -> bool:
    """Does a munged answer (on ``socket_path``, else the default socket)?"""
    where = [f"--socket={socket_path}"] if socket_path else []
    try:
        cred = subprocess.run([which("munge") or "munge", "-n", *where], env=env, capture_output=True, timeout=10)
        back = subprocess.run(
            [which("unmunge") or "unmunge", *where], input=cred.stdout, env=env, capture_output=True, timeout=10
        )
        return cred.returncode == 0 and back.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def munge_key() -> Path:
    """/etc/munge/munge.key, created (munge:munge, 0400) when the package did not make one."""
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
    return key


def start_munged(env: dict[str, str], run_dir: Path, *extra: str, socket_path: str | None = None) -> subprocess.Popen:
    """munged in the foreground as the munge user with its files in ``run_dir`` (owned by munge, as
    munged insists); raises RuntimeError when it does not answer within 10 s."""
    munge_key()
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    run_dir.chmod(0o755)
    proc = subprocess.Popen(
        [which("munged"), "--foreground", *extra],
        user="munge",
        group="munge",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(50):
        if munge_ok(env, socket_path):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop(proc)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    raise RuntimeError(f"munged did not start: {err.strip()}")


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def memory_mb() -> int:
    """MemTotal minus 10% (a node that reports less than its RealMemory is drained)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    return 1024


COMMON_CONF = """\
AuthType=auth/munge
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
SlurmctldPidFile={root}/slurmctld.pid
SlurmctldLogFile={root}/slurmctld.log
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.txt
"""


@dataclass
class SlurmCluster:
    """Handle on a running test cluster: ``env`` is os.environ + SLURM_CONF (+ /usr/sbin on PATH),
    to pass to every subprocess that talks to it."""

    root: Path  # conf, state, spool and logs
    node: str  # the (first) node's name
    cpus: int  # CPUs of one node
    env: dict[str, str]
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
            if info.get("JobState") in ENDED:
                return info
            time.sleep(1)
        self.run("scancel", job, check=False)
        raise AssertionError(f"SLURM job {job} did not finish in {timeout:.0f} s: {self.job_info(job)}")

    def node_states(self) -> dict[str, str]:
        """node name -> its state as sinfo prints it (idle, alloc, down*, ...)."""
        out = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def wait_idle(self, nodes: list[str], timeout: float = 60, alive=lambda: True) -> None:
        """Until every node in ``nodes`` is idle; RuntimeError with the logs if not in time."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline and alive():
            states = self.node_states()
            if all(states.get(n) == "idle" for n in nodes):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test SLURM nodes did not become idle ({states}); logs:\n{self.logs()}")

    def cancel_all(self) -> None:
        """Cancel every job left (a failed test's) and wait until the queue is empty (60 s at most)."""
        try:
            queued = self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
            if queued:
                self.run("scancel", *queued, check=False)
                for _ in range(60):
                    if not self.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
                        break
                    time.sleep(1)
        except subprocess.TimeoutExpired:
            pass

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{tail(p)}" for p in sorted(self.root.glob("*.log")))
