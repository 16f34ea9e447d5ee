"""The results schema (the product's public interface): the columns of every row and their types.

A sweep's results are one Parquet file per trial (:mod:`ablate.results.layout`), each holding that
trial's rows: one per evaluated epoch. Every file of a sweep has the same Arrow schema (all config
leaves of every predictor variant, null where a leaf does not apply), so
``pandas.read_parquet("results/<sweep>")`` and any Arrow reader see one table. A row is the common
columns (:data:`COMMON_COLUMNS`: identity, provenance), every config leaf under its dotted name, and
its kind's metrics (the kind record's ``metrics``, :mod:`ablate.kinds`).
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa

from ablate.config.tree import flatten, to_dict
from ablate.provenance import git_state, versions

Column = tuple[str, pa.DataType, str]  # (name, Arrow type, meaning): the docs' schema tables read these

# Columns every trial kind has.
COMMON_COLUMNS: list[Column] = [
    ("sweep", pa.string(), "sweep name (empty for a lone `ablate trial`)"),
    ("trial_id", pa.string(), "12-hex hash of the resolved config and the plugins it uses (stable across machines)"),
    ("kind", pa.string(), "trial kind: ssl (pretraining), linear_dynamics (theory) or a plugin's"),
    ("plugin", pa.string(), "plugins whose predictor, dataset or kind the trial uses, comma-separated; null: none"),
    ("plugin_sha256", pa.string(), "the sha256 of each plugin's source, in the order of plugin (part of the trial_id)"),
    ("search", pa.string(), "what produced the trial: grid, cases or optuna"),
    (
        "derived_from",
        pa.string(),
        "the longer trial whose run these rows were read from (its first epochs, where nothing depends on the "
        "length: share_prefix); null: the trial ran itself",
    ),
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


def trial_columns(
    config: Any, kind: str, trial_id: str, plugins: Sequence[Any], seed: int, device: str, node: str | None = None
) -> dict[str, Any]:
    """Identity + every config leaf (dotted) + provenance: the columns every row of one trial carries.
    ``plugins`` are the :class:`ablate.config.registry.Origin` of the plugins the trial uses; ``node``
    defaults to this machine's hostname."""
    tree = to_dict(config)
    sha, dirty = git_state()
    cols = {k: v for k, v in flatten(tree).items() if k != "kind"}
    cols.update(
        {
            "trial_id": trial_id,
            "kind": kind,
            "plugin": ",".join(p.plugin for p in plugins) or None,
            "plugin_sha256": ",".join(p.sha256 for p in plugins) or None,
            "seed": seed,
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


def failed_row(columns: Mapping[str, Any], error: str) -> dict[str, Any]:
    """The one row a trial that raised leaves behind (its :func:`trial_columns`): status failed, with its error."""
    return {**columns, "status": "failed", "error": error, "is_final": True}
