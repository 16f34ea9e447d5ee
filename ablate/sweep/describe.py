"""What ``ablate check`` prints about a loaded sweep: trials, axes, resources, where results go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablate.config.registry import DATASETS, KINDS, PREDICTORS
from ablate.results.layout import sweep_location_text
from ablate.sweep.expand import axes_label, cells, compact
from ablate.sweep.plugins import Plugin
from ablate.sweep.validated import Sweep


def _dist_label(dist: Any) -> str:
    return f"{dist.kind}({', '.join(compact(v) for v in dist.values)})"


def axes_of(sweep: Sweep) -> dict[str, list]:
    """Axis name -> values (mapping values shown compactly, e.g. ``directpred(rho=0.3)``)."""
    out: dict[str, list] = {}
    for a in sweep.grid:
        out[a.key] = [compact(v) if isinstance(v, (Mapping, list)) else v for v in a.values]
    if sweep.cases:
        out["cases"] = [axes_label(c.overrides) for c in sweep.cases]
    if sweep.search is not None:
        for key, dist in sweep.search.space.items():
            out[key] = [_dist_label(dist)]
    out["seed"] = list(sweep.seeds)
    return out


def plugin_line(plugin: Plugin) -> str:
    """``lowrank.py (sha256 1f3a9c2b4d5e): predictor lowrank``: a plugin, its hash and what it registers."""
    names = [f"{r.what} {n}" for r in (PREDICTORS, DATASETS, KINDS) for n in r if r.origin(n) == plugin.origin]
    return f"{plugin.name} (sha256 {plugin.sha256[:12]}): {', '.join(names)}"


def describe(sweep: Sweep) -> str:
    """What ``ablate check`` prints: the sweep at a glance, one fact per line."""
    trials, notes = sweep.trials, sweep.notes
    n_cells, n_seeds = len(cells(sweep)), len(sweep.seeds)
    r = sweep.resources
    out = [f"sweep        {sweep.path}", f"name         {sweep.name}  (kind {sweep.kind})"]
    if sweep.description.strip():
        out.append(f"description  {sweep.description.strip().splitlines()[0]}")
    if sweep.overrides:
        out.append("overrides    " + " ".join(f"--set {k}={compact(v)}" for k, v in sweep.overrides.items()))
    out += [f"plugin       {plugin_line(plugin)}" for plugin in sweep.plugins]
    if sweep.search is not None:
        s = sweep.search
        out.append(
            f"trials       {s.num_samples} sampled by {s.algo} (seed {s.seed}), "
            f"{'maximising' if s.mode == 'max' else 'minimising'} {s.metric}"
        )
    else:
        dropped = n_cells * n_seeds - len(trials)
        out.append(
            f"trials       {len(trials)} = {n_cells} cell{'s' * (n_cells != 1)} x {n_seeds} "
            f"seed{'s' * (n_seeds != 1)}" + (f" - {dropped} duplicate{'s' * (dropped != 1)}" if dropped else "")
        )
    axes = axes_of(sweep)
    seeds = axes.pop("seed")
    if sweep.cases:
        how = "extra trials after the grid" if sweep.cases_mode == "add" else "every case x every grid point"
        out.append(f"cases mode   {sweep.cases_mode} ({how})")
    case_labels = axes.pop("cases", [])
    space = {k: axes.pop(k)[0] for k in (sweep.search.space if sweep.search is not None else {})}
    for i, (key, values) in enumerate(axes.items()):
        head = "axes" if i == 0 else ""
        out.append(f"{head:<12} {key} ({len(values)}): {', '.join(compact(v) for v in values)}")
    for i, label in enumerate(case_labels):
        out.append(f"{'cases' if i == 0 else '':<12} [{i}] {label}")
    for i, (key, dist) in enumerate(space.items()):
        out.append(f"{'space' if i == 0 else '':<12} {key} ~ {dist}")
    out.append(f"seeds        {', '.join(str(s) for s in seeds)}")
    res = f"cpu {r.cpu:g}, gpu {r.gpu:g}"
    if r.workers > 1:
        res += f" ({r.workers} workers x {r.gpus_per_worker:g} gpu)"
    out.append(f"resources    {res} per trial")
    out.append(f"concurrency  {sweep.max_concurrent or 'as many trials as resources allow'}")
    out.append(f"metric       {sweep.metric.name} ({sweep.metric.mode})")
    if sweep.table is not None:
        t = sweep.table
        out.append(
            f"table        rows {', '.join(t.rows) or '-'} x cols {', '.join(t.cols) or '-'}: {t.metric}"
            + (f" (paper {t.paper})" if t.paper else "")
        )
    out += [_checkpoints(sweep), *_stopping(sweep), *_sharing(sweep)]
    out += [f"results      {sweep_location_text(sweep.name, sweep.storage)}/", *(f"note         {n}" for n in notes)]
    return "\n".join(out)


def _checkpoints(sweep: Sweep) -> str:
    ck = sweep.checkpoint
    return (
        "checkpoints  "
        + (f"every {ck.every} epochs, keep {ck.keep}" if ck.every else "off")
        + f"; retries {sweep.max_failures}"
        + (f"; logging {', '.join(sweep.logging)}" if sweep.logging else "")
    )


def _stopping(sweep: Sweep) -> list[str]:
    """The ``stop_collapsed`` line of ``ablate check`` (none when it is off)."""
    if not sweep.stop_collapsed:
        return []
    return [
        f"stopping     a trial ends after {sweep.stop_collapsed} evaluations in a row with collapsed = true "
        "(status collapsed_stopped); tables mark its cell with the epoch it stopped at"
    ]


def _sharing(sweep: Sweep) -> list[str]:
    """The ``sharing`` lines of ``ablate check``: which trials are read from a longer one's run
    (:mod:`ablate.sweep.prefix`), and why others that differ only in length are not."""
    return [f"{'sharing' if i == 0 else '':<12} {line}" for i, line in enumerate(sweep.sharing)]
