"""One trial in this process, outside any sweep and without Ray (``ablate trial``, ``ablate.run_trial``).

The config comes from a sparse mapping, a built config or a YAML file of overrides, with ``--set``
dotted keys on top; a ``kind`` key picks the trial kind (default ``ssl``). The rows come back as a
DataFrame in the results schema. With an output file the rows are written after every row (a crash
keeps what was done) and the trunk weights beside it (:func:`ablate.results.layout.lone_trial_weights`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.config.tree import Source, merge, set_dotted, to_dict
from ablate.config.yamlfile import read_yaml
from ablate.errors import UserError
from ablate.kinds.registry import DEFAULT_KIND, KINDS, TrialKind, get_kind
from ablate.results.io import ArtifactStore, write_table
from ablate.results.layout import TRIAL_SUFFIX, lone_trial_weights
from ablate.results.location import Location
from ablate.results.schema import to_table

# Top-level keys of a sweep file that no trial config has (ablate.sweep.schema.SweepFile; this room
# does not import the sweep room, and a unit test keeps the two in step).
SWEEP_ONLY_KEYS = ("name", "base", "grid", "cases", "seeds", "search")


def kind_of(config: Any) -> TrialKind:
    """The kind of a built config (its class is a kind's ``Config``), else the default kind."""
    for kind in KINDS.values():
        if type(config) is kind.Config:
            return kind
    return get_kind(DEFAULT_KIND)


def trial_config(config: Any, overrides: Mapping[str, Any]) -> tuple[TrialKind, Any]:
    """(kind, strict config) of a sparse mapping, a built config or a YAML file, with dotted
    ``overrides`` on top; a mistake names the file line (or ``--set``)."""
    src = Source("--set")
    if isinstance(config, (str, Path)):
        tree, lines, _ = read_yaml(config)
        if not isinstance(tree, dict):
            raise UserError(f"{config}: expected a mapping of config keys, e.g. 'optim: {{lr: 0.03}}'")
        if any(key in tree for key in SWEEP_ONLY_KEYS):
            raise UserError(
                f"{config} is a sweep file; run it with `ablate run {config}` (ablate trial takes one trial's config)"
            )
        src = Source(str(config), lines)
    elif dataclasses.is_dataclass(config):
        tree = {"kind": kind_of(config).name, **to_dict(config)}
    else:
        tree = merge(dict(config or {}), {})
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    kind = get_kind(tree.get("kind", DEFAULT_KIND), src)
    return kind, kind.build(tree, src)


def run_single(
    config: Any,
    overrides: Mapping[str, Any],
    *,
    report: Callable[[dict], None] | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Run one trial; its rows as a DataFrame. With ``out`` (a ``.parquet`` file): the rows there after
    every row, the weights beside it, and a failed row there when the trial raises (which propagates)."""
    kind, cfg = trial_config(config, overrides)
    target = Path(out) if out is not None else None
    if target is not None and target.suffix != TRIAL_SUFFIX:
        raise UserError(f"--out {target}: expected a .parquet file name, e.g. --out trial.parquet")
    columns = {"sweep": "", **kind.columns(cfg)}
    rows: list[dict] = []

    def save() -> None:
        if target is not None:
            write_table(Location.parse(target), to_table(rows, kind.schema))

    def on_row(row: dict) -> None:
        rows.append({**columns, **row})
        save()
        if report is not None:
            report(row)

    artifacts = ArtifactStore(lone_trial_weights(target)) if target is not None else None
    try:
        kind.run(cfg, on_row, None, artifacts, None)
    except UserError:
        raise
    except Exception as e:  # the trial failed: keep its rows and record why
        rows.append({"sweep": "", **kind.failed_row(cfg, f"{type(e).__name__}: {e}")})
        save()
        raise
    # through the results schema: the same columns and types as a results folder
    return to_table(rows, kind.schema).to_pandas() if rows else pd.DataFrame()


def run_many(configs: Iterable[Any], sweep: str = "") -> pd.DataFrame:
    """The rows of several trials run one after the other in this process, as one results-shaped
    DataFrame (for small in-process studies: theory trials integrate in seconds)."""
    frames = [run_single(cfg, {}) for cfg in configs]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(df):
        df["sweep"] = sweep
    return df
