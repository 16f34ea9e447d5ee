"""Trials that differ only in ``train.epochs`` share one run: the plan (:mod:`ablate.sweep.prefix`) and
what ``ablate check`` says about it (issue #21, point 6)."""

from __future__ import annotations

import pytest

from ablate.cli import main
from ablate.sweep.load import read_sweep
from helpers.tiny_sweeps import write_sweep

LENGTHS = """\
grid:
  predictor: [{name: linear}, {name: directpred}]
  train.epochs: [1, 2, 4]
seeds: [0, 1]
"""


def test_the_shorter_trials_are_read_from_the_longest_of_their_config_and_keep_their_ids(tmp_path):
    """A trial read from a longer one keeps its own config and trial_id (the hash of its resolved config):
    only ``derived_from`` says whose run it is read from; every other trial runs, as before."""
    path = write_sweep(tmp_path, "s", LENGTHS)
    shared, alone = read_sweep(path), read_sweep(path, {"share_prefix": False})
    assert [t.trial_id for t in shared.trials] == [t.trial_id for t in alone.trials]
    assert all(t.derived_from is None for t in alone.trials)
    assert alone.sharing == ("8 trials differing only in train.epochs run on their own: share_prefix: false",)
    by_id = {t.trial_id: t for t in shared.trials}
    runs = [t for t in shared.trials if t.derived_from is None]
    assert sorted(t.config.train.epochs for t in runs) == [4] * 4  # one run per predictor x seed
    for t in shared.trials:
        if t.derived_from is not None:
            long = by_id[t.derived_from]
            assert long.config.train.epochs == 4 and t.config.train.epochs in (1, 2)
            assert (long.axes["seed"], long.axes["predictor"]) == (t.axes["seed"], t.axes["predictor"])
    assert shared.sharing[0] == (
        "8 of 12 trials are read from the first epochs of a longer trial of the same config "
        "(train.epochs 1, 2 from 4); 4 run"
    )


@pytest.mark.parametrize(
    "key, why",
    [
        ("optim.schedule", "optim.schedule: cosine makes every step's lr depend on the total steps"),
        ("ema.schedule", "ema.schedule: cosine makes every step's tau depend on the total steps"),
    ],
)
def test_a_schedule_that_depends_on_the_length_keeps_the_trials_apart_and_says_why(tmp_path, key, why):
    """Cosine lr: lr_k = lr 0.5 (1 + cos(pi k / K)); BYOL's cosine EMA: tau_k = 1 - (1 - tau)(cos(pi k / K) + 1) / 2.
    Both read the total steps K, so the first 100 epochs of a 500-epoch trial are not a 100-epoch trial."""
    sweep = read_sweep(write_sweep(tmp_path, "c", LENGTHS), {key: "cosine"})
    assert all(t.derived_from is None for t in sweep.trials)
    assert sweep.sharing == (f"8 trials differing only in train.epochs run on their own: {why}",)


def test_a_length_the_long_trial_does_not_evaluate_is_not_read_from_it(tmp_path):
    """The loop evaluates every eval.every epochs and after the last: a 3-epoch trial's last row (epoch 3)
    is no row of a 4-epoch trial with eval.every 2, so it runs on its own; epoch 2 is one."""
    path = write_sweep(tmp_path, "e", "grid:\n  train.epochs: [2, 3, 4]\n")
    sweep = read_sweep(path, {"base.eval.every": 2})
    lengths = {t.config.train.epochs: t.derived_from is not None for t in sweep.trials}
    assert lengths == {2: True, 3: False, 4: False}
    assert (
        "1 trial differing only in train.epochs run on their own: the 4-epoch trial has no evaluated row at epoch 3"
        in (sweep.sharing[-1])
    )


def test_check_prints_the_sharing_and_the_compute_with_and_without_it(tmp_path, capsys):
    path = write_sweep(tmp_path, "k", LENGTHS)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sharing      8 of 12 trials are read from the first epochs" in out
    # train and evaluation FLOPs are both linear in the epochs (eval.every 1): (4 + 4) / (1 + 2 + 4) x 2 = 8 / 14
    assert f"(4 runs for 12 trials, {8 / 14:.3g}x of" in out
