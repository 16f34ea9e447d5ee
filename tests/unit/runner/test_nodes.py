"""``python -m ablate.runner.nodes wait``: how the job script waits for Ray on every node."""

from __future__ import annotations

import subprocess

import pytest

from ablate.runner import nodes


def test_wait_returns_once_enough_nodes_are_alive(monkeypatch):
    counts = iter([0, 1, 2, 3, 3])
    monkeypatch.setattr(nodes, "gcs_counter", lambda address: lambda: next(counts))
    monkeypatch.setattr(nodes, "POLL_S", 0)
    assert nodes.wait("10.0.0.1:6379", 3, 60) == 3
    assert next(counts) == 3  # it stopped polling at the first 3


def test_wait_gives_up_after_its_seconds_with_the_last_count(monkeypatch):
    monkeypatch.setattr(nodes, "gcs_counter", lambda address: lambda: 2)
    assert nodes.wait("10.0.0.1:6379", 3, 0) == 2


def test_the_command_line_prints_the_count_and_says_whether_it_was_reached(monkeypatch, capsys):
    monkeypatch.setattr(nodes, "wait", lambda address, want, seconds: 2)
    assert nodes._main(["wait", "h:1", "2", "5"]) == 0 and capsys.readouterr().out == "2\n"
    assert nodes._main(["wait", "h:1", "3", "5"]) == 1
    for argv in (["wait", "h:1", "x", "5"], ["wait", "h:1", "3", "-1"], ["count", "h:1"]):
        assert nodes._main(argv) == 2 and "usage" in capsys.readouterr().err


@pytest.mark.parametrize(
    "out,count",
    [
        ("Node status\nActive:\n 1 node_a\n 1 node_b\nPending:\n (no pending nodes)\n", 2),
        ("", 0),
    ],
)
def test_the_fallback_reads_the_active_block_of_ray_status(monkeypatch, out, count):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, out, ""))
    assert nodes.status_count("h:1") == count
