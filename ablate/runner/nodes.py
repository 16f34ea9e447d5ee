"""How many nodes of a Ray cluster are alive, as its GCS counts them; used by ``ablate submit``'s job
script to wait until Ray is up on every node of the allocation:

    python -m ablate.runner.nodes wait HOST:PORT N SECONDS

prints the number of alive nodes once it reaches N (exit 0) or SECONDS have passed (exit 1). One
process polls the GCS twice a second: ``ray status`` would cost a Python start per poll and reports
nodes only once the autoscaler's monitor has seen them (seconds later). Ray's GCS client is the one
``ray status`` itself uses; where it cannot be used, this falls back to parsing ``ray status``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

POLL_S = 0.5


def gcs_counter(address: str) -> Callable[[], int]:
    """A function returning how many nodes the GCS at ``address`` counts alive (0 while it does not
    answer)."""
    try:
        from ray._raylet import GcsClient
        from ray.core.generated.gcs_pb2 import GcsNodeInfo

        client = GcsClient(address=address)
    except Exception:  # a private API of Ray: if it moved, ask the CLI
        return lambda: status_count(address)

    def count() -> int:
        try:
            infos = client.get_all_node_info(timeout=10)
        except Exception:  # not up yet, or busy: try again at the next poll
            return 0
        return sum(1 for info in infos.values() if info.state == GcsNodeInfo.ALIVE)

    return count


def status_count(address: str) -> int:
    """Alive nodes from ``ray status`` (the lines of its "Active:" block)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "status", f"--address={address}"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except subprocess.TimeoutExpired:
        return 0
    active = out.partition("Active:")[2].partition("Pending:")[0]
    return active.count("node_")


def wait(address: str, want: int, seconds: float) -> int:
    """Poll until ``want`` nodes are alive or ``seconds`` have passed; the last count."""
    count = gcs_counter(address)
    deadline = time.monotonic() + seconds
    while True:
        alive = count()
        if alive >= want or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL_S)


def _main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "wait" and argv[2].isdigit():
        try:
            seconds = float(argv[3])
        except ValueError:
            seconds = -1
        if seconds >= 0:
            alive = wait(argv[1], int(argv[2]), seconds)
            print(alive)
            return 0 if alive >= int(argv[2]) else 1
    print("usage: python -m ablate.runner.nodes wait HOST:PORT N SECONDS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
