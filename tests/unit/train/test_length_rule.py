"""The one rule of which pretraining trials may be read from a longer trial's run
(:func:`ablate.kinds.ssl.length_dependence`) agrees with the code that uses the total length: a trial's
step k depends on its total steps K only through the lr factor and the target's tau."""

from __future__ import annotations

import itertools

import pytest

from ablate.kinds.ssl import length_dependence, load_trial_config
from ablate.models.pair import EMA_SCHEDULES
from ablate.train.optim import lr_factor


@pytest.mark.parametrize("lr, ema", list(itertools.product(["constant", "cosine"], ["constant", "cosine"])))
def test_the_rule_says_a_trial_depends_on_its_length_exactly_when_its_schedules_do(lr, ema):
    """lr: constant 1, cosine 0.5 (1 + cos(pi (k - w) / (K - w))) after w warm-up steps
    (ablate.train.optim.lr_factor); tau: constant tau, cosine BYOL's 1 - (1 - tau)(cos(pi k / K) + 1) / 2
    (ablate.models.pair.EMA_SCHEDULES). Steps 0..K_short-1 of the short and the long trial see the
    same factors iff nothing reads K, which is what the rule must say."""
    cfg = load_trial_config({"optim": {"schedule": lr, "warmup_epochs": 1}, "ema": {"schedule": ema}})
    per_epoch, short, long = 10, 100, 500
    same_lr = all(
        lr_factor(cfg.optim, k, per_epoch, short) == lr_factor(cfg.optim, k, per_epoch, long) for k in range(short)
    )
    tau = EMA_SCHEDULES[cfg.ema.schedule]
    same_tau = all(tau(cfg.ema.tau, k, short) == tau(cfg.ema.tau, k, long) for k in range(short))
    why = length_dependence(cfg)
    assert (why is None) == (same_lr and same_tau)
    if not same_lr:
        assert why.startswith("optim.schedule: cosine")
    elif not same_tau:
        assert why.startswith("ema.schedule: cosine")


def test_only_the_schedules_read_the_total_steps():
    """Where the loop's total steps go: the two schedule calls of train_epoch and the row's derived
    ``total_steps`` column (which a shorter trial's rows recompute). A new reader must face the rule."""
    import inspect

    from ablate.train import loop

    src = inspect.getsource(loop)
    uses = [line.strip() for line in src.splitlines() if "total_steps" in line and "def " not in line]
    readers = [u for u in uses if "loop.total_steps" in u]
    assert readers == [
        "set_lr(opt, lr_factor(cfg.optim, loop.step, loop.steps_per_epoch, loop.total_steps))",
        "pair.update_target(loop.step - 1, loop.total_steps)  # the step just taken, 0-based",
        'row = {**base, **progress, "total_steps": loop.total_steps, "resumed_from_epoch": resumed, **row}',
    ]
