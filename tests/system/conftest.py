"""The services the system tests start: a real SLURM cluster of 3 nodes on this machine, and one local Ray.

The cluster (:class:`helpers.netcluster.NodeCluster`) is Debian's slurmctld, slurmd and munge, with
node1..node3 (one CPU each) in network namespaces on a private bridge, with their own hostnames;
``cluster.shared`` is the folder all of them see. It is private to the test session (its own
slurm.conf, state, spool, logs, ports and munged socket; the clients find it through ``SLURM_CONF``:
pass ``cluster.env`` to every subprocess) and shared by every SLURM test of the session, single-node
jobs included. An already configured SLURM on the machine is left alone.

It skips (with the reason) when not root or when the packages are missing and cannot be installed;
in CI (CI=true) it must start, so there a reason to skip is a failure.
"""

from __future__ import annotations

import os
import re

import pytest

MEASURED: list[str] = []


@pytest.fixture
def measured():
    """``measured(line)`` records a figure a test measured; pytest prints them all in its summary."""
    return MEASURED.append


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured by the system tests")
        for line in MEASURED:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The running 3-node SLURM cluster (started in seconds, stopped at the end of the session)."""
    from helpers.netcluster import NodeCluster

    try:
        cluster = NodeCluster.start(3, cpus=1)
    except Exception as e:  # no root, no namespaces, no packages: say why
        reason = f"the 3-node test SLURM cluster did not start: {e}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (in CI the SLURM tests must run)")
        pytest.skip(reason)
    MEASURED.append(f"3-node SLURM cluster started in {cluster.start_s:.1f} s")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def shared_dir(slurm_cluster, request):
    """A fresh folder in the cluster's shared storage (outside /tmp, where a real cluster's nodes each
    have their own files). Removed with the cluster."""
    path = slurm_cluster.shared / re.sub(r"\W", "_", request.node.name)[:80]
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for every in-process ``ablate run`` of the session (``ablate run`` reuses an initialised Ray)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
