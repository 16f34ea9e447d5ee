"""The results schema (the product's public interface) and crash-safe Parquet IO.

A sweep's results are a folder ``results/<sweep>/`` of Parquet files, one per trial
(``<trial_id>.parquet``), each holding that trial's rows: one per evaluated epoch. Every file of a
sweep has the same Arrow schema (all config leaves of every predictor variant, null where a leaf
does not apply), so ``pandas.read_parquet("results/<sweep>")`` and any Arrow reader see one table.
Files are written to a hidden temporary name and renamed into place, so a reader never sees a
half-written file and an interrupted writer leaves the previous version intact. Everything in the
folder that is not results starts with ``_`` (or ``.``), which Arrow's dataset discovery skips.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ablate.configtree import flatten

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
    ("status", pa.string(), "ok / diverged / failed"),
    ("error", pa.string(), "error text of a failed or diverged trial"),
    ("wall_s", pa.float64(), "seconds since the trial started"),
    ("started_at", pa.string(), "UTC start time, ISO 8601"),
    ("device", pa.string(), "device the trial ran on (e.g. cpu, NVIDIA H100)"),
    ("git_sha", pa.string(), "commit of the ablate checkout"),
    ("git_dirty", pa.bool_(), "uncommitted changes in the checkout"),
    ("versions", pa.string(), "JSON: python, torch, torchvision, ray, ablate versions"),
    ("config_json", pa.string(), "JSON of the full resolved trial config"),
]

# Metrics of the pretraining (ssl) trial.
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

COLLAPSE_Z_STD = 0.1


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


def schema_for(config_cls: type, metrics: list[tuple[str, pa.DataType, str]]) -> pa.Schema:
    cols = [(n, t) for n, t, _ in COMMON_COLUMNS + metrics]
    names = {n for n, _ in cols}
    cols += [(k, t) for k, t in config_columns(config_cls).items() if k not in names]
    return pa.schema(cols)


def to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows -> Arrow table with exactly ``schema``; unknown keys are an error (schema drift)."""
    rows = list(rows)
    extra = {k for r in rows for k in r} - set(schema.names)
    if extra:
        raise KeyError(f"row keys not in the results schema: {sorted(extra)}")
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def atomic_write(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` via a hidden temp file + rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def trial_path(results_dir: str | Path, trial_id: str) -> Path:
    return Path(results_dir) / f"{trial_id}.parquet"


def write_trial(results_dir: str | Path, trial_id: str, rows: list[Mapping[str, Any]], schema: pa.Schema) -> Path:
    """Replace the trial's file with ``rows`` (all rows so far), atomically."""
    path = trial_path(results_dir, trial_id)
    atomic_write(to_table(rows, schema), path)
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """All rows of a results folder (or one Parquet file) as a DataFrame; empty if there are none."""
    path = Path(path)
    if path.is_dir() and not any(path.glob("*.parquet")):
        return pd.DataFrame()
    return pd.read_parquet(path)


def config_row(config_tree: Mapping[str, Any]) -> dict[str, Any]:
    """The config leaves of a resolved config as dotted result columns."""
    return flatten(config_tree)
