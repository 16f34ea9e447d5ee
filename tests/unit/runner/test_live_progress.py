"""The live progress of ``ablate run`` without Ray: the line (epochs, images/s, an ETA in epochs, the
terminal's width, one log line per change), heartbeats that write no row, a full disk that stops the
run with one line, ``_progress.json`` as ``ablate status`` reads it, the resume message, and the
watchdog that takes a local Ray down with a killed driver."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest

import ablate.runner.progress as progress_mod
import ablate.runner.trainable as trainable_mod
from ablate.analysis.status import render_status, trial_states
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.lock import RunLock
from ablate.runner import driver
from ablate.runner.progress import LiveFile, ProgressView
from ablate.runner.recorder import Recording, RunSummary, stopper
from ablate.runner.trainable import PROGRESS_KEY, ROW_KEY
from ablate.sweep.load import read_sweep
from helpers.sweeps import trial_rows
from helpers.sweeps import write_sweep as write_results
from helpers.tiny_sweeps import write_sweep


class Clock:
    """A stand-in for time.monotonic that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    return c


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def beat(epoch: int, epochs: int = 30, ips: float = 1234.4, resumed_from: int = 0) -> dict:
    return {"epoch": epoch, "epochs": epochs, "images_per_s": ips, "resumed_from": resumed_from}


def test_running_trials_show_their_epoch_and_images_per_s_from_heartbeats(clock):
    view = ProgressView(total=3, metric="probe_top1_best", stream=io.StringIO())
    view.start("a")
    view.heartbeat("a", beat(7))
    assert "1 running (epoch 7/30, 1,234 img/s)" in view.line()
    view.start("b")
    view.heartbeat("b", beat(2, ips=1000))
    assert "2 running (epochs 7/30 2/30, 2,234 img/s) | 1 pending" in view.line()
    # a row moves the epoch on too (a trial without heartbeats: data-parallel, theory)
    view.result({"trial_id": "b", "epoch": 5, "train.epochs": 30, "images_per_s": 900.0, "is_final": False})
    assert "epochs 7/30 5/30" in view.line()


def test_eta_counts_the_epochs_left_in_running_and_pending_trials(clock):
    view = ProgressView(total=3, metric="m", stream=io.StringIO())
    view.planned = {"a": 10, "b": 10, "c": 10}
    view.start("a")
    assert "ETA --" in view.line()  # nothing measured yet
    clock.now += 10
    view.heartbeat("a", beat(5, epochs=10))  # 5 epochs in 10 s: 0.5 epoch/s; 5 + 10 + 10 left
    assert "ETA 00:50" in view.line() and "00:10 elapsed" in view.line()
    # a trial that continues after a checkpoint counts only the epochs it trains in this run
    view.start("b")
    clock.now += 10
    view.heartbeat("b", beat(8, epochs=10, resumed_from=6))  # 5 + 2 epochs in 20 s; 5 + 2 + 10 left
    assert "ETA 00:48" in view.line()


def test_terminal_line_fits_the_width_redraws_in_place_and_the_clock_ticks(clock, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    out = Terminal()
    view = ProgressView(total=8, metric="probe_top1_best", skipped=2, stream=out)
    view.status.update({"x": "ok", "y": "ok"})
    view.best = 0.9778
    view.planned = {t: 30 for t in "abcdef"}
    for t in "ab":
        view.start(t)
    view.heartbeat("a", beat(13))
    view.heartbeat("b", beat(12, ips=1000.0))
    assert len(view.line()) > 100  # the whole line would wrap in 80 columns
    clock.now += 5  # no event, only time: the clock still moves on the terminal
    view.tick()
    text = out.getvalue()
    assert "\n" not in text  # redrawn in place, never a new line while it runs
    frames = [f.rstrip() for f in text.split("\r") if f.strip()]
    assert frames and all(len(f) < 80 for f in frames)
    assert "00:05" in frames[-1] and "13/30 12/30" in frames[-1]
    view.close()
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_log_prints_each_change_once_and_never_for_the_clock_alone(clock):
    out = io.StringIO()
    view = ProgressView(total=2, metric="m", stream=out, interval=10.0)
    view.planned = {"a": 3, "b": 3}
    view.start("a")  # a start or an end is printed at once
    view.heartbeat("a", beat(1, epochs=3))  # an epoch alone waits for the interval
    assert out.getvalue().count("\n") == 1
    clock.now += 11
    view.tick()  # the pending epoch, once the interval has passed
    clock.now += 11
    view.tick()  # the clock alone: nothing
    view.result({"trial_id": "a", "epoch": 3, "m": 0.5, "is_final": True, "status": "ok"})
    view.close()  # the final line was printed already: not again
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and len(set(lines)) == 3
    assert "1 running (epoch 1/3" in lines[1] and lines[-1].startswith("trials 1/2 | 0 running | 1 pending")


class FakeStore:
    """ResultsStore's surface the recording uses; ``full`` makes every write fail as a full disk does."""

    def __init__(self, tmp_path, full: bool = False) -> None:
        self.dir, self.full, self.written = SweepDir.at(tmp_path / "s"), full, []

    def add_many(self, rows):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += rows


def test_a_heartbeat_writes_no_row_and_a_full_disk_stops_the_run_with_one_line(tmp_path):
    import json

    view = ProgressView(total=2, metric="m", stream=io.StringIO())
    summary = RunSummary(tmp_path / "s", None, 2, 0, 0)
    trial = SimpleNamespace(trial_id="ray1", config={"trial": {"trial_id": "a"}})
    recording = Recording(FakeStore(tmp_path), view, summary)
    recording.start(trial)
    recording.result(trial, {PROGRESS_KEY: json.dumps(beat(4)), "m": float("nan"), "is_final": False})
    assert recording.store.written == [] and view.trials["a"].epoch == 4
    full = Recording(FakeStore(tmp_path, full=True), view, summary)
    row = {"trial_id": "a", "epoch": 5, "status": "ok", "is_final": False}
    full.result(trial, {ROW_KEY: json.dumps(row)})
    assert str(full.failure) == (
        f"{tmp_path / 's'}: no space left on device while writing a.parquet; free space and run again "
        "(finished trials are kept; the run resumes)"
    )
    assert stopper(full).stop_all() and not stopper(recording).stop_all()
    full.result(trial, {ROW_KEY: json.dumps(row)})  # once stopped, nothing more is recorded


def test_the_heartbeat_is_sent_at_once_then_at_most_once_a_second(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(trainable_mod.time, "monotonic", lambda: now[0])
    sent: list[dict] = []
    trial = SimpleNamespace(metrics=["probe_top1_best"])
    progress = trainable_mod.progress_reporter(trial, sent.append)
    progress(beat(1))
    now[0] = 0.5
    progress(beat(2))  # too soon: dropped
    now[0] = 1.2
    progress(beat(3))
    assert [s[PROGRESS_KEY] for s in sent] == [json_of(beat(1)), json_of(beat(3))]
    assert ROW_KEY not in sent[0] and sent[0]["is_final"] is False  # a heartbeat, never a row


def json_of(d: dict) -> str:
    import json

    return json.dumps(d)


def test_status_shows_running_trials_only_while_the_run_holds_its_lock(tmp_path):
    sweep = read_sweep(write_sweep(tmp_path, "live", "grid:\n  optim.lr: [0.01, 0.02, 0.03]\nseeds: [0]\n"))
    a, b, c = (t.trial_id for t in sweep.trials)
    folder = SweepDir.at(tmp_path / "res" / "live")
    df = write_results(folder.loc.local, [trial_rows(sweep.trials[0].config, "live", 0.9, finished=False)])
    lock = RunLock(folder.lock_file.local)
    lock.acquire()
    view = ProgressView(total=3, metric="probe_top1_best", stream=io.StringIO())
    view.planned = {a: 30, b: 30, c: 30}
    view.live = LiveFile(folder.progress_file)
    view.start(a)
    view.heartbeat(a, beat(7))
    view.live.publish(view.snapshot(), force=True)
    text = render_status(trial_states(sweep, df, folder), folder.display())
    assert "3 trials: 0 done, 1 running, 2 pending, 0 diverged, 0 failed, 0 interrupted, 0 missing" in text
    assert f"running     {a}  optim.lr=0.01 seed=0 (epoch 7/30, 1,234 img/s)" in text
    lock.release()  # the run has ended (or was killed): its file no longer says running
    text = render_status(trial_states(sweep, df, folder), folder.display())
    assert "0 done, 0 diverged, 0 failed, 1 interrupted, 2 missing" in text and "  running " not in text
    view.close()
    assert not folder.progress_file.exists()


def test_resume_says_how_many_trials_are_done_and_best_includes_them(tmp_path, monkeypatch):
    sweep = read_sweep(write_sweep(tmp_path, "again", "grid:\n  optim.lr: [0.01, 0.02, 0.03, 0.04]\nseeds: [0]\n"))
    folder = SweepDir.at(tmp_path / "res" / "again")
    done = [trial_rows(t.config, "again", acc) for t, acc in zip(sweep.trials[:2], (0.81, 0.86))]
    write_results(folder.loc.local, [*done, trial_rows(sweep.trials[2].config, "again", 0.99, finished=False)])
    seen = {}

    def no_ray(sweep, folder, todo, recording, trackers, opts, py_modules):  # everything but Ray
        seen["view"], seen["todo"] = recording.view, todo
        return False

    monkeypatch.setattr(driver, "_on_ray", no_ray)
    out = io.StringIO()
    driver.run_sweep(sweep, folder, stream=out)
    assert f"resuming: 2 of 4 trials already done in {folder.display()}; running 2" in out.getvalue()
    view = seen["view"]
    assert view.best == pytest.approx(0.86)  # the finished trials' best (not the interrupted one's)
    assert "best probe_top1_best 0.86" in view.line() and len(seen["todo"]) == 2


def test_a_full_disk_before_tune_runs_is_one_line_too(tmp_path, monkeypatch):
    sweep = read_sweep(write_sweep(tmp_path, "early", "seeds: [0]\n"))
    folder = SweepDir.at(tmp_path / "res" / "early")

    def full(sweep, folder):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder.sweep_file))

    monkeypatch.setattr(driver, "save_sweep", full)
    with pytest.raises(UserError) as e:
        driver.run_sweep(sweep, folder, stream=io.StringIO())
    assert str(e.value) == (
        f"{folder.display()}: no space left on device while writing {folder.sweep_file}; free space and run again "
        "(finished trials are kept; the run resumes)"
    )
    lock = driver.run_lock(folder)
    lock.acquire()  # the failed run released it
    lock.release()


WATCHED_DRIVER = """
import os, subprocess, sys, time
from ablate.runner.session import _descendants, watch_local_ray
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # stands in for Ray's agents
watch_local_ray(_descendants(os.getpid()))
print(child.pid, flush=True)
time.sleep(120)
"""


def test_the_watchdog_kills_the_local_ray_processes_when_the_driver_is_killed():
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("the watchdog needs /proc (Linux)")
    driver_proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WATCHED_DRIVER)], stdout=subprocess.PIPE, text=True
    )
    child = int(driver_proc.stdout.readline())
    try:
        os.kill(driver_proc.pid, signal.SIGKILL)  # kill -9: no finally, no atexit
        driver_proc.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _running(child):
            time.sleep(0.1)
        assert not _running(child)
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
