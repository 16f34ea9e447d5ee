"""``--restart`` moves the old results aside while it holds the run lock: a run of the same sweep that
starts during the move refuses, on a local disk (flock) and on an object store (lock objects; S3's
move is a copy of every object, minutes for a sweep with checkpoints), instead of starting in a
folder that is being moved."""

from __future__ import annotations

import io

import pyarrow.fs as pafs
import pytest

import ablate.runner.driver as driver
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.location import Location


def on_disk(tmp_path) -> SweepDir:
    return SweepDir.at(tmp_path / "res" / "s")


def on_a_store(tmp_path) -> SweepDir:
    fs = pafs._MockFileSystem()  # pyarrow's in-memory filesystem: the object-store code path
    return SweepDir(Location(fs, "bucket/res/s", "mock://bucket/res/s"))


@pytest.mark.parametrize("where", [on_disk, on_a_store], ids=["disk", "object store"])
def test_a_run_that_starts_while_restart_moves_the_old_results_refuses(where, tmp_path, monkeypatch):
    folder = where(tmp_path)
    folder.sweep_file.write_text("name: s\n")  # an earlier run's folder, to be moved aside
    (folder.loc / "t.parquet").write_bytes(b"rows")
    meanwhile: list[str] = []
    move_aside = driver.move_aside

    def move_with_a_run_starting(f: SweepDir):
        other = driver.run_lock(f)
        try:
            other.acquire()
            meanwhile.append("held")
            other.release()
        except UserError as e:
            meanwhile.append(str(e))
        return move_aside(f)

    monkeypatch.setattr(driver, "move_aside", move_with_a_run_starting)
    lock, backup = driver._take_lock(folder, True, io.StringIO())
    try:
        assert len(meanwhile) == 1 and "another `ablate run` of this sweep is running" in meanwhile[0]
        assert backup.name.startswith("s.old-") and (backup.loc / "t.parquet").exists()
        with pytest.raises(UserError, match="another `ablate run` of this sweep is running"):
            driver.run_lock(folder).acquire()  # the restarted run holds the lock of the new folder
    finally:
        lock.release()
