"""The run lock on a local disk is ablate's own file: a symbolic link there is refused and its target
left whole (never truncated through the link), a folder, a FIFO or a file with other names (hard
links) is one line, and so is a companion folder that is a file; ``ablate status`` reads none of
them as a holder."""

from __future__ import annotations

import os

import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.lock import RunLock, lock_holder
from helpers.tiny_sweeps import write_sweep


@pytest.fixture
def folder(tmp_path) -> SweepDir:
    folder = SweepDir.at(tmp_path / "res" / "s")
    folder.companion.local.mkdir(parents=True)
    return folder


def test_a_symlink_at_the_lock_path_is_refused_and_its_target_kept(folder, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("a week of notes")
    folder.lock_file.local.symlink_to(target)
    with pytest.raises(UserError, match=r"/_s/lock: is a symbolic link, where the run lock goes .*rm .*/_s/lock"):
        RunLock(folder.lock_file.local).acquire()
    assert target.read_text() == "a week of notes"
    assert lock_holder(folder) is None


def test_a_dangling_symlink_is_refused_and_nothing_is_created_through_it(folder, tmp_path):
    folder.lock_file.local.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="is a symbolic link"):
        RunLock(folder.lock_file.local).acquire()
    assert not (tmp_path / "elsewhere").exists()


def test_a_hard_linked_lock_file_is_refused_and_its_other_name_kept(folder, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("keep me")
    os.link(other, folder.lock_file.local)
    with pytest.raises(UserError, match=r"has 1 other name\(s\) \(hard links\).*rm "):
        RunLock(folder.lock_file.local).acquire()
    assert other.read_text() == "keep me"


def test_a_fifo_at_the_lock_path_is_refused_without_blocking(folder):
    os.mkfifo(folder.lock_file.local)
    with pytest.raises(UserError, match=r"is not a regular file \(a FIFO, socket or device\?\)"):
        RunLock(folder.lock_file.local).acquire()
    assert lock_holder(folder) is None


@pytest.mark.parametrize("case", ["folder at the lock path", "file at the companion path"])
def test_a_folder_or_file_in_the_way_of_the_lock_is_one_line_from_run(case, tmp_path, capsys):
    sweep = write_sweep(tmp_path, "s", "seeds: [0]\n")
    res = tmp_path / "res"
    (res / "s").mkdir(parents=True)
    if case == "folder at the lock path":
        (res / "_s" / "lock").mkdir(parents=True)
        said = f"{res}/_s/lock: is a folder, where the run lock file goes; move it away"
    else:
        (res / "_s").write_text("not a folder")
        said = f"{res}/_s: is not a folder, where the sweep's companion folder goes; move it away"
    assert main(["run", str(sweep), "--storage", str(res)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"ablate: error: {said} and run again"]
    assert not list((res / "s").iterdir())  # nothing ran
    assert lock_holder(SweepDir.at(res / "s")) is None


def test_a_plain_lock_file_left_by_an_earlier_run_is_reused(folder):
    folder.lock_file.local.write_text("pid 1 on somewhere since 2026-01-01T00:00:00")
    lock = RunLock(folder.lock_file.local)
    assert lock.acquire() is None
    try:
        assert lock_holder(folder).startswith(f"pid {os.getpid()} on ")
    finally:
        lock.release()
