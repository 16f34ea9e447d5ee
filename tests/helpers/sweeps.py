"""Small results folders built the way a sweep writes them: rows of real TrialConfigs, the real
results schema, real Parquet (write_table) read back with read_rows. Metric values are synthetic
and deterministic (a base accuracy plus a known offset per seed), never copied from a run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.config.tree import flatten, merge, to_dict
from ablate.config.trial import TrialConfig, config_hash
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import read_rows, write_table
from ablate.results.layout import SweepDir
from ablate.results.schema import to_table

SCHEMA = SSL.schema
SEED_OFFSET = {0: -0.004, 1: -0.002, 2: 0.0, 3: 0.002, 4: 0.004}  # mean 0, sample std 0.00316


def config(base: Mapping[str, Any], overrides: Mapping[str, Any], seed: int) -> TrialConfig:
    return load_trial_config(merge(base, {**overrides, "seed": seed}))


def trial_rows(
    cfg: TrialConfig,
    sweep: str,
    final_acc: float,
    *,
    epochs: Sequence[int] = (5, 10),
    status: str = "ok",
    z_std: float = 0.8,
    spectra: bool = False,
    finished: bool = True,
    wall_per_epoch: float = 2.0,
) -> list[dict[str, Any]]:
    """Rows of one trial evaluated at ``epochs``; accuracy rises linearly to ``final_acc``.

    ``status="diverged"``: the last evaluated epoch is replaced by a diverged final row (no metrics);
    ``"failed"``: by a failed row; ``finished=False``: no final row (an interrupted trial)."""
    tree = to_dict(cfg)
    base = {k: v for k, v in flatten(tree).items()}
    base.update(
        sweep=sweep,
        trial_id=config_hash(cfg),
        kind="ssl",
        search="grid",
        seed=cfg.seed,
        git_sha="0123456789abcdef0123456789abcdef01234567",
        git_dirty=False,
        versions=json.dumps({"python": "3.12", "torch": "2.14.1"}),
        device="cpu (test)",
        started_at="2026-01-01T00:00:00+00:00",
        config_json=json.dumps(tree, sort_keys=True),
    )
    rows = []
    last = epochs[-1]
    for i, e in enumerate(epochs):
        frac = (i + 1) / len(epochs)
        row = {
            **base,
            "epoch": e,
            "step": e * 10,
            "status": "ok",
            "error": None,
            "is_final": finished and e == last,
            "wall_s": wall_per_epoch * e,
            "loss": 1.0 - 0.5 * frac,
            "probe_top1_best": final_acc * (0.5 + 0.5 * frac),
            "probe_top1": final_acc * (0.5 + 0.5 * frac) - 0.01,
            "probe_top5": min(1.0, final_acc * (0.5 + 0.5 * frac) + 0.15),
            "knn_top1": final_acc * (0.4 + 0.5 * frac),
            "z_std": z_std * (0.2 + 0.8 * frac) if z_std >= 0.1 else z_std * (2 - frac),
            "lr": 0.03,
        }
        row["collapsed"] = row["z_std"] < 0.1
        if spectra:
            d = 6
            f = [(1.0 + frac) * 0.5**j for j in range(d)]  # (d,) descending eigenvalues of F
            row.update(
                f_eigs=f,
                wp_eigs=[(s / f[0]) ** 0.5 + 0.1 for s in f],
                eig_align=0.5 + 0.45 * frac,
                commutator=0.5 - 0.4 * frac,
            )
        rows.append(row)
    if status in ("diverged", "failed"):
        bad = {
            **rows[-1],
            "status": status,
            "is_final": True,
            "error": "non-finite loss at step 90" if status == "diverged" else "RuntimeError: boom",
            "loss": float("nan"),
        }
        for k in ("probe_top1_best", "probe_top1", "probe_top5", "knn_top1", "z_std", "collapsed"):
            bad[k] = None
        rows[-1] = bad
    return rows


def write_sweep(root: Path, trials: Sequence[list[dict[str, Any]]]) -> pd.DataFrame:
    """Write every trial's rows as ``<trial_id>.parquet`` under ``root`` and read the folder back."""
    for rows in trials:
        write_table(SweepDir.at(root).trial_file(rows[0]["trial_id"]), to_table(rows, SCHEMA))
    return read_rows(root)


def expansion_rows(sweep: Any, acc: Any, **kw: Any) -> list[list[dict[str, Any]]]:
    """Rows of every trial a loaded sweep expands to; ``acc(trial)`` is its final accuracy."""
    return [trial_rows(t.config, sweep.name, acc(t), **kw) for t in sweep.trials]


def flat(cfg: TrialConfig) -> dict[str, Any]:
    return flatten(to_dict(cfg))


# ---------------------------------------------------------------- paper-shaped sweeps
STL = {
    "data": {"name": "stl10", "root": "data/stl10"},
    "model": {"trunk": "resnet18"},
    "predictor": {"name": "directpred"},
    "train": {"epochs": 10},
}
T6 = {
    (0.3, 0): 0.7677,
    (0.3, 0.01): 0.7711,
    (0.3, 0.1): 0.7786,
    (0.3, 0.5): 0.7506,
    (0.5, 0): 0.7665,
    (0.5, 0.01): 0.7676,
    (0.5, 0.1): 0.7756,
    (0.5, 0.5): 0.7522,
}


def table6_trials(seeds: Sequence[int] = range(5)) -> tuple[list[list[dict]], list[dict]]:
    """A Table-6-shaped sweep (rho x eps, 5 seeds): trials' rows and the expansion's flat configs."""
    trials, expected = [], []
    for (rho, eps), acc in T6.items():
        for s in range(5):
            cfg = config(STL, {"predictor.rho": rho, "predictor.eps": eps}, s)
            expected.append(flat(cfg))
            if s in seeds:
                trials.append(trial_rows(cfg, "stl10_directpred", acc + SEED_OFFSET[s], spectra=True))
    return trials, expected


T3_BASE = {"data": {"name": "stl10", "root": "data/stl10"}, "model": {"trunk": "resnet18"}, "train": {"epochs": 10}}
T3_ROWS = [("linear", 0.996), ("linear", 0.0), ("mlp", 0.996), ("mlp", 0.0)]
T3_COLS = [(False, True), (False, False), (True, True), (True, False)]  # (bias, symmetric)


def table3_trials() -> tuple[list[list[dict]], list[dict]]:
    """A Table-3-shaped sweep: predictor x EMA rows, bias x symmetric columns, 2 seeds.

    No EMA + symmetric W_p collapses (z_std 0.02, accuracy ~0.36); one linear/EMA/bias/sym seed
    diverges."""
    trials, expected = [], []
    for name, tau in T3_ROWS:
        for bias, sym in T3_COLS:
            for s in (0, 1):
                cfg = config(T3_BASE, {"predictor": {"name": name, "bias": bias, "symmetric": sym}, "ema.tau": tau}, s)
                expected.append(flat(cfg))
                collapse = tau == 0.0 and sym
                acc = (0.36 if collapse else 0.74 + (0.04 if name == "mlp" else 0.0)) + SEED_OFFSET[s * 2]
                status = "diverged" if (name, tau, bias, sym, s) == ("linear", 0.996, True, True, 1) else "ok"
                trials.append(trial_rows(cfg, "stl10_predictor", acc, z_std=0.02 if collapse else 0.8, status=status))
    return trials, expected


# ---------------------------------------------------------------- a folder as `ablate run` leaves it
TWO_PREDICTORS = """\
name: {name}
base:
  model: {{trunk: convnet, width: 8}}
  train: {{epochs: 10}}
grid:
  predictor.name: [linear, directpred]
seeds: [0, 1]
table: {{rows: [predictor.name], metric: probe_top1_best}}
"""


def fill_run_folder(folder: Any, tmp_path: Path, overrides: Mapping[str, Any] | None = None) -> list[Any]:
    """``folder`` (a SweepDir named after the sweep) as ``ablate run`` of the two-predictor sweep
    leaves it: the sweep file and overrides, one file of rows per trial (directpred 0.80, linear
    0.70, + 0.01 per seed), each trial's trunk weights. Returns the trials."""
    from ablate.config.trial import ModelConfig
    from ablate.models.trunks import build_trunk, export_state_dict
    from ablate.results.io import ArtifactStore, Expect, ResultsStore
    from ablate.sweep.load import read_sweep

    text = TWO_PREDICTORS.format(name=folder.name)
    (tmp_path / f"{folder.name}.yaml").write_text(text)
    sweep = read_sweep(tmp_path / f"{folder.name}.yaml", dict(overrides or {}))
    folder.sweep_file.write_text(text)
    folder.overrides_file.write_text(json.dumps(dict(overrides or {})))
    store = ResultsStore(folder, Expect(folder.name, SCHEMA))
    for t in sweep.trials:
        acc = 0.80 if t.config.predictor.name == "directpred" else 0.70
        store.add_many(trial_rows(t.config, folder.name, acc + 0.01 * t.config.seed))
        trunk = export_state_dict(build_trunk(ModelConfig(width=8), 1))
        ArtifactStore(folder.weights(t.trial_id)).save("trunk_final.pt", trunk)
    return list(sweep.trials)
