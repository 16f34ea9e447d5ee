"""One pretraining trial in this process, outside any sweep (``ablate trial``, ``ablate.run_trial``).

The config comes from a sparse mapping, a TrialConfig or a YAML file of overrides, with ``--set``
dotted keys on top; the rows come back as a DataFrame in the results schema. With an output file
the rows are written after every row (a crash keeps what was done) and the trunk weights beside it
(:func:`ablate.results.layout.lone_trial_weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.config.tree import Source, merge, set_dotted, to_dict
from ablate.config.trial import TrialConfig, load_trial_config
from ablate.config.yamlfile import read_yaml
from ablate.errors import UserError
from ablate.results.io import ArtifactStore, write_table
from ablate.results.layout import TRIAL_SUFFIX, lone_trial_weights
from ablate.results.location import Location
from ablate.results.schema import failed_row, schema_for, to_table
from ablate.train.loop import pretrain

# Top-level keys of a sweep file that no trial config has (ablate.sweep.schema.SweepFile; this room
# does not import the sweep room, and a unit test keeps the two in step).
SWEEP_ONLY_KEYS = ("name", "base", "grid", "cases", "seeds", "search")


def trial_config(config: Any, overrides: Mapping[str, Any]) -> TrialConfig:
    """The strict config of a sparse mapping, a TrialConfig or a YAML file, with dotted ``overrides``
    on top; a mistake names the file line (or ``--set``)."""
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
    else:
        tree = to_dict(config) if isinstance(config, TrialConfig) else merge(dict(config or {}), {})
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return load_trial_config(tree, src)


def run_single(
    config: Any,
    overrides: Mapping[str, Any],
    *,
    report: Callable[[dict], None] | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Run one trial; its rows as a DataFrame. With ``out`` (a ``.parquet`` file): the rows there after
    every row, the weights beside it, and a failed row there when the trial raises (which propagates)."""
    cfg = trial_config(config, overrides)
    schema = schema_for("ssl")
    target = Path(out) if out is not None else None
    if target is not None and target.suffix != TRIAL_SUFFIX:
        raise UserError(f"--out {target}: expected a .parquet file name, e.g. --out trial.parquet")
    rows: list[dict] = []

    def save() -> None:
        if target is not None:
            write_table(Location.parse(target), to_table(rows, schema))

    def on_row(row: dict) -> None:
        rows.append({"sweep": "", **row})
        save()
        if report is not None:
            report(row)

    artifacts = ArtifactStore(lone_trial_weights(target)) if target is not None else None
    try:
        pretrain(cfg, on_row, artifacts=artifacts)
    except UserError:
        raise
    except Exception as e:  # the trial failed: keep its rows and record why
        rows.append({"sweep": "", **failed_row(cfg, "ssl", f"{type(e).__name__}: {e}")})
        save()
        raise
    # through the results schema: the same columns and types as a results folder
    return to_table(rows, schema).to_pandas() if rows else pd.DataFrame()
