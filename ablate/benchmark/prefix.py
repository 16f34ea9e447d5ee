"""``ablate bench`` section prefix: what reading shorter trials from a longer trial's run saves, and
that it changes no number (:mod:`ablate.sweep.prefix`, Table 8's 100 / 300 / 500 epochs).

One small sweep through the real runner, twice, side by side: with ``share_prefix`` (the default: per
predictor the longest trial runs and the shorter two are read from its rows) and with
``share_prefix: false`` (every trial runs on its own, the same seeds). Reported: the epochs trained,
the trials' device time and the sweep's wall time in each run, and the largest difference between a
cell's final numbers in the two runs: 0 on CPU, where the same seed gives the same steps bit for bit
(a shorter trial's epochs are the longer trial's first epochs: constant lr and EMA).
"""

from __future__ import annotations

import pandas as pd

from ablate.benchmark.core import BenchContext, Measurement, Target
from ablate.benchmark.side_by_side import TINY_BASE, run_both

PREFIX_SWEEP = (
    """\
name: bench_prefix
description: one configuration per predictor at three lengths (Table 8's shape), constant lr and EMA
"""
    + TINY_BASE
    + """\
  train: {{steps_per_epoch: {steps}, batch_size: 64, device: cpu, threads: 1}}
  eval: {{every: 1, probe_epochs: 5}}
grid:
  predictor: [{{name: linear}}, {{name: directpred}}]
  train.epochs: {lengths}
seeds: [0]
"""
)
COMPARED = ("loss", "probe_top1_best", "probe_top1", "knn_top1", "z_std")
SAME = Target("ours", "<=", 0.0, "every cell's numbers unchanged")


def bench_prefix(ctx: BenchContext) -> list[Measurement]:
    """The sweep with and without ``share_prefix`` (quick: 2 / 4 / 6 epochs of 8 steps; full: 10 / 20 / 30
    whole epochs)."""
    lengths, steps = ([2, 4, 6], 8) if ctx.quick else ([10, 20, 30], 0)
    runs = run_both(
        PREFIX_SWEEP.format(lengths=lengths, steps=steps),
        {"baseline": {"share_prefix": False}, "ours": {"share_prefix": True}},
        "trial_id",
    )
    return prefix_figures(runs, lengths)


def prefix_figures(runs: dict[str, tuple[float, pd.DataFrame]], lengths: list[int]) -> list[Measurement]:
    (ours_s, ours), (base_s, base) = runs["ours"], runs["baseline"]
    ran = ours[ours["derived_from"].isna()]  # the trials that ran; the others were read from their rows
    change = max(abs(float(ours.loc[t, m]) - float(base.loc[t, m])) for t in base.index for m in COMPARED)
    note = f"{len(base)} trials: 2 predictors x {', '.join(map(str, lengths))} epochs on digits, eval every epoch"
    return [
        Measurement(
            "prefix",
            "epochs trained, share_prefix vs each trial on its own",
            float(ran["epoch"].sum()),
            float(base["epoch"].sum()),
            "epochs",
            note=f"{note}; {len(ran)} runs for {len(ours)} trials",
        ),
        Measurement(
            "prefix",
            "device time of the trials that ran, share_prefix vs each on its own",
            float(ran["device_s"].sum()),
            float(base["device_s"].sum()),
            "s",
            note="each run's training and evaluation seconds (device_s of its final row), summed",
        ),
        Measurement(
            "prefix",
            "sweep wall time, share_prefix vs each trial on its own",
            ours_s,
            base_s,
            "s",
            ours_runs=[ours_s],
            baseline_runs=[base_s],
            note="includes starting Ray",
        ),
        Measurement(
            "prefix",
            "largest change to a cell's final numbers (same trial ids, same seeds)",
            change,
            0.0,
            "abs",
            SAME,
            note=f"over {', '.join(COMPARED)} of every trial",
        ),
    ]
