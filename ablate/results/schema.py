"""The results schema (the product's public interface): the columns of every row and their types.

A sweep's results are one Parquet file per trial (:mod:`ablate.results.layout`), each holding that
trial's rows: one per evaluated epoch. Every file of a sweep has the same Arrow schema (all config
leaves of every predictor variant, null where a leaf does not apply), so
``pandas.read_parquet("results/<sweep>")`` and any Arrow reader see one table. A row is the common
columns (identity, every config leaf under its dotted name, provenance) plus its kind's metrics
(:data:`METRICS`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import numbers
import platform
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import pyarrow as pa

from ablate.config.kinds import TrialKind, get_kind
from ablate.config.tree import flatten, to_dict
from ablate.config.trial import config_hash
from ablate.provenance import git_state, versions

# Columns every trial kind has. (name, arrow type, meaning) -- the README's schema table.
COMMON_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("sweep", pa.string(), "sweep name (empty for a lone `ablate trial`)"),
    ("trial_id", pa.string(), "12-hex hash of the resolved trial config (stable across machines)"),
    ("kind", pa.string(), "trial kind: ssl (pretraining) or linear_dynamics (theory)"),
    ("search", pa.string(), "what produced the trial: grid, cases or optuna"),
    ("seed", pa.int64(), "random seed"),
    ("epoch", pa.int64(), "epoch just finished (theory: evaluation index)"),
    ("step", pa.int64(), "optimizer steps so far"),
    ("is_final", pa.bool_(), "true on the last row of a trial"),
    ("status", pa.string(), "ok / diverged / failed / collapsed_stopped (ended by the sweep's stop_collapsed)"),
    ("error", pa.string(), "error text of a failed or diverged trial"),
    ("wall_s", pa.float64(), "seconds since the trial started"),
    (
        "device_s",
        pa.float64(),
        "seconds the trial computed on its device so far: its epochs' training and evaluation, summed over "
        "resumes (not start-up or waiting)",
    ),
    ("started_at", pa.string(), "UTC start time, ISO 8601"),
    ("device", pa.string(), "device the trial ran on (e.g. cpu, NVIDIA H100)"),
    (
        "node",
        pa.string(),
        "hostname of the machine that computed the row (a data-parallel trial: every worker's, comma-separated "
        "in rank order); rows from before a resume keep the node that computed them",
    ),
    ("git_sha", pa.string(), "commit of the ablate checkout"),
    ("git_dirty", pa.bool_(), "uncommitted changes in the checkout"),
    ("versions", pa.string(), "JSON: python, torch, torchvision, ray, ablate versions"),
    ("config_json", pa.string(), "JSON of the full resolved trial config"),
]

# Metrics of the pretraining (ssl) trial (ablate.train.loop).
SSL_METRICS: list[tuple[str, pa.DataType, str]] = [
    ("loss", pa.float64(), "mean training loss of the epoch (2 - 2cos per direction, summed over directions)"),
    ("knn_top1", pa.float64(), "kNN top-1 accuracy (k = eval.knn_k, cosine) on the test split"),
    ("probe_top1", pa.float64(), "linear-probe top-1 on the test split after the last probe epoch"),
    ("probe_top5", pa.float64(), "linear-probe top-5 after the last probe epoch"),
    ("probe_top1_best", pa.float64(), "best linear-probe top-1 over probe epochs (the paper's protocol)"),
    ("z_std", pa.float64(), "std of l2-normalised projections x sqrt(d): ~1 healthy, ~0 collapsed"),
    ("collapsed", pa.bool_(), "z_std < 0.1"),
    ("lr", pa.float64(), "trunk learning rate at the end of the epoch (derived)"),
    ("total_steps", pa.int64(), "steps the whole trial will take (derived)"),
    ("images_per_s", pa.float64(), "pretraining throughput of the epoch"),
    ("resumed_from_epoch", pa.int64(), "epoch of the checkpoint this trial last resumed from (null: never resumed)"),
    ("eig_align", pa.float64(), "mean over F's eigenvectors u_j of cos(W_p u_j, u_j) (Fig. 2); linear-type predictors"),
    ("commutator", pa.float64(), "||F W_p - W_p F||_F / (||F||_F ||W_p||_F) (Theorem 3)"),
    ("f_eigs", pa.list_(pa.float64()), "eigenvalues of F_hat (descending)"),
    ("wp_eigs", pa.list_(pa.float64()), "eigenvalues of the symmetric part of W_p, in F's eigenbasis order"),
]

# Metrics of the linear-network trial (ablate.theory.dynamics), in the paper's notation (Sec. 3-4).
THEORY_METRICS: list[tuple[str, pa.DataType, str]] = [
    ("t", pa.float64(), "time of the flow, step * dt"),
    ("loss", pa.float64(), "1/2 E||W_p W x1 - W_a x2||^2 at t (the linear model's BYOL loss)"),
    ("w_norm", pa.float64(), "||W||_F"),
    ("wp_norm", pa.float64(), "||W_p||_F"),
    ("wa_norm", pa.float64(), "||W_a||_F"),
    (
        "tau_eff",
        pa.float64(),
        "<W_a, W> / ||W||_F^2: the target's ratio tau in W_a ~ tau W (Sec. 4; < 1 while an EMA target lags)",
    ),
    ("f_max", pa.float64(), "largest eigenvalue of F = W X W^T"),
    ("f_eigs", pa.list_(pa.float64()), "eigenvalues s_j of F = W X W^T (descending)"),
    (
        "wp_eigs",
        pa.list_(pa.float64()),
        "p_j = u_j^T W_p u_j on F's eigenvectors, in f_eigs' order (W_p's eigenvalues once aligned)",
    ),
    (
        "s_modes",
        pa.list_(pa.float64()),
        "diagonal of F in the data basis: s_j of the fixed mode j (init: modes keeps W, W_p diagonal)",
    ),
    ("p_modes", pa.list_(pa.float64()), "diagonal of W_p in the data basis: p_j of the fixed mode j"),
    ("commutator", pa.float64(), "||F W_p - W_p F||_F / (||F||_F ||W_p||_F) (Theorem 3); null when F or W_p is 0"),
    ("commutator_abs", pa.float64(), "||F W_p - W_p F||_F (Theorem 3)"),
    (
        "commutator_log10",
        pa.float64(),
        "log10 of commutator (floored at 1e-300): readable in tables; about -16 is float64's floor",
    ),
    ("eig_align", pa.float64(), "mean over F's eigenvectors u_j of cos(W_p u_j, u_j) (Fig. 2)"),
    (
        "balance_residual",
        pa.float64(),
        "||B(t) - e^{-2 eta t} B(0)||_F / (||W W^T||_F + ||W_p^T W_p||_F / alpha_p + e^{-2 eta t} ||B(0)||_F), "
        "B = W W^T - W_p^T W_p / alpha_p (Theorem 1: 0 for a trained W_p with stop-gradient)",
    ),
    ("balance_log10", pa.float64(), "log10 of balance_residual (floored at 1e-300): readable in tables"),
    (
        "parabola_gap",
        pa.float64(),
        "max_j |s_j - p_j^2 / alpha_p| over the modes (data basis for init: modes, else F's eigenvectors) "
        "(Sec. 4: shrinks as e^{-2 eta t}, so modes approach the parabola s = p^2 / alpha_p)",
    ),
    (
        "k_min",
        pa.float64(),
        "smallest eigenvalue of K = (1+sigma^2)[(alpha_p/2) F + W_p^2 - tau/(1+sigma^2) W_p] + 1.5 eta I "
        "(Theorem 3: alignment when > 0); null outside X = I, X' = sigma^2 I, target simsiam, trained W_p",
    ),
    ("n_alive", pa.int64(), "number of eigenvalues of F above collapse_tol"),
    ("collapsed", pa.bool_(), "every eigenvalue of F is below collapse_tol"),
]

METRICS: dict[str, list[tuple[str, pa.DataType, str]]] = {"ssl": SSL_METRICS, "linear_dynamics": THEORY_METRICS}

Report = Callable[[dict[str, Any]], None]  # what a trial calls with each of its rows

COLLAPSE_Z_STD = 0.1  # z_std below this is a collapsed pretraining run
COLLAPSED_STOPPED = "collapsed_stopped"  # the status of a trial the sweep's stop_collapsed ended


def _arrow_type(tp: Any) -> pa.DataType:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _arrow_type(next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is Literal or tp is str:
        return pa.string()
    if origin is tuple:
        return pa.list_(_arrow_type(typing.get_args(tp)[0]))
    return {bool: pa.bool_(), int: pa.int64(), float: pa.float64()}.get(tp, pa.string())


def config_columns(cls: type, prefix: str = "") -> dict[str, pa.DataType]:
    """Arrow type of every config leaf, including the leaves of every variant of polymorphic nodes."""
    out: dict[str, pa.DataType] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            for variant in [tp, *(getattr(tp, "variants", None) or {}).values()]:
                for k, t in config_columns(variant, key).items():
                    out.setdefault(k, t)
        else:
            out[key] = _arrow_type(tp)
    return out


def schema_for(kind: TrialKind | str) -> pa.Schema:
    """The Arrow schema of every row of ``kind``: common columns, its metrics, its config leaves."""
    kind = get_kind(kind)
    cols = [(n, t) for n, t, _ in COMMON_COLUMNS + METRICS[kind.name]]
    names = {n for n, _ in cols}
    cols += [(k, t) for k, t in config_columns(kind.config_cls).items() if k not in names]
    return pa.schema(cols)


def metric_names(kind: TrialKind | str, numeric_only: bool = False) -> list[str]:
    """Names of ``kind``'s metric columns; ``numeric_only`` drops list columns."""
    out = []
    for name, tp, _ in METRICS[get_kind(kind).name]:
        if numeric_only and not (pa.types.is_integer(tp) or pa.types.is_floating(tp) or pa.types.is_boolean(tp)):
            continue
        out.append(name)
    return out


def finite(v: Any) -> bool:
    """A real number that is neither NaN nor infinite: a value that counts (bools are not numbers here)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows -> Arrow table with exactly ``schema``; unknown keys are an error (schema drift)."""
    rows = list(rows)
    extra = {k for r in rows for k in r} - set(schema.names)
    if extra:
        raise KeyError(f"row keys not in the results schema: {sorted(extra)}")
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def trial_columns(config: Any, kind: str, device: str, node: str | None = None) -> dict[str, Any]:
    """Identity + every config leaf (dotted) + provenance: the columns every row of one trial carries.
    ``node`` defaults to this machine's hostname."""
    tree = to_dict(config)
    sha, dirty = git_state()
    cols = {k: v for k, v in flatten(tree).items() if k != "kind"}
    cols.update(
        {
            "trial_id": config_hash(config),
            "kind": kind,
            "seed": getattr(config, "seed", 0),
            "status": "ok",
            "error": None,
            "is_final": False,
            "config_json": json.dumps(tree, sort_keys=True),
            "git_sha": sha,
            "git_dirty": dirty,
            "versions": versions(),
            "device": device,
            "node": platform.node() if node is None else node,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    return cols


def failed_row(config: Any, kind: str, error: str, device: str = "unknown", node: str | None = None) -> dict[str, Any]:
    """The one row a trial that raised leaves behind: status failed, with its error text."""
    return {**trial_columns(config, kind, device, node), "status": "failed", "error": error, "is_final": True}
