"""The run lock on an object store, against moto's S3 server on the loopback (no Ray): a live lock
refuses naming holder, host and heartbeat age; a dead run's lock (its process gone from this host,
or its heartbeat older than the limit) is taken over with one line; the heartbeat keeps a long run's
lock live; a server that restarts mid-run pauses the heartbeat without losing the lock; a holder cut
off from the store for longer than the limit finds its lock taken over and is told so; runs that
start at the same moment: exactly one holds it; an older ablate's lock object is understood; a
results write that meets the server down is one line, and nothing written before is lost.

The limits are shortened (a heartbeat every 0.3 s, stale after 2 s) so that each case takes seconds."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pyarrow.fs as pafs
import pytest

import ablate.results.objectlock as objectlock
from ablate.config.trial import config_hash
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import Expect, ResultsStore, read_rows
from ablate.results.layout import SweepDir
from ablate.results.lock import lock_holder, run_lock
from ablate.results.remote import StoreError
from ablate.runner.recorder import storage_failure
from helpers.s3 import offline_aws

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'ablate[dev]')")
STALE_S = 2.0


class Server:
    """moto's S3 server on a fixed loopback port, which can be stopped and started again with its
    buckets and objects kept (they live in this process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._server = None
        self.start()

    def start(self) -> None:
        self._server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


class Cut:
    """A TCP forwarder to the server that one run's store goes through: cutting it closes every
    connection and refuses new ones (that run's store is unreachable, the others' is not)."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.1)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        offline_aws(mp, empty)
        s = Server()
        pafs.S3FileSystem(endpoint_override=s.endpoint, scheme="http", allow_bucket_creation=True).create_dir("bkt")
        yield s
        s.stop()


@pytest.fixture(autouse=True)
def short_limits(monkeypatch):
    monkeypatch.setattr(objectlock, "BEAT_S", 0.3)
    monkeypatch.setattr(objectlock, "STALE_S", STALE_S)


@pytest.fixture
def folder(server, request) -> SweepDir:
    """A sweep folder of its own per test."""
    return SweepDir.of(request.node.name[:40].replace("[", "-").strip("]"), via(server.endpoint))


def via(endpoint: str) -> str:
    return f"s3://bkt/locks?endpoint_override={endpoint}&scheme=http"


def lock_objects(server: Server, folder: SweepDir) -> list[str]:
    fs = pafs.S3FileSystem(endpoint_override=server.endpoint, scheme="http")
    infos = fs.get_file_info(pafs.FileSelector(folder.companion.path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.base_name.startswith("lock"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_lock_refuses_naming_holder_host_and_heartbeat_age(folder):
    first = run_lock(folder)
    assert first.acquire() is None
    try:
        time.sleep(1.0)  # more than a heartbeat: the age is the heartbeat's, not the start's
        with pytest.raises(UserError) as e:
            run_lock(folder).acquire()
        msg = str(e.value)
        assert "another `ablate run` of this sweep is running" in msg
        assert f"pid {os.getpid()} on {socket.gethostname()} since " in msg
        assert re.search(r" heartbeat [01] s ago\)", msg) and f"once that is {STALE_S:.0f} s old" in msg
        assert lock_holder(folder).startswith(f"pid {os.getpid()} on {socket.gethostname()} since ")
    finally:
        first.release()
    assert lock_holder(folder) is None
    again = run_lock(folder)
    assert again.acquire() is None
    again.release()


def test_the_lock_of_a_run_whose_process_is_gone_from_this_host_is_taken_over_at_once(server, folder):
    """The run was killed (SIGKILL, OOM) and left its lock object, heartbeat still fresh."""
    held = run_lock(folder)
    held.acquire()
    held._stop.set()  # the process "dies": no heartbeat, no release
    record = json.loads(held.mine.read_bytes())
    pid = dead_pid()
    held.mine.write_bytes(json.dumps({**record, "pid": pid}).encode())
    lock = run_lock(folder)
    said = lock.acquire()
    assert said == (
        f"took over the run lock of pid {pid} on {socket.gethostname()} since {record['since']}: "
        f"pid {pid} no longer runs on {socket.gethostname()}, so that run is gone"
    )
    assert lock_objects(server, folder) == [lock.mine.name]
    lock.release()
    assert lock_objects(server, folder) == []


def test_a_lock_whose_heartbeat_stopped_is_stale_after_the_limit_and_taken_over(server, folder):
    """A run on another node that died, or whose store stopped answering at its end (its release
    could not delete its object): nothing on this host can tell, so its heartbeat's age decides."""
    gone = run_lock(folder)
    gone.acquire()
    gone._stop.set()
    with pytest.raises(UserError, match=r"is running \(pid \d+ on .*heartbeat \d s ago\)"):
        run_lock(folder).acquire()  # within the limit: it may still be running
    time.sleep(STALE_S + 1.2)
    lock = run_lock(folder)
    said = lock.acquire()
    assert said.startswith(f"took over the run lock of pid {os.getpid()} on {socket.gethostname()}")
    assert f"s old, over the {STALE_S:.0f} s limit, so that run is gone" in said
    assert lock_objects(server, folder) == [lock.mine.name]
    lock.release()


def test_the_heartbeat_keeps_a_long_run_live(folder):
    lock = run_lock(folder)
    lock.acquire()
    try:
        time.sleep(STALE_S + 1.5)
        with pytest.raises(UserError, match="another `ablate run` of this sweep is running"):
            run_lock(folder).acquire()
        assert lock.lost is None
    finally:
        lock.release()


def test_a_server_restart_mid_run_pauses_the_heartbeat_and_the_lock_holds(server, folder):
    lock = run_lock(folder)
    lock.acquire()
    try:
        server.stop()
        time.sleep(1.0)  # a few heartbeats fail: the store does not answer
        server.start()
        restarted = time.time()
        deadline = time.monotonic() + 10
        while json.loads(lock.mine.read_bytes())["beat"] < restarted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads(lock.mine.read_bytes())["beat"] >= restarted  # the heartbeat goes on
        with pytest.raises(UserError, match=r"is running \(pid \d+ .*heartbeat \d s ago"):
            run_lock(folder).acquire()
        assert lock.lost is None
    finally:
        lock.release()


def test_a_holder_cut_off_for_longer_than_the_limit_is_taken_over_and_told(server, folder):
    """Run A reaches the store through a link that is cut (a partition; its store's restart as it
    sees it); run B, which still reaches it, takes the stale lock over; when A's link is back its
    heartbeat finds its object gone and tells A's run to stop instead of writing on beside B."""
    link = Cut(server.port)
    a = run_lock(SweepDir.of(folder.name, via(f"127.0.0.1:{link.port}")))
    a.acquire()
    told: list[UserError] = []
    a.watch(told.append)
    link.cut()
    time.sleep(STALE_S + 1.2)
    b = run_lock(folder)
    assert "over the 2 s limit, so that run is gone" in b.acquire()
    try:
        link.restore()
        deadline = time.monotonic() + 10
        while not told and time.monotonic() < deadline:
            time.sleep(0.1)
        assert told and told[0] is a.lost
        assert "this run lost its lock (its object lock." in str(a.lost) and "it stops" in str(a.lost)
        assert lock_holder(folder).startswith(f"pid {os.getpid()} ")  # B still holds it
        assert lock_objects(server, folder) == [b.mine.name]
    finally:
        a.release()
        b.release()
        link.cut()


def race(locks: list) -> list[str]:
    """Every lock's acquire at the same moment, each in its thread: what each got."""
    outcome: list[str] = []
    start = threading.Barrier(len(locks))

    def take(lock) -> None:
        start.wait()
        try:
            lock.acquire()
            outcome.append("holds")
        except UserError as e:
            outcome.append("refused" if "another `ablate run`" in str(e) else str(e))

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcome)


@pytest.mark.parametrize("runs", [2, 5])
def test_runs_started_at_the_same_moment_exactly_one_holds(folder, runs):
    for _ in range(3):
        locks = [run_lock(folder) for _ in range(runs)]
        assert race(locks) == ["holds"] + ["refused"] * (runs - 1)
        for lock in locks:
            lock.release()


def test_a_run_stopped_while_it_asks_for_the_lock_leaves_no_object_behind(server, folder, monkeypatch):
    """Ctrl-C (or a store that fails) between writing its asking object and deciding: the object
    goes, so the next run is not told that another one is starting."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real = objectlock.entries
    monkeypatch.setattr(objectlock, "entries", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_lock(folder).acquire()
    assert lock_objects(server, folder) == []
    monkeypatch.setattr(objectlock, "entries", real)
    lock = run_lock(folder)
    assert lock.acquire() is None
    lock.release()


def test_an_older_ablates_lock_object_is_understood(server, folder):
    """The one ``_<sweep>/lock`` object of ablate before heartbeats, never rewritten: live while it is
    young, a dead run's once older than the limit."""
    fs = pafs.S3FileSystem(endpoint_override=server.endpoint, scheme="http")
    with fs.open_output_stream(f"{folder.companion.path}/lock") as f:
        f.write(b"pid 4242 on elsewhere since 2026-01-01T00:00:00\nabc")
    with pytest.raises(UserError, match=r"is running \(pid 4242 on elsewhere since 2026-01-01T00:00:00, heartbeat"):
        run_lock(folder).acquire()
    time.sleep(STALE_S + 1.2)
    lock = run_lock(folder)
    assert lock.acquire().startswith("took over the run lock of pid 4242 on elsewhere since 2026-01-01T00:00:00")
    lock.release()
    assert lock_objects(server, folder) == []


def test_a_results_write_while_the_server_is_down_is_one_line_and_the_run_resumes(server, folder):
    """The server restarts mid-run: the write that meets it down stops the run with the store's one
    line (what the driver prints); the rows written before are whole, and writing resumes after."""
    store = ResultsStore(folder, Expect("s", SSL.schema))
    store.add(row(0))
    server.stop()
    try:
        with pytest.raises(StoreError) as e:
            store.add(row(1))
        line = str(storage_failure(folder.display(), folder.trial_file("abc"), e.value))
        assert line.startswith(f"storage {folder.trial_file(config_hash(load_trial_config({'seed': 1})))}: ")
        assert "cannot reach it (" in line and "check the endpoint" in line and "\n" not in line
        assert line.endswith("(while writing abc.parquet; finished trials are kept; the run resumes)")
    finally:
        server.start()
    assert read_rows(folder.loc).seed.tolist() == [0]
    ResultsStore(folder, Expect("s", SSL.schema)).add(row(1))
    assert sorted(read_rows(folder.loc).seed) == [0, 1]


def row(seed: int) -> dict:
    cfg = load_trial_config({"seed": seed})
    return {**SSL.columns(cfg, "cpu"), "sweep": "s", "epoch": 1, "is_final": True, "status": "ok"}
