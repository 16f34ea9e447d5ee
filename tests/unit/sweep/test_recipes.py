"""The paper sweeps' recipes against their sources (issue #21): where the paper follows BYOL (Table 9),
BYOL's released settings; where it follows its reference code (Table 1), that code's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.sweep.load import read_sweep
from ablate.train.evaluate import byol_probe_lr

SWEEPS = Path(__file__).resolve().parents[3] / "sweeps"


def trials(name: str) -> list:
    return list(read_sweep(SWEEPS / f"{name}.yaml", validate_paths=False).trials)


def test_the_300_epoch_imagenet_sweep_is_byols_300_epoch_setting():
    """deepmind-research byol/configs/byol.py: ``_LR_PRESETS = {..., 300: 0.3, 1000: 0.2}``,
    ``_WD_PRESETS = {..., 300: 1e-6, 1000: 1.5e-6}``, ``_EMA_PRESETS = {..., 300: 0.99, 1000: 0.996}``;
    byol/utils/schedules.py: ``scaled_lr = base_learning_rate * batch_size / 256.`` (LARS, 10 warm-up
    epochs, cosine; the target's tau 1 - (1 - base)(cos(pi k / K) + 1) / 2)."""
    for t in trials("imagenet_300ep"):
        cfg = t.config
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.optim.name) == (300, 4096, "lars")
        assert cfg.optim.lr == pytest.approx(0.3 * cfg.train.batch_size / 256)  # 4.8
        assert (cfg.optim.weight_decay, cfg.ema.tau, cfg.ema.schedule) == (1e-6, 0.99, "cosine")
        assert (cfg.optim.schedule, cfg.optim.warmup_epochs) == ("cosine", 10)


@pytest.mark.parametrize("name", ["imagenet_60ep", "imagenet_300ep"])
def test_the_imagenet_probe_runs_at_byols_scaled_lr(name):
    """byol/configs/eval.py: base_learning_rate 0.2, batch given per run (1024 in BYOL App. C.1), 80 epochs,
    Nesterov SGD; the lr is scaled by batch / 256 (schedules.learning_schedule): 0.8."""
    for t in trials(name):
        ev = t.config.eval
        assert (ev.protocol, ev.probe_lr, ev.probe_batch_size, ev.probe_epochs) == ("byol", 0.2, 1024, 80)
        assert byol_probe_lr(ev) == pytest.approx(0.8)


def test_table_1_runs_the_papers_solve_and_the_reference_codes():
    """The reference's minimal_space branch: a symmetric W (Lyapunov), symmetrised between plug-ins
    (``dyn_sym: true``), with ``dyn_lambda: 0.8`` (config/byol_config.yaml defaults); the paper's
    W_p F = sym(C) is the other arm, at the same rho."""
    arms = {
        (t.config.predictor.solve, t.config.predictor.symmetric, t.config.predictor.rho) for t in trials("stl10_plugin")
    }
    assert arms == {("paper", False, 0.8), ("lyapunov", True, 0.8)}
