"""Which probe number stands for a trial (``--protocol`` of table, plot, report, compare).

The paper reports the best linear-probe accuracy over the 50 probe epochs (``probe_top1_best``) of
the final pretraining epoch: protocol ``best``, the default. ``final`` takes the accuracy after the
last probe epoch (``probe_top1``). ``max`` takes the best ``probe_top1_best`` over every evaluated
pretraining epoch of a trial: the authors' tools2/stats.py (``--key_stats acc --topk_mean 1``)
aggregates their logs that way, so the paper's numbers may be that; it reads higher than ``best``
whenever accuracy peaks before the last epoch. ``top<k>`` (``top5``) takes the mean of a trial's k best
``probe_top1_best`` over its evaluated epochs (all of them when it has fewer than k): that analysis
tool's ``--topk_mean`` default, 5, when the paper appeared (``utils_stats.process_func``: values sorted
best first, the mean of the first k). A protocol is a reading of the linear probe: under ``max`` the
probe's columns come from that best epoch, every other metric (kNN, z_std) stays the final epoch's.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pandas as pd

from ablate.errors import UserError
from ablate.kinds.registry import KINDS
from ablate.results.io import final_rows
from ablate.sweep.table_block import TableSpec

PROTOCOLS = {"probe_top1_best": "best of probe epochs (paper)", "probe_top1": "final probe epoch"}
# --protocol NAME -> (the probe metric, which pretraining epoch gives a trial's value)
PROTOCOL_SPECS: dict[str, tuple[str, str]] = {
    "best": ("probe_top1_best", "final"),
    "final": ("probe_top1", "final"),
    "max": ("probe_top1_best", "max"),
    "top5": ("probe_top1_best", "top5"),
}
TOP_K = re.compile(r"top([1-9][0-9]{0,5})")  # top<k>: the mean of a trial's k best evaluated epochs


def top_k(over_epochs: str) -> int | None:
    """k of ``top<k>`` (the mean of a trial's k best evaluated epochs), else None."""
    m = TOP_K.fullmatch(over_epochs)
    return int(m.group(1)) if m else None


def over_epochs_text(over_epochs: str) -> str:
    """How a table's caption says which pretraining epochs give a trial's value."""
    k = top_k(over_epochs)
    if k is not None:
        return f"mean of the {k} best evaluated pretraining epochs"
    return "max over evaluated pretraining epochs" if over_epochs == "max" else "at the final epoch"


def with_protocol(spec: TableSpec, protocol: str | None) -> TableSpec:
    """The spec with a probe protocol of :data:`PROTOCOL_SPECS` (None: the spec as it is)."""
    if protocol is None:
        return spec
    if protocol not in PROTOCOL_SPECS and top_k(str(protocol)) is None:
        raise UserError(
            f"--protocol {protocol!r}: choose best (the paper's best of probe epochs), final (the last probe "
            "epoch), max (best of probe epochs, max over pretraining epochs) or top<k>, e.g. top5 (their mean "
            "over the k best pretraining epochs)"
        )
    if spec.metric not in PROTOCOLS:
        raise UserError(
            f"--protocol {protocol} applies to probe metrics ({', '.join(PROTOCOLS)}), not {spec.metric!r}; "
            "leave --protocol out"
        )
    metric, over = PROTOCOL_SPECS.get(protocol, ("probe_top1_best", protocol))
    if over != "final" and "epoch" in (*spec.rows, *spec.cols):  # a results column a table may lay out (Table 8)
        raise UserError(
            f"--protocol {protocol} takes each trial's best epoch, but this table shows chosen epochs "
            f"({', '.join(map(str, spec.epochs)) or 'epoch is one of its axes'}); use best or final"
        )
    return dataclasses.replace(spec, metric=metric, over_epochs=over)


# the linear probe's numbers, what a protocol picks: the probe metrics of the kinds that have a probe
PROBE_COLUMNS = tuple(dict.fromkeys(m for kind in KINDS.values() for m in kind.probe_metrics))


def trial_value_row(rows: pd.DataFrame, last: dict[str, Any], metric: str, over_epochs: str) -> dict[str, Any]:
    """A trial's row for a table cell or a comparison: its final row ``last``, where ``over_epochs`` is
    ``max`` carrying the linear probe's numbers (:data:`PROBE_COLUMNS`) of its best evaluated epoch by
    ``metric``, where it is ``top<k>`` the mean of ``metric`` over its k best evaluated epochs. Only the
    probe's: kNN, z_std, the loss and the status stay the final row's (a protocol is how the probe is
    read, not a choice of checkpoint for every metric; a trial that diverged counts as diverged)."""
    if over_epochs == "final" or last.get("status") != "ok":
        return last
    ok = rows[(rows["status"] == "ok") & rows[metric].notna()]
    if ok.empty:
        return last
    k = top_k(over_epochs)
    if k is not None:  # tools2's topk_mean: the k best values, all of them when there are fewer
        return {**last, metric: float(ok[metric].astype(float).nlargest(k).mean())}
    best = ok.loc[ok[metric].astype(float).idxmax()]
    return {**last, **{k: best[k] for k in PROBE_COLUMNS if k in best.index}}


def protocol_rows(df: pd.DataFrame, metric: str, over_epochs: str) -> pd.DataFrame:
    """One row per trial (:func:`trial_value_row`): what a comparison of ``metric`` under the protocol counts."""
    if df.empty or over_epochs == "final" or "trial_id" not in df.columns:
        return df
    out = [trial_value_row(rows, last, metric, over_epochs) for last, rows in _final_and_rows(df)]
    return pd.DataFrame(out)


def _final_and_rows(df: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    final = final_rows(df).set_index("trial_id", drop=False)
    return [(final.loc[tid].to_dict(), rows) for tid, rows in df.groupby("trial_id", sort=False) if tid in final.index]


def metric_under(metric: str, protocol: str | None) -> tuple[str, str]:
    """(the metric, which pretraining epoch counts) of a comparison of ``metric`` under ``protocol``."""
    spec = with_protocol(TableSpec(metric=metric), protocol)
    return spec.metric, spec.over_epochs
