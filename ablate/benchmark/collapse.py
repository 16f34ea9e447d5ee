"""``ablate bench`` section collapse: what ``stop_collapsed`` saves, and that it stops only collapses.

One small sweep through the real runner, twice, side by side: with ``stop_collapsed`` and without.
Its four arms are two that collapse by design (SimSiam without a predictor, Theorem 2; no
stop-gradient) and two that do not (MLP and DirectPred predictors); a collapse-only check runs every
epoch (``eval.collapse_every: 1``). Reported: the epochs trained, the trials' device time and the
sweep's wall time in each run, the epoch at which each collapsed arm stopped, and the largest change
stopping made to a healthy arm's final z_std or probe accuracy (0: the same seeds give the same
numbers, bit for bit on CPU).

N = 5 evaluations in a row: on this digits setting DirectPred's z_std starts below the threshold for
its first epochs (0.035, 0.096, 0.080 at epochs 1-3, measured) before it spreads, so a smaller N
would stop a healthy arm.
"""

from __future__ import annotations

import pandas as pd

from ablate.benchmark.core import BenchContext, Measurement, Target
from ablate.benchmark.side_by_side import TINY_BASE, run_both
from ablate.results.schema import COLLAPSED_STOPPED

STOP_AFTER = 5
COLLAPSE_SWEEP = (
    """\
name: bench_collapse
description: two arms that collapse by design and two that do not, with a collapse check every epoch
"""
    + TINY_BASE
    + """\
  train: {{epochs: {epochs}, steps_per_epoch: {steps}, batch_size: 64, device: cpu, threads: 1}}
  eval: {{every: {epochs}, collapse_every: 1, probe_epochs: 5, spectra: false}}
cases:
  - {{predictor: {{name: none}}, ema.tau: 0.0}}                    # SimSiam, no predictor: collapses (Theorem 2)
  - {{predictor: {{name: linear}}, loss.stop_gradient: false}}     # no stop-gradient: collapses
  - {{predictor: {{name: mlp}}}}
  - {{predictor: {{name: directpred}}}}
seeds: [0]
"""
)
UNCHANGED = Target("ours", "<=", 0.0, "healthy arms unchanged")


def bench_collapse(ctx: BenchContext) -> list[Measurement]:
    """The sweep without and with ``stop_collapsed`` (quick: 12 epochs of 8 steps; full: 30 whole epochs)."""
    epochs, steps = (12, 8) if ctx.quick else (30, 0)
    runs = run_both(
        COLLAPSE_SWEEP.format(epochs=epochs, steps=steps),
        {"baseline": {"stop_collapsed": 0}, "ours": {"stop_collapsed": STOP_AFTER}},
        "predictor.name",
    )
    return collapse_figures(runs, epochs)


def collapse_figures(runs: dict[str, tuple[float, pd.DataFrame]], epochs: int) -> list[Measurement]:
    (ours_s, ours), (base_s, base) = runs["ours"], runs["baseline"]
    stopped = ours[ours["status"] == COLLAPSED_STOPPED]
    healthy = [arm for arm in base.index if base.loc[arm, "status"] == "ok" and not base.loc[arm, "collapsed"]]
    change = max(
        (abs(float(ours.loc[a, m]) - float(base.loc[a, m])) for a in healthy for m in ("z_std", "probe_top1_best")),
        default=float("nan"),
    )
    where = ", ".join(f"predictor={a} at epoch {int(stopped.loc[a, 'epoch'])}" for a in stopped.index) or "none"
    note = f"stop_collapsed {STOP_AFTER}, collapse check every epoch, {len(base)} arms x {epochs} epochs on digits"
    out = [
        Measurement(
            "collapse",
            f"epochs trained, stop_collapsed {STOP_AFTER} vs off",
            float(ours["epoch"].sum()),
            float(base["epoch"].sum()),
            "epochs",
            note=f"{note}; stopped: {where}",
        ),
        Measurement(
            "collapse",
            f"device time of all trials, stop_collapsed {STOP_AFTER} vs off",
            float(ours["device_s"].sum()),
            float(base["device_s"].sum()),
            "s",
            note="the compute spent: each trial's training and evaluation seconds (device_s), summed",
        ),
        Measurement(
            "collapse",
            f"sweep wall time, stop_collapsed {STOP_AFTER} vs off",
            ours_s,
            base_s,
            "s",
            ours_runs=[ours_s],
            baseline_runs=[base_s],
            note="includes starting Ray, and the healthy arms, which run to the end either way",
        ),
        Measurement(
            "collapse",
            "largest change to a healthy arm (final z_std, probe)",
            change,
            0.0,
            "abs",
            UNCHANGED,
            note=f"healthy arms: {', '.join(healthy)}",
        ),
    ]
    return out + [
        Measurement(
            "collapse", f"predictor={arm} stopped at epoch", float(stopped.loc[arm, "epoch"]), float(epochs), "epoch"
        )
        for arm in stopped.index
    ]
