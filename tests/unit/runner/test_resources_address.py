"""Where a sweep would run, checked before Ray starts: ``--address`` (its form, and whether a Ray
cluster answers there, in seconds: no hang) and, for a local run, whether this machine can hold
one trial. Real sockets on 127.0.0.1; no Ray is started."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.runner.address import FORMS, PREFACE, Address, check_address, parse_address, probe
from ablate.runner.resources import check_local
from ablate.sweep.load import read_sweep

SWEEP = """\
name: tiny
base: {train: {epochs: 1, device: cpu}}
seeds: [0]
resources: {cpu: 1}
"""


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: bound, read, closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def listener(answer: bytes | None) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads what a client sends and replies ``answer`` (None: never
    replies, the connection stays open). Yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if answer is not None:
                conn.recv(len(PREFACE))
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SWEEP)
    return path


# ---------------------------------------------------------------- the form
@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.1:6379", Address("10.0.0.1", 6379)),
        ("head-node.cluster:6380", Address("head-node.cluster", 6380)),
        ("ray://10.0.0.1:10001", Address("10.0.0.1", 10001, client=True)),
        ("[::1]:6379", Address("::1", 6379)),
    ],
)
def test_the_accepted_forms_parse(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize(
    "text", ["10.0.0.1", "10.0.0.1:", "host:port", "host:0", "host:99999", "http://h:80", ":6379", "u@h:1", "h:1/x"]
)
def test_any_other_form_is_one_line_naming_the_accepted_ones(text):
    with pytest.raises(UserError, match=r"^--address .*: expected auto, HOST:PORT") as e:
        parse_address(text)
    assert str(e.value) == f"--address {text}: expected {FORMS}"


def test_an_address_without_a_port_is_refused_by_the_cli(sweep_file, capsys):
    assert main(["check", str(sweep_file), "--address", "10.0.0.1"]) == 2
    assert capsys.readouterr().err == f"ablate: error: --address 10.0.0.1: expected {FORMS}\n"


# ---------------------------------------------------------------- the probe
def test_a_closed_port_is_refused_in_one_line_before_anything_is_made(sweep_file, capsys):
    port, res = closed_port(), sweep_file.parent / "res"
    for argv in (["check", "--no-data"], ["run", "--storage", str(res)]):
        assert main([argv[0], str(sweep_file), *argv[1:], "--address", f"127.0.0.1:{port}"]) == 2
        assert capsys.readouterr().err == (
            f"ablate: error: --address 127.0.0.1:{port}: nothing answers there (connection refused); "
            "start the cluster (ray start --head) or fix the address\n"
        )
    assert not res.exists()  # no results folder, no lock


def test_ray_client_addresses_are_probed_too():
    port = closed_port()
    with pytest.raises(UserError, match=rf"^--address ray://127.0.0.1:{port}: nothing answers there"):
        check_address(f"ray://127.0.0.1:{port}")


def test_a_port_that_listens_but_never_answers_is_refused_within_the_timeout():
    with listener(None) as port:
        with pytest.raises(UserError, match=r"something listens there but it is not a Ray cluster \(no answer"):
            check_address(f"127.0.0.1:{port}", timeout=0.3)


def test_a_port_that_answers_something_else_than_grpc_is_refused():
    with listener(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        with pytest.raises(UserError, match=r"not a Ray cluster \(an answer that is not gRPC \(b'HTTP/1.1'\)"):
            check_address(f"127.0.0.1:{port}", timeout=2)


def test_a_grpc_server_passes_the_probe():
    """What a Ray GCS answers to the HTTP/2 preface: a SETTINGS frame (type 4) first."""
    settings = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0]) + bytes([0, 3, 0, 0, 0, 100])  # MAX_CONCURRENT_STREAMS 100
    with listener(settings) as port:
        assert probe(Address("127.0.0.1", port), timeout=2) is None
        check_address(f"127.0.0.1:{port}", timeout=2)


def test_auto_is_resolved_as_ray_resolves_it_then_probed(monkeypatch):
    port = closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(UserError, match=rf"^--address auto \(= 127.0.0.1:{port}\): nothing answers there"):
        check_address("auto")


# ---------------------------------------------------------------- resources of a local run
def test_a_trial_bigger_than_this_machine_is_refused_by_check(sweep_file, capsys):
    cpus = os.cpu_count() or 1
    assert main(["check", str(sweep_file), "--set", f"resources.cpu={cpus + 1}"]) == 2
    assert capsys.readouterr().err == (
        f"ablate: error: resources per trial {{'CPU': {float(cpus + 1)}}} fit on no node of the local Ray on this "
        f"machine (CPU {cpus}, GPU 0); lower resources.cpu / resources.gpu in the sweep file or run it on a "
        "cluster (--address)\n"
    )


def test_a_gpu_trial_is_refused_without_a_gpu_and_fits_with_one(sweep_file, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert main(["check", str(sweep_file), "--set", "resources.gpu=1"]) == 2
    assert "{'CPU': 1.0, 'GPU': 1.0} fit on no node of the local Ray on this machine (CPU" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_local(read_sweep(sweep_file, {"resources.gpu": 1}))


def test_data_parallel_workers_must_fit_together_on_this_machine(sweep_file):
    cpus = os.cpu_count() or 1
    check_local(read_sweep(sweep_file, {"resources": {"cpu": cpus, "workers": cpus}, "train.batch_size": 2 * cpus}))
    with pytest.raises(UserError, match=rf"{cpus + 1} data-parallel workers of \{{'CPU': 1.0\}} each fit on no node"):
        check_local(
            read_sweep(
                sweep_file, {"resources": {"cpu": cpus + 1, "workers": cpus + 1}, "train.batch_size": 2 * (cpus + 1)}
            )
        )


def test_no_data_checks_a_sweep_for_another_machine(sweep_file, monkeypatch):
    """--no-data: the sweep is checked on a laptop for a cluster; this machine's size is not its limit."""
    import ablate.api

    monkeypatch.setattr("ablate.train.memory.memory_line", lambda sweep: "")
    assert "trials       1" in ablate.api.check(sweep_file, {"resources.cpu": 4096}, validate_paths=False)


def test_check_with_an_address_says_this_machine_was_not_checked(sweep_file, monkeypatch):
    import ablate.api

    monkeypatch.setattr("ablate.runner.address.check_address", lambda address: None)
    monkeypatch.setattr("ablate.runner.resources.check_cluster", lambda sweep, address, folder: None)
    monkeypatch.setattr("ablate.train.memory.memory_line", lambda sweep: "")
    text = ablate.api.check(sweep_file, {"resources.cpu": 4096}, address="10.0.0.1:6379")
    assert text.endswith(
        "resources fit on the cluster at 10.0.0.1:6379 (this machine's own CPUs and GPUs were not checked)"
    )
