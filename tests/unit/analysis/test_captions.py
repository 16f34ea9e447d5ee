"""Captions say what the cells hold: the configuration of the rows (``{train.epochs}``, ``{t}``), not
the sweep file's values before a ``--set``; the cost table's caption is about cost."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis.cells import fill_caption
from ablate.analysis.render import render
from ablate.analysis.report import write_report
from ablate.analysis.tables import expected_configs
from ablate.errors import UserError
from ablate.sweep.load import read_sweep
from helpers.sweeps import trial_rows

REPO = Path(__file__).resolve().parents[3]
SMOKE = REPO / "sweeps" / "smoke.yaml"


def _smoke(epochs: int) -> tuple[object, pd.DataFrame]:
    sweep = read_sweep(SMOKE, {"train.epochs": epochs})
    rows = [r for t in sweep.trials for r in trial_rows(t.config, sweep.name, 0.9, epochs=(1, epochs))]
    return sweep, pd.DataFrame(rows).assign(device_s=lambda d: 3.0 * d.epoch)


@pytest.mark.parametrize("epochs", [2, 7])
def test_the_caption_says_the_epochs_the_trials_ran_in_every_format(epochs, tmp_path):
    sweep, df = _smoke(epochs)
    view = ablate.table(df, sweep)
    assert view.table.caption.startswith(
        f"Collapse monitor z_std (~1 healthy, ~0 collapsed) on digits, {epochs} epochs"
    )
    for fmt in ("terminal", "markdown", "latex", "html"):
        text = view.render(fmt)
        assert f"digits, {epochs} epochs" in text and "10 epochs" not in text, fmt
    for fmt, name in (("markdown", "r.md"), ("html", "r.html")):
        page = Path(
            write_report(df, sweep.table, tmp_path / name, sweep=sweep, fmt=fmt, expected=expected_configs(sweep))
        ).read_text()
        assert f"digits, {epochs} epochs (smoke)" in page and "10 epochs" not in page


def test_caption_fields_take_the_values_of_the_rows():
    rows = [{"train.epochs": 40}, {"train.epochs": 5}, {"train.epochs": 40, "t": 200.00000000000003}, {"t": None}]
    assert fill_caption("{train.epochs} epochs", rows) == "5, 40 epochs"  # every value the cells hold, in order
    assert fill_caption("T = {t}; T = {t:.1f}", rows) == "T = 200; T = 200.0"
    assert fill_caption("{{literal}} and {nothing}", rows, known={"nothing"}) == "{literal} and —"
    assert fill_caption("no fields: 10 epochs", rows) == "no fields: 10 epochs"
    with pytest.raises(
        UserError, match=r"^table.caption: \{train.epoch\} is not a config key .*did you mean 'train.epochs'"
    ):
        fill_caption("{train.epoch} epochs", rows, known={"train.epochs", "t"})
    with pytest.raises(UserError, match=r"^table.caption: \{t:d\}: 'd' cannot format 200.00000000000003"):
        fill_caption("{t:d}", rows)


def test_a_theory_caption_says_the_horizon_its_rows_reached():
    sweep = read_sweep(REPO / "sweeps" / "theory_collapse.yaml", {"steps": 200, "seeds": [0, 1]})
    rows = []
    for t in sweep.trials:
        cfg = {k: v for k, v in t.config.__dict__.items() if not isinstance(v, (list, tuple, dict))}
        rows.append(
            {
                **cfg,
                "trial_id": t.trial_id,
                "kind": "linear_dynamics",
                "epoch": 4,
                "is_final": True,
                "status": "ok",
                "t": 200 * cfg["dt"],
                "w_norm": 1.0,
                "collapsed": False,
            }
        )
    caption = ablate.table(pd.DataFrame(rows), sweep).table.caption
    assert caption.startswith("||W||_F at T = 20 (0.000 = collapsed, Theorem 2) (theory_collapse).")


def test_the_cost_table_is_captioned_and_labelled_as_cost_without_the_collapse_footnote():
    sweep, df = _smoke(2)
    df["z_std"], df["collapsed"] = 0.05, True  # all collapsed: z_std's footnote must not follow to the cost table
    assert "‡ a seed collapsed" in ablate.table(df, sweep).render()
    view = ablate.table(df, sweep, cost=True)
    caption = view.table.caption
    assert caption.startswith("Device time: measured CPU core-seconds per trial (device_s x its share of the device)")
    assert "sweep total 48 CPU core-seconds (smoke). CPU core-seconds per trial; mean" in caption
    for fmt in ("terminal", "markdown", "latex", "html"):
        text = view.render(fmt)
        assert "Collapse monitor" not in text and "collapsed" not in text and "device_cost" not in text, fmt
        assert not re.search(r"device\\?_cost", text), fmt
    one_col = ablate.table(df, sweep, cols=[], rows=["predictor.name", "ema.tau"], cost=True)
    assert "CPU core-seconds per trial" in one_col.render().splitlines()[2]  # the column's header
    with pytest.raises(UserError, match=r"^table --cost shows each trial's measured device time.*--protocol"):
        ablate.table(df, sweep, cost=True, protocol="max")
    recs = list(csv.DictReader(io.StringIO(render(view.table, "csv"))))
    assert {r["metric"] for r in recs} == {"device_cost"}  # scripts keep the column's name
