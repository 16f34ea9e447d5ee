"""What a sweep's trials cost, measured: device-hours per table cell and for the whole sweep
(``ablate table --cost``, the report). The estimate before a run is :mod:`ablate.train.cost`."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from ablate.errors import UserError
from ablate.results.io import final_rows
from ablate.sweep.table_block import TableSpec

HOUR_FROM_S = 360  # from six minutes up a cost reads in hours; below, in seconds (not as a column of 0.000)


def device_share(sweep: Any) -> tuple[float, str]:
    """Each trial's share of its device and the device's name: ``resources.gpu`` GPUs, else
    ``resources.cpu`` CPU cores (one core when the sweep is not known)."""
    if sweep is None:
        return 1.0, "CPU core"
    r = sweep.resources
    return (r.gpu, "GPU") if r.gpu > 0 else (r.cpu, "CPU core")


def in_units(seconds: float, device: str) -> str:
    """``seconds`` of ``device`` time as text, e.g. ``26.5 GPU-hours`` or ``14.2 CPU core-seconds``."""
    return f"{seconds / 3600:.3g} {device}-hours" if seconds >= HOUR_FROM_S else f"{seconds:.3g} {device}-seconds"


def device_cost(df: pd.DataFrame, sweep: Any) -> tuple[pd.DataFrame, str]:
    """(the rows with a ``device_cost`` column, its unit): each row's ``device_s`` times the trial's
    share of its device, in hours, or in seconds when the typical trial took under six minutes. The
    collapse flag is left out: collapse says how a trial learned, not what it cost, and its footnote
    ("it is in the mean: collapse is a result") would be about another table."""
    if "device_s" not in df.columns or df["device_s"].isna().all():
        raise UserError("table --cost: these results have no device_s column (written before it existed); rerun them")
    share, device = device_share(sweep)
    seconds = df["device_s"] * share
    df = df.drop(columns=["collapsed"], errors="ignore")
    if final_rows(df)["device_s"].median() * share >= HOUR_FROM_S:
        return df.assign(device_cost=seconds / 3600), f"{device}-hours"
    return df.assign(device_cost=seconds), f"{device}-seconds"


def cost_spec(df: pd.DataFrame, spec: TableSpec, unit: str) -> TableSpec:
    """``spec`` turned into the table of measured ``unit`` per seed: its rows and columns, none of its
    metric's caption, protocol, paper or scale; the metric named by its unit and the sweep's total in
    the caption."""
    total = final_rows(df)["device_cost"].sum()
    share = "device_s x its share of the device"
    caption = f"Device time: measured {unit} per trial ({share}); sweep total {total:.3g} {unit}"
    return dataclasses.replace(
        spec,
        metric="device_cost",
        scale=1.0,
        digits=3 if unit.endswith("hours") else 1,
        top5=None,
        paper=None,
        caption=caption,
        over_epochs="final",
        labels={**spec.labels, "device_cost": f"{unit} per trial"},
    )
