"""A real digits trial feeds the live progress view: a heartbeat after every epoch, before that
epoch's row, through the same run function ``ablate run``'s trials use."""

from __future__ import annotations

from ablate.config.tree import to_dict
from ablate.config.trial import config_hash
from ablate.kinds.registry import KINDS
from ablate.kinds.ssl import load_trial_config
from ablate.runner.trainable import ResolvedTrial, run_resolved

FAST = {
    "train": {"epochs": 3, "steps_per_epoch": 2, "batch_size": 64, "threads": 1},
    "eval": {"every": 2, "probe_epochs": 2},
    "projector": {"hidden_dim": 32, "out_dim": 16},
    "model": {"width": 16},
}


def test_every_epoch_sends_a_heartbeat_before_its_row():
    cfg = load_trial_config(FAST)
    trial = ResolvedTrial({"trial": to_dict(cfg)}, KINDS["ssl"], cfg, config_hash(cfg))
    events: list[tuple[str, dict]] = []
    run_resolved(trial, lambda row: events.append(("row", row)), None, None, lambda info: events.append(("beat", info)))
    assert [(kind, e["epoch"]) for kind, e in events] == [
        ("beat", 1), ("beat", 2), ("row", 2), ("beat", 3), ("row", 3),
    ]  # fmt: skip
    beats = [e for kind, e in events if kind == "beat"]
    assert all(b["epochs"] == 3 and b["resumed_from"] == 0 and b["images_per_s"] > 0 for b in beats)
    assert set(beats[0]) == {"epoch", "epochs", "images_per_s", "resumed_from"}  # no row's columns: not a row
