"""Checkpoints and storage without Ray: a resumed trial continues exactly; checkpoint files are
found, ranked and skipped when broken; results, locks and weights work on a non-local pyarrow
filesystem (an in-memory one stands in for s3://, which cannot be reached from here)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.fs as pafs
import pytest
import torch

from ablate.config.trial import config_hash
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import ArtifactStore, Expect, ResultsStore, move_aside, read_rows
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from ablate.results.lock import run_lock
from ablate.results.shared import storage_problem
from ablate.runner.checkpoints import (
    META_FILE,
    STATE_FILE,
    candidates,
    delete_checkpoints,
    find_latest,
    read_state,
    write_checkpoint,
)
from ablate.train.loop import pretrain

FAST = {
    "train": {"epochs": 4, "steps_per_epoch": 2, "batch_size": 64, "threads": 1},
    "eval": {"every": 1, "probe_epochs": 2},
    "projector": {"hidden_dim": 32, "out_dim": 16},
    "model": {"width": 16},
    "predictor": {"name": "directpred"},
}
KEYS = ("epoch", "step", "loss", "probe_top1", "z_std", "eig_align")
SCHEMA = SSL.schema


class Crash(Exception):
    pass


class FolderCheckpointer:
    """The real checkpoint files in a local folder (what Ray uploads), without Ray."""

    def __init__(self, root, trial_id, every=1, crash_after=None):
        self.root, self.trial_id, self.every, self.crash_after = root, trial_id, every, crash_after

    def load(self):
        return find_latest([Location.parse(self.root)], self.trial_id)

    def save(self, state, epoch):
        folder = self.root / f"checkpoint_{epoch:06d}"
        folder.mkdir(parents=True)
        write_checkpoint(state, folder, self.trial_id)
        if self.crash_after == epoch:  # the process dies right after the checkpoint is stored
            raise Crash(f"killed after epoch {epoch}")


def test_a_trial_resumed_from_its_checkpoint_computes_what_an_uninterrupted_one_does(tmp_path):
    cfg = load_trial_config(FAST)
    tid = config_hash(cfg)
    straight = pretrain(cfg, lambda r: None)
    first: list[dict] = []
    with pytest.raises(Crash):
        pretrain(cfg, first.append, FolderCheckpointer(tmp_path, tid, crash_after=2))
    assert [r["epoch"] for r in first] == [1, 2]
    second: list[dict] = []
    rows = pretrain(cfg, second.append, FolderCheckpointer(tmp_path, tid))
    # the restored rows are reported again (the dead run may not have recorded them), then epochs 3, 4
    assert [r["epoch"] for r in second] == [1, 2, 3, 4]
    assert [r["resumed_from_epoch"] for r in rows] == [None, None, 2, 2]
    # weights, optimizer, DirectPred's F_hat and every RNG stream came back: bit-identical to no interruption
    assert [[r[k] for k in KEYS] for r in rows] == [[r[k] for k in KEYS] for r in straight]
    assert rows[-1]["wall_s"] >= rows[1]["wall_s"]  # wall time continues from the checkpoint's rows


def test_the_newest_loadable_checkpoint_of_the_trial_wins(tmp_path):
    roots = [Location.parse(tmp_path / "tune"), Location.parse(tmp_path / "train")]
    for root, epoch, tid in [(tmp_path / "tune", 2, "a"), (tmp_path / "train", 5, "a"), (tmp_path / "tune", 9, "b")]:
        folder = root / f"checkpoint_{epoch}"
        folder.mkdir(parents=True)
        write_checkpoint({"epoch": epoch, "w": torch.ones(2) * epoch}, folder, tid)
    (tmp_path / "tune" / "checkpoint_7").mkdir()  # an upload that never finished: no meta.json
    assert [e for e, _ in candidates(roots, "a")] == [5, 2]  # trial b's checkpoint is not a's
    assert find_latest(roots, "a")["epoch"] == 5
    (tmp_path / "train" / "checkpoint_5" / STATE_FILE).write_bytes(b"truncated")  # newest is broken
    state = find_latest(roots, "a")
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.full((2,), 2.0))
    assert find_latest(roots, "nobody") is None
    delete_checkpoints(roots)
    assert candidates(roots, "a") == [] and candidates(roots, "b") == []


def test_checkpoint_files_load_without_unpickling_arbitrary_objects(tmp_path):
    write_checkpoint({"epoch": 1, "rng": torch.get_rng_state(), "rows": [{"loss": 1.0, "error": None}]}, tmp_path, "t")
    assert json.loads((tmp_path / META_FILE).read_text()) == {"trial_id": "t", "epoch": 1}
    assert read_state(tmp_path / STATE_FILE)["rows"][0]["loss"] == 1.0

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"epoch": 2, "x": Evil()}, tmp_path / STATE_FILE)
    with pytest.raises(Exception, match="[Ww]eights only"):
        read_state(tmp_path / STATE_FILE)


def test_checkpoint_roots_are_keyed_by_our_trial_id(tmp_path):
    roots = SweepDir.at(tmp_path / "res" / "sw").checkpoint_roots("abc123")
    assert [str(r) for r in roots] == [
        str(tmp_path / "res/_sw/ray/sw/abc123"),
        str(tmp_path / "res/_sw/ray/_train/abc123"),
    ]


def test_trunk_weights_are_saved_for_export(tmp_path):
    cfg = load_trial_config({**FAST, "train": {**FAST["train"], "epochs": 2}, "save": {"weights": "every", "every": 1}})
    pretrain(cfg, lambda r: None, artifacts=ArtifactStore(Location.parse(tmp_path / "w")))
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "trunk_epoch1.pt",
        "trunk_epoch2.pt",
        "trunk_final.pt",
    ]
    from ablate.models.trunks import load_trunk

    state = torch.load(tmp_path / "w" / "trunk_final.pt", weights_only=True)
    trunk = load_trunk(state, cfg.model, 1)  # loads strictly into a fresh trunk
    assert sum(p.numel() for p in trunk.parameters()) > 0
    none = load_trial_config({**FAST, "train": {**FAST["train"], "epochs": 1}, "save": {"weights": "none"}})
    pretrain(none, lambda r: None, artifacts=ArtifactStore(Location.parse(tmp_path / "none")))
    assert not (tmp_path / "none").exists()
    assert config_hash(cfg) == config_hash(load_trial_config({**FAST, "train": {**FAST["train"], "epochs": 2}}))


# ---------------------------------------------------------------- storage locations
def row(cfg, epoch, final=False):
    return {
        **SSL.columns(cfg, "cpu"),
        "sweep": "s",
        "epoch": epoch,
        "is_final": final,
        "status": "ok",
        "loss": 1.0 / epoch,
    }


def test_results_store_on_a_non_local_filesystem():
    """pyarrow's in-memory filesystem takes the code path of s3:// / gs:// (no rename, no flock)."""
    fs = pafs._MockFileSystem()
    loc = Location(fs, "bucket/results/s", "mock://bucket/results/s")
    store = ResultsStore(SweepDir(loc), Expect("s", SCHEMA))
    a, b = load_trial_config({"seed": 0}), load_trial_config({"seed": 1})
    store.add(row(a, 1))
    store.add(row(a, 2, True))
    store.add(row(b, 1))
    assert store.holdings().finished() == {config_hash(a)}
    again = ResultsStore(SweepDir(loc), Expect("s", SCHEMA))  # a fresh run reads what is there
    again.add(row(b, 1))
    again.add(row(b, 2, True))
    df = read_rows(loc)
    assert sorted(zip(df.seed, df.epoch)) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    names = [c.name for c in loc.children()]
    assert not [n for n in names if n.startswith(".tmp-")] and len(names) == 2
    lock = run_lock(SweepDir(loc))
    lock.acquire()
    with pytest.raises(
        UserError, match=r"another `ablate run` of this sweep is running \(pid \d+ .*heartbeat \d+ s ago"
    ):
        run_lock(SweepDir(loc)).acquire()
    lock.release()
    again = run_lock(SweepDir(loc))
    assert again.acquire() is None  # nothing taken over: the first run released its lock
    again.release()
    backup = move_aside(SweepDir(loc))
    assert str(backup).startswith("mock://bucket/results/s.old-") and not loc.exists()
    ArtifactStore(Location(fs, "bucket/w", "mock://bucket/w")).save("trunk_final.pt", {"w": torch.ones(1)})
    assert fs.get_file_info("bucket/w/trunk_final.pt").size > 0


def test_file_uris_are_local_paths(tmp_path):
    loc = Location.parse(f"file://{tmp_path}/r")
    assert loc.local == tmp_path / "r" and str(loc) == str(tmp_path / "r")
    store = ResultsStore(SweepDir(loc), Expect("s", SCHEMA))
    store.add(row(load_trial_config({}), 1, True))
    assert len(pd.read_parquet(tmp_path / "r")) == 1


def test_shared_storage_rule():
    assert storage_problem("s3://bucket/results") is None
    assert "node-local" in storage_problem("/tmp/results")
    assert storage_problem("file:///dev/shm/x") is not None  # a file:// URI is judged as the path it names
    with pytest.raises(UserError, match="not a filesystem URI"):
        Location.parse("nosuchscheme://x/y")
