"""The one reader: what it keeps (one expansion's trials), what it skips (damaged or foreign files,
named), that it never sees half of a file being replaced, and the modes of what the writer makes."""

import io
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ablate.config.trial import config_hash
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import Expect, ResultsStore, read_rows, scan
from ablate.results.layout import SweepDir
from ablate.results.location import Location, umask
from ablate.results.schema import to_table

SCHEMA = SSL.schema


def row(seed: int, epoch: int = 1, sweep: str = "s", **metrics) -> dict:
    cfg = load_trial_config({"seed": seed})
    return {
        **SSL.columns(cfg, "cpu"),
        "sweep": sweep,
        "epoch": epoch,
        "is_final": True,
        "status": "ok",
        **metrics,
    }


def tid(seed: int) -> str:
    return config_hash(load_trial_config({"seed": seed}))


@pytest.fixture
def folder(tmp_path):
    """A run's folder with three good trials (seeds 0-2)."""
    store = ResultsStore(SweepDir.at(tmp_path / "s"), Expect("s", SCHEMA))
    for seed in range(3):
        store.add(row(seed, z_std=0.5 + seed))
    return tmp_path / "s"


DAMAGE = {
    "zero bytes": lambda f: f.write_bytes(b""),
    "truncated": lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),
    "garbage": lambda f: f.write_bytes(os.urandom(300)),
    "csv, not parquet": lambda f: f.write_text("trial_id,status\nx,ok\n"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_trial_file_is_skipped_and_named_not_fatal(folder, damage):
    bad = folder / f"{tid(1)}.parquet"
    DAMAGE[damage](bad)
    held = scan(folder, Expect("s", SCHEMA))
    assert sorted(held.rows.trial_id) == sorted([tid(0), tid(2)])
    assert [s.name for s in held.skipped] == [bad.name] and "not a readable Parquet file" in held.skipped[0].why
    assert any(bad.name in n for n in held.notes("results/s"))
    assert len(read_rows(folder)) == 2  # a bare read (no sweep known) skips it too


FOREIGN = {
    "another sweep's trial": (lambda: [row(1, sweep="other")], "holds rows of sweep 'other', not of 's'"),
    "a renamed file": (lambda: [row(7)], "holds rows of another trial than"),
    "a lone `ablate trial` file": (lambda: [row(1, sweep="")], "holds rows of sweep '', not of 's'"),
}


@pytest.mark.parametrize("case", FOREIGN, ids=list(FOREIGN))
def test_a_trial_file_that_is_not_this_sweeps_is_never_averaged_in(folder, case):
    rows, why = FOREIGN[case]
    pq.write_table(to_table(rows(), SCHEMA), folder / f"{tid(1)}.parquet")
    held = scan(folder, Expect("s", SCHEMA))
    assert tid(1) not in set(held.rows.trial_id) and len(held.rows) == 2
    assert len(held.skipped) == 1 and why in held.skipped[0].why


def test_a_file_of_another_kind_or_schema_is_skipped(folder):
    theory = pa.table(
        {"trial_id": [tid(1)], "status": ["ok"], "is_final": [True], "sweep": ["s"], "z_std": ["high"]}
    )  # a column of the wrong type
    pq.write_table(theory, folder / f"{tid(1)}.parquet")
    held = scan(folder, Expect("s", SCHEMA))
    assert len(held.rows) == 2 and "column 'z_std' is string, not double" in held.skipped[0].why
    pq.write_table(pa.table({"a": [1]}), folder / f"{tid(2)}.parquet")  # a Parquet file, but not a trial's
    held = scan(folder, Expect("s", SCHEMA))
    assert len(held.rows) == 1 and any(
        "not a trial file of ablate (no column 'trial_id')" in s.why for s in held.skipped
    )


def test_trials_of_other_expansions_are_counted_not_read(folder):
    mine = {tid(0), tid(2)}
    held = scan(folder, Expect("s", SCHEMA, lambda trial_id, r: trial_id in mine))
    assert set(held.rows.trial_id) == mine and held.others == (tid(1),)
    assert held.notes("results/s") == [
        "results/s: also holds 1 trial of this sweep run with other settings (other --set overrides); not counted here"
    ]


def test_the_run_moves_skipped_files_aside_and_reruns_their_trials(folder):
    DAMAGE["truncated"](folder / f"{tid(1)}.parquet")
    store = ResultsStore(SweepDir.at(folder), Expect("s", SCHEMA))
    held = store.holdings()
    assert held.finished() == {tid(0), tid(2)}  # the damaged trial is not done: it runs again
    lines = store.set_aside(held.skipped)
    assert (SweepDir.at(folder).damaged.local / f"{tid(1)}.parquet").exists() and not (
        folder / f"{tid(1)}.parquet"
    ).exists()
    assert lines[0].startswith(f"moved {tid(1)}.parquet to {folder.parent}/_s/damaged/") and "runs again" in lines[0]
    store.add(row(1))
    assert store.holdings().finished() == {tid(0), tid(1), tid(2)}


def test_a_reader_sees_a_whole_file_while_the_run_replaces_it(tmp_path):
    """The run replaces a trial file by rename; each read must be one whole version (never an error,
    never a mix): the reader opens each file once."""
    store = ResultsStore(SweepDir.at(tmp_path / "s"), Expect("s", SCHEMA))
    store.add(row(0, epoch=1, z_std=0.0))
    stop = threading.Event()

    def rewrite():
        epoch = 1
        while not stop.is_set():
            epoch += 1
            store.add({**row(0, epoch=epoch, z_std=float(epoch)), "is_final": False})

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        for _ in range(300):
            df = scan(tmp_path / "s", Expect("s", SCHEMA)).rows
            assert list(df.epoch) == list(range(1, len(df) + 1))  # every epoch so far, in order, once
    finally:
        stop.set()
        writer.join()


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_the_run_writes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert umask() == mask
        loc = Location.parse(tmp_path / "r" / "t.parquet")
        loc.write_bytes(b"x")
        assert os.stat(loc.path).st_mode & 0o777 == 0o666 & ~mask
    finally:
        os.umask(old)


def test_check_writable_refuses_what_could_never_be_written(tmp_path):
    (tmp_path / "f").write_text("x")
    cases = [
        (Location.parse(tmp_path / "f" / "out.html"), False, r"cannot be created: .*/f is a file, not a folder"),
        (Location.parse(tmp_path), False, "is a folder; give a file name"),
        (Location.parse(tmp_path / "f"), True, "is a file; give a folder"),
        (Location.parse("/dev/null"), True, r"is not a folder \(a device"),
        (Location.parse("/dev/null"), False, r"is not a regular file \(a device\?\)"),
        (Location.parse("/proc/ablate-test/out"), True, r"/proc does not take new files \("),
        (Location.parse("/sys/ablate-test.md"), False, r"/sys does not take new files \("),  # read-only, even for root
    ]
    for loc, folder, message in cases:
        with pytest.raises(UserError, match=message):
            loc.check_writable("--out", folder=folder)
    Location.parse(tmp_path / "new" / "deeper" / "r.md").check_writable("--out", folder=False)  # creatable: fine
    (tmp_path / "f").chmod(0o644)
    Location.parse(tmp_path / "f").check_writable("--out", folder=False)  # an existing file: replaced


def test_a_bare_folder_of_parquet_files_reads_whatever_they_hold(tmp_path):
    """Files a user wrote with pandas (no sweep known) are read as they are: no name or sweep rule."""
    buf = io.BytesIO()
    pq.write_table(to_table([row(0), row(1)], SCHEMA), buf)
    (tmp_path / "mine.parquet").write_bytes(buf.getvalue())
    assert len(read_rows(tmp_path)) == 2


def test_a_folder_an_older_ablate_wrote_is_moved_to_this_layout_on_first_use(tmp_path, capsys):
    """Before, the sweep file, weights and the rest lived inside the results folder with a ``_`` prefix:
    the first command moves them to the companion folder (nothing deleted) and reads on."""
    from ablate.sweep.load import results_folder
    from helpers.tiny_sweeps import write_sweep

    src = write_sweep(tmp_path, "old", "seeds: [0]\n")
    old = tmp_path / "results" / "old"
    (old / "_weights" / "t").mkdir(parents=True)
    (old / "_weights" / "t" / "trunk_final.pt").write_bytes(b"w")
    (old / "_sweep.yaml").write_text(src.read_text())
    (old / "_overrides.json").write_text("{}")
    folder = results_folder(old)
    assert (
        folder.has_sweep() and (tmp_path / "results" / "_old" / "weights" / "t" / "trunk_final.pt").read_bytes() == b"w"
    )
    assert (
        sorted(p.name for p in old.iterdir()) == []
        and "moved _overrides.json, _sweep.yaml, _weights" in capsys.readouterr().err
    )
    assert results_folder(old) == folder  # already upgraded: nothing more to move
