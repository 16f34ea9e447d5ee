"""A SLURM cluster of several nodes on this one machine: each node a Linux network namespace with its
own address on a private bridge, its own hostname (a UTS namespace), an /etc/hosts naming every node
(a mount namespace) and its own ``slurmd -N <node>`` with its own spool, pid and log file; one
``slurmctld`` and one ``munged`` (private socket, the machine's key) serve them from the machine
itself, which plays the login node.

The nodes share the machine's folders: that is the cluster's shared storage. /tmp is shared too
(on a real cluster each node has its own): the job script keeps each node's Ray files apart, and a
multi-node job's storage goes outside /tmp (:attr:`NodeCluster.shared`), as the storage rule asks.
Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range): a /24 that no interface or
route of the machine uses, the bridge at ``.1``, node k at ``.1k``. Traffic stays on the bridge.

Everything is named after the process that started it (``ablate-<pid>-...``) and removed again by
:meth:`NodeCluster.stop`; what a killed test session left behind is removed by the next one that
starts (its pid is gone). Needs root.

By hand (stays up until Ctrl-C, printing what to export)::

    sudo PYTHONPATH=tests .venv/bin/python -m helpers.netcluster [--nodes 3] [--cpus 1]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.slurm import COMMON_CONF, SBIN_PATH, SlurmCluster, free_port, install, start_munged, stop, tail, which

NET_PACKAGES = ("iproute2", "util-linux")
NET_BINARIES = ("ip", "unshare", "nsenter")
ROOT = Path(os.environ.get("ABLATE_TEST_CLUSTER_ROOT", "/var/lib/ablate-test-cluster"))
SLURMD_TIMEOUT_S = 30  # how long slurmctld waits before it marks a silent node DOWN


@dataclass
class Node:
    """One node: ``name`` is its hostname and SLURM NodeName."""

    name: str
    netns: str
    ip: str
    veth: str  # its link's end on the bridge
    slurmd: subprocess.Popen | None = None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([which("ip") or "ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_pids(netns: str) -> list[int]:
    out = _ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _pid_alive(pid: int) -> bool:
    """A process with this pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_netns(netns: str) -> None:
    """SIGKILL every process in ``netns`` (what a node losing power does), until none is left."""
    for _ in range(50):
        pids = netns_pids(netns)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _free_subnet() -> str:
    """``198.18.K`` for a K whose /24 no address or route of this machine touches."""
    used = _ip("-4", "-o", "addr").stdout + _ip("-4", "route").stdout
    start = random.randrange(256)
    for k in range(256):
        prefix = f"198.18.{(start + k) % 256}"
        if f"{prefix}." not in used:
            return prefix
    raise RuntimeError("no free /24 in 198.18.0.0/16 for the test cluster's bridge")


def remove_stale() -> None:
    """Remove what test clusters whose process is gone left behind: their namespaces (and every
    process in them), bridges, slurmctld and munged (by their pid files), and folders."""
    stale = {m.group(1) for line in _ip("netns", "list", check=False).stdout.splitlines()
             if (m := re.match(r"ablate-([0-9a-f]+)-", line))}  # fmt: skip
    stale |= {p.name for p in ROOT.glob("*") if re.fullmatch(r"[0-9a-f]+", p.name)} if ROOT.is_dir() else set()
    for ident in sorted(i for i in stale if not _pid_alive(int(i, 16))):
        for line in _ip("netns", "list", check=False).stdout.splitlines():
            if line.startswith(f"ablate-{ident}-"):
                netns = line.split()[0]
                _kill_netns(netns)
                _ip("netns", "del", netns, check=False)
        _ip("link", "del", f"abl{ident}br", check=False)
        for pid_file, daemon in (("slurmctld.pid", "slurmctld"), ("munge/munged.pid", "munged")):
            try:
                pid = int((ROOT / ident / pid_file).read_text().split()[0])
                if daemon.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(ROOT / ident, ignore_errors=True)


@dataclass
class NodeCluster(SlurmCluster):
    """A running multi-node test cluster (see the module docstring); ``nodes[0]`` is the first node."""

    ident: str = ""
    bridge: str = ""
    login_ip: str = ""  # the machine's address on the bridge (slurmctld, servers the nodes reach)
    nodes: list[Node] = field(default_factory=list)
    start_s: float = 0.0  # seconds it took to start

    @property
    def shared(self) -> Path:
        """The cluster's shared storage: a folder outside /tmp (which a real cluster's nodes each have of
        their own) at the same path on every node. Put the tests' work there."""
        return self.root / "shared"

    @property
    def hosts(self) -> Path:
        """The nodes' /etc/hosts: the machine and every node by name."""
        return self.root / "hosts"

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def by_name(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @classmethod
    def start(cls, n_nodes: int = 3, cpus: int = 1, memory_mb: int = 2000) -> NodeCluster:
        """Install what is missing, build the network and start munged, slurmctld and one slurmd per
        node; return once every node is idle (RuntimeError, everything stopped again, if not)."""
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise PermissionError("a multi-node test cluster needs root (network namespaces, slurmd)")
        reason = install() or install(NET_PACKAGES, NET_BINARIES)
        if reason:
            raise RuntimeError(reason)
        remove_stale()
        ident = f"{os.getpid():x}"
        root = ROOT / ident
        shutil.rmtree(root, ignore_errors=True)
        for sub in ("state", "shared", *(f"spool/node{k}" for k in range(1, n_nodes + 1))):
            (root / sub).mkdir(parents=True)
        root.chmod(0o755)
        prefix = _free_subnet()
        nodes = [
            Node(f"node{k}", f"ablate-{ident}-node{k}", f"{prefix}.{10 + k}", f"abl{ident}n{k}")
            for k in range(1, n_nodes + 1)
        ]
        login = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
        conf = root / "slurm.conf"
        env = {**os.environ, "SLURM_CONF": str(conf), "PATH": SBIN_PATH}
        cluster = cls(root, nodes[0].name, cpus, env, ident=ident, bridge=f"abl{ident}br", login_ip=f"{prefix}.1")
        cluster.nodes = nodes
        try:
            cluster._network(login)
            sock = root / "munge" / "munge.sock"
            cluster.procs.append(
                start_munged(
                    env,
                    root / "munge",
                    f"--socket={sock}",
                    f"--pid-file={root}/munge/munged.pid",
                    f"--seed-file={root}/munge/munged.seed",
                    f"--log-file={root}/munge/munged.log",
                    socket_path=str(sock),
                )
            )
            conf.write_text(cluster._conf(login, sock, memory_mb))
            cluster.procs.append(
                subprocess.Popen(
                    [which("slurmctld"), "-D"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            for node in nodes:
                cluster.start_node(node.name, wait=False)
            daemons = [*cluster.procs, *(n.slurmd for n in nodes)]
            cluster.wait_idle(cluster.names, alive=lambda: all(p.poll() is None for p in daemons))
        except BaseException:
            cluster.stop()
            raise
        cluster.start_s = time.monotonic() - t0
        return cluster

    def _network(self, login: str) -> None:
        """The bridge (with the machine's address), one veth link and namespace per node, hosts files."""
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.login_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        hosts = "127.0.0.1 localhost\n" + f"{self.login_ip} {login}\n"
        hosts += "".join(f"{n.ip} {n.name}\n" for n in self.nodes)
        for n in self.nodes:
            _ip("netns", "add", n.netns)
            _ip("link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns)
            _ip("link", "set", n.veth, "master", self.bridge, "up")
            _ip("-n", n.netns, "addr", "add", f"{n.ip}/24", "dev", "eth0")
            _ip("-n", n.netns, "link", "set", "eth0", "up")
            _ip("-n", n.netns, "link", "set", "lo", "up")
            self.hosts.write_text(hosts)

    def _conf(self, login: str, munge_socket: Path, memory_mb: int) -> str:
        # cred_expire is also how long a requeued job waits before it starts again (default 120 s)
        node_lines = "".join(
            f"NodeName={n.name} NodeAddr={n.ip} NodeHostname={n.name} CPUs={self.cpus} RealMemory={memory_mb} "
            "State=UNKNOWN\n"
            for n in self.nodes
        )
        return (
            f"ClusterName=ablatenodes\nSlurmctldHost={login}({self.login_ip})\n"
            f"SlurmctldPort={free_port()}\nSlurmdPort={free_port()}\n"
            f"AuthInfo=socket={munge_socket},cred_expire=10\n"
            "SlurmdParameters=config_overrides\n"  # CPUs= as written, not the machine's 2 cores per node
            f"SlurmdTimeout={SLURMD_TIMEOUT_S}\n"
            + COMMON_CONF.format(root=self.root)
            + f"SlurmdSpoolDir={self.root}/spool/%n\nSlurmdPidFile={self.root}/slurmd-%n.pid\n"
            f"SlurmdLogFile={self.root}/slurmd-%n.log\n"
            + node_lines
            + f"PartitionName=debug Nodes={','.join(self.names)} Default=YES MaxTime=INFINITE State=UP\n"
        )

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start (or restart, after :meth:`kill_node`) the node's slurmd in its namespaces: its network,
        its own hostname, and the cluster's hosts file mounted over /etc/hosts. (Not ``ip netns
        exec``, which mounts a fresh /sys without the cgroup folders slurmd needs.)"""
        node = self.by_name(name)
        script = 'hostname "$1" && mount --bind "$2" /etc/hosts && exec "$3" -D -N "$1"'
        node.slurmd = subprocess.Popen(
            [which("nsenter"), f"--net=/run/netns/{node.netns}", "--"]
            + [which("unshare"), "--uts", "--mount", "--propagation", "private"]
            + ["sh", "-c", script, "sh", name, str(self.hosts), which("slurmd")],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait:
            self.wait_idle([name], alive=lambda: node.slurmd.poll() is None)

    def kill_node(self, name: str) -> list[int]:
        """The node loses power: SIGKILL to every process in its namespace (its slurmd, the job steps,
        Ray and the trials on it). The pids it killed."""
        node = self.by_name(name)
        pids = netns_pids(node.netns)
        _kill_netns(node.netns)
        if node.slurmd is not None:
            node.slurmd.wait(10)
        return pids

    def stop(self) -> None:
        """Cancel what is left, stop every daemon and process of the cluster, remove its network,
        hosts files and folders."""
        if self.procs and self.procs[-1].poll() is None:
            self.cancel_all()
        for node in self.nodes:
            if node.slurmd is not None and node.slurmd.poll() is None:
                node.slurmd.terminate()  # slurmd ends its job steps
                try:
                    node.slurmd.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            _kill_netns(node.netns)  # whatever a step left
            if node.slurmd is not None and node.slurmd.poll() is None:
                node.slurmd.wait(5)
        for proc in reversed(self.procs):  # slurmctld, then munged
            stop(proc)
        for node in self.nodes:
            _ip("netns", "del", node.netns, check=False)
        _ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return f"{super().logs()}\n--- munged.log\n{tail(self.root / 'munge' / 'munged.log')}"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _main() -> int:
    parser = argparse.ArgumentParser(description="A multi-node SLURM test cluster on this machine, until Ctrl-C.")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs of each node")
    args = parser.parse_args()
    cluster = NodeCluster.start(args.nodes, args.cpus)
    try:
        print(f"{args.nodes} nodes up in {cluster.start_s:.1f} s:")
        for n in cluster.nodes:
            print(f"  {n.name}  {n.ip}  (netns {n.netns})")
        print(f"shared folder: {cluster.shared}\nexport SLURM_CONF={cluster.env['SLURM_CONF']}")
        print(f"a shell on a node: nsenter -t {cluster.nodes[0].slurmd.pid} -n -u -m bash")
        print("Ctrl-C stops the cluster.", flush=True)
        for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a shell's `&` starts us with it ignored
            signal.signal(sig, _interrupt)
        while all(p.poll() is None for p in cluster.procs):
            time.sleep(1)
        print("a cluster daemon exited; stopping", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(_main())
