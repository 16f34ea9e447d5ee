"""``ablate bench`` section orchestration: what ``ablate run`` costs beyond the trials themselves.

N trivial trials through the real runner (:func:`ablate.runner.driver.run_sweep`: Ray start, Tune
scheduling, Parquet writes, Ray stop) vs :func:`ablate.train.loop.pretrain` on the same configs in a
plain loop. Both sides are warmed up: the loop by one trial, the driver by importing Ray Tune (once
per process, not per sweep). Overhead per trial = (sweep - loop) / N, N = 8 by default (the size of
sweeps/smoke.yaml). Each sweep writes to a fresh folder, so nothing is skipped as already done.

Full runs also time a sweep of 4N trials and Ray's start + stop alone, which splits the sweep into a
fixed cost (Ray, the trial processes' imports) and a marginal cost per trial, (T(4N) - T(N)) / 3N:
what each further trial of a large sweep costs. (Its spread is that of the fixed cost, about a
second on a shared machine, over 3N trials.)
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from ablate.benchmark.core import BenchContext, Measurement, Target, interleave, median
from ablate.benchmark.workloads import per_unit
from ablate.results.layout import SweepDir
from ablate.runner.driver import run_sweep
from ablate.runner.session import init_ray, preload_tune, shutdown_ray
from ablate.sweep.load import read_sweep
from ablate.sweep.validated import Sweep
from ablate.train.loop import pretrain

ORCH_SWEEP = """\
name: bench_orchestration
description: N trivial trials (1 step, 1 probe epoch) timing ablate run's overhead
base:
  kind: ssl
  data: {{name: digits}}
  model: {{trunk: convnet, width: 16}}
  projector: {{hidden_dim: 32, out_dim: 16}}
  train: {{epochs: 1, steps_per_epoch: 1, batch_size: 32, device: cpu, threads: 1}}
  eval: {{every: 1, probe_epochs: 1, spectra: false}}
seeds: [{seeds}]
resources: {{cpu: 1}}
"""
TARGET = Target("overhead", "<=", 2.0, "overhead <= 2 s/trial")


def ray_start_stop(log_dir: Path) -> None:
    """What every ``ablate run`` pays once: start a local Ray and stop it again."""
    init_ray(None, log_dir)
    shutdown_ray()


def trivial_sweep(folder: Path, trials: int) -> Sweep:
    """The sweep of ``trials`` trivial trials (one seed each), written into ``folder``."""
    path = folder / f"sweep{trials}.yaml"
    path.write_text(ORCH_SWEEP.format(seeds=", ".join(str(i) for i in range(trials))))
    return read_sweep(path)


def bench_orchestration(ctx: BenchContext) -> list[Measurement]:
    """The sweep of N trials against the loop (and, in full runs, 4N trials and Ray alone)."""
    n = ctx.sizes.orch_trials
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as tmp:
        runs_made = iter(range(1_000_000))

        def sweep_of(sweep: Sweep) -> Callable[[], None]:
            def run() -> None:  # every run into a fresh folder: nothing is skipped as done
                folder = SweepDir.of(sweep.name, Path(tmp) / f"run{next(runs_made)}")
                failures.extend(run_sweep(sweep, folder, stream=io.StringIO()).failed.values())

            return run

        small = trivial_sweep(Path(tmp), n)
        configs = [t.config for t in small.trials]

        def baseline() -> None:
            for cfg in configs:
                pretrain(cfg, lambda row: None)
            torch.set_num_threads(ctx.threads)  # the trials set 1 thread

        pretrain(configs[0], lambda row: None)  # the loop's warm-up: imports, first-call costs
        torch.set_num_threads(ctx.threads)
        preload_tune()  # the driver's own imports (about a second) are paid once per process
        fns: dict[str, Callable[[], None]] = {"ours": sweep_of(small), "baseline": baseline}
        if not ctx.quick:
            fns.update(more=sweep_of(trivial_sweep(Path(tmp), 4 * n)), ray=lambda: ray_start_stop(Path(tmp) / "_logs"))
        runs = interleave(fns, ctx.sizes.orch_repeats, 0)
    if failures:
        raise RuntimeError(f"{len(failures)} trivial trials failed under ablate run: {failures[0]}")
    return orchestration_figures(runs, n)


def orchestration_figures(runs: dict[str, list[float]], n: int) -> list[Measurement]:
    """Per-trial overhead of N trials; with the 4N sweep and Ray alone also the marginal and fixed costs."""
    sweep_s, loop_s = median(runs["ours"]), median(runs["baseline"])
    out = [
        Measurement(
            "orchestration",
            f"sweep of {n} trivial trials, per trial",
            sweep_s / n,
            loop_s / n,
            "s/trial",
            TARGET,
            ours_runs=per_unit(runs["ours"], n),
            baseline_runs=per_unit(runs["baseline"], n),
            note="ours: run_sweep (Ray start, Tune, Parquet, Ray stop); baseline: pretrain in a loop",
        )
    ]
    if "more" not in runs:
        return out
    more = 4 * n
    marginal = (median(runs["more"]) - sweep_s) / (more - n)
    extra = [m - o for m, o in zip(runs["more"], runs["ours"])]
    nan = float("nan")
    return out + [
        Measurement(
            "orchestration",
            f"each further trial ({more} vs {n} trials)",
            marginal,
            loop_s / n,
            "s/trial",
            TARGET,
            ours_runs=per_unit(extra, more - n),
            note="(T(4N) - T(N)) / 3N: a trial on a reused actor, its placement group, result logging, "
            "the Parquet write",
        ),
        Measurement(
            "orchestration",
            "fixed cost per sweep",
            sweep_s - n * marginal,
            nan,
            "s",
            None,
            note="T(N) - N x marginal: Ray start + stop, each trial process importing torch and Tune",
        ),
        Measurement(
            "orchestration",
            "of which Ray start + stop",
            median(runs["ray"]),
            nan,
            "s",
            None,
            ours_runs=runs["ray"],
            part_of="fixed cost per sweep",
        ),
    ]
