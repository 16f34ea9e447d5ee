"""What a sweep's trials cost, measured: device-hours per table cell and for the whole sweep
(``ablate table --cost``, the report). The estimate before a run is :mod:`ablate.train.cost`."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from ablate.errors import UserError
from ablate.results.io import final_rows
from ablate.sweep.table_block import TableSpec


def device_hours(df: pd.DataFrame, sweep: Any) -> tuple[pd.DataFrame, str]:
    """(the rows with a ``device_hours`` column, its unit): each row's ``device_s`` times the trial's
    share of its device (``resources.gpu`` GPUs, else ``resources.cpu`` cores), in hours."""
    if "device_s" not in df.columns or df["device_s"].isna().all():
        raise UserError("table --cost: these results have no device_s column (written before it existed); rerun them")
    gpu = sweep.resources.gpu if sweep is not None else 0.0
    share, unit = (
        (gpu, "GPU-hours") if gpu > 0 else ((sweep.resources.cpu if sweep is not None else 1.0), "CPU core-hours")
    )
    return df.assign(device_hours=df["device_s"] * share / 3600), unit


def cost_spec(df: pd.DataFrame, spec: TableSpec, unit: str) -> TableSpec:
    """``spec`` turned into the table of measured ``unit`` per seed, the sweep's total in its caption."""
    total = final_rows(df)["device_hours"].sum()
    title = f"{spec.caption}: " if spec.caption else ""
    caption = f"{title}measured {unit} per trial (device_s x its share of the device); sweep total {total:.3g} {unit}"
    return dataclasses.replace(spec, metric="device_hours", scale=1.0, digits=3, top5=None, paper=None, caption=caption)
