"""The edges of stop_collapsed, --protocol, compare and export: every trial is counted and shown as it
ended, and what a command cannot mean is one line naming the problem and the fix."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import ablate
from ablate.analysis.export import write_trunk
from ablate.analysis.plots import _suffix
from ablate.analysis.render import render
from ablate.analysis.report import counts_text, status_counts
from ablate.analysis.report_sections import trial_grid
from ablate.analysis.tables import build_table
from ablate.cli import main
from ablate.errors import UserError
from ablate.results.schema import COLLAPSED_STOPPED
from ablate.sweep.table_block import TableSpec


def stopped_frame() -> pd.DataFrame:
    """linear: 2 seeds run to epoch 10; none: 2 seeds the sweep's stop_collapsed ended at epochs 3 and 4."""
    rows = []
    for name, stops in (("linear", (None, None)), ("none", (3, 4))):
        for seed, stop in enumerate(stops):
            last = stop or 10
            for e in range(1, last + 1):
                ended = e == last and stop is not None
                rows.append(
                    {"trial_id": f"{name}{seed}", "seed": seed, "predictor.name": name, "epoch": e, "sweep": "s",
                     "is_final": e == last, "status": COLLAPSED_STOPPED if ended else "ok", "z_std": 0.5,
                     "collapsed": ended, "probe_top1_best": 0.5 + 0.01 * e, "wall_s": float(e)}
                )  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- stop_collapsed
def test_stopped_trials_are_counted_and_shown_in_the_report_and_the_figures():
    df = stopped_frame()
    counts = status_counts(df)
    assert counts["stopped"] == 2 and sum(counts[k] for k in ("ok", "diverged", "failed", "stopped", "unfinished")) == 4
    assert (
        counts_text(counts)
        == "4 trials: 2 ok (0 of them collapsed), 0 diverged, 0 failed, 2 stopped at collapse, 0 unfinished"
    )
    grid = trial_grid(df, ["predictor.name"], "z_std", 1.0)
    status = {r[1]: r[grid.header.index("status")] for r in grid.rows}
    assert status == {"linear": "ok", "none": "stopped at collapse"}
    assert _suffix(df[df["predictor.name"] == "none"]) == " (2 seeds, 2 stopped at collapse)"


def test_a_table_by_epoch_says_the_epoch_a_trial_was_stopped_at_not_the_column_its_counted_in():
    spec = TableSpec(rows=("predictor.name",), cols=("epoch",), epochs=(5, 10), metric="z_std", scale=1.0)
    table = build_table(stopped_frame(), spec)
    for col in ("epoch=5", "epoch=10"):
        assert table.get("name=none", col).stopped_at == (3, 4)
    assert render(table).count("collapsed at epochs 3, 4 (2 seeds)¶") == 2


# ---------------------------------------------------------------- --protocol
def test_protocol_max_on_a_table_of_chosen_epochs_and_on_a_non_probe_metric_is_refused():
    df = stopped_frame()
    with pytest.raises(UserError, match=r"^--protocol max takes each trial's best epoch, but this table shows chosen "
                       r"epochs \(5, 10\); use best or final$"):  # fmt: skip
        ablate.table(df, rows=["predictor.name"], cols=["epoch"], epochs=(5, 10), protocol="max")
    assert ablate.table(df, rows=["predictor.name"], cols=["epoch"], epochs=(5, 10), protocol="best").table.cells
    with pytest.raises(UserError) as err:
        ablate.compare_arms(df, {"predictor.name": "linear"}, {"predictor.name": "none"}, "z_std", protocol="final")
    assert str(err.value) == (
        "--protocol final applies to probe metrics (probe_top1_best, probe_top1), not 'z_std'; leave --protocol out"
    )  # a comparison is no table: the message does not speak of one


# ---------------------------------------------------------------- compare
def _arms() -> pd.DataFrame:
    rows = [
        {"trial_id": f"{p}{tau}{s}", "seed": s, "predictor.name": p, "ema.tau": tau, "is_final": True,
         "status": "ok", "epoch": 2, "probe_top1_best": base + tau / 10 + 0.001 * s}
        for p, base in (("linear", 0.7), ("mlp", 0.8)) for tau in (0.996, 0.0) for s in range(3)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_two_arms_compared_cell_by_cell_and_an_arm_compared_with_itself(tmp_path, capsys):
    df = _arms()
    cells = ablate.compare_arms(df, {"predictor.name": "mlp"}, {"predictor.name": "linear"}, by=["ema.tau"])
    assert dict(zip(cells["ema.tau"], cells["diff"].round(6))) == {"0.996": 0.1, "0": 0.1}
    with pytest.raises(UserError, match=r"^compare: --a predictor.name=mlp and --b predictor.name=mlp both pick 3 "
                       r"trial\(s\) \(.*\); give values that tell the arms apart$"):  # fmt: skip
        ablate.compare_arms(df, {"predictor.name": "mlp"}, {"predictor.name": "mlp"}, where={"ema.tau": 0})
    (tmp_path / "r").mkdir()
    df.to_parquet(tmp_path / "r" / "t.parquet")
    argv = ["compare", str(tmp_path / "r"), "--a", "predictor.name=mlp", "--b", "predictor.name=linear"]
    assert main([*argv, "--by", "ema.tau"]) == 0  # --by was ignored with --a/--b: the pooled refusal came instead
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("]")[0] for line in lines] == ["[ema.tau=0.996", "[ema.tau=0"]


# ---------------------------------------------------------------- export
def _trial_folder(tmp_path, status: str, config: dict) -> tuple:
    rows = [{"trial_id": "t1", "sweep": "s", "kind": config.pop("kind", "ssl"), "epoch": 4, "is_final": True,
             "status": status, "config_json": json.dumps(config), "probe_top1_best": 0.5}]  # fmt: skip
    (tmp_path / "s").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "s" / "t1.parquet")
    return tmp_path / "s", "t1"


@pytest.mark.parametrize(
    "status, said",
    [
        (COLLAPSED_STOPPED, "the sweep's stop_collapsed ended the trial at epoch 4 (collapsed), before its final "
         "weights; run it to the end to have them: ablate run {root} --set stop_collapsed=0"),
        ("diverged", "the trial diverged at epoch 4: it has no trained trunk to export; pick a finished one"),
        ("failed", "the trial failed with an error (see ablate status): it has no trained trunk to export; pick a "
         "finished one"),
    ],
)  # fmt: skip
def test_export_of_a_trial_that_did_not_finish_says_why_it_has_no_trunk(tmp_path, capsys, status, said):
    root, tid = _trial_folder(tmp_path, status, {"model": {"trunk": "convnet"}})
    with pytest.raises(UserError) as err:
        write_trunk(root, trial_id=tid, to=tmp_path / "x.pt")
    assert str(err.value) == f"export --trial {tid}: " + said.format(root=root)  # not "keep it with save.weights"
    assert main(["export", str(root), "--trial", tid, "--to", str(tmp_path / "x.pt")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_export_of_a_theory_trial_says_it_trains_no_trunk(tmp_path):
    root, tid = _trial_folder(tmp_path, "ok", {"kind": "linear_dynamics", "n1": 10, "predictor": "linear"})
    with pytest.raises(UserError, match=r"^export: trial t1 is a linear_dynamics trial, which trains no trunk"):
        write_trunk(root, trial_id=tid, to=tmp_path / "x.pt")


def test_export_to_a_name_that_is_no_pt_file_is_refused_before_anything_is_read(tmp_path):
    with pytest.raises(UserError, match=r"^export --to .*t.pth: expected a .pt file name, e.g. --to trunk.pt$"):
        write_trunk(tmp_path / "no such folder", trial_id="x", to=tmp_path / "t.pth")


def test_compare_names_the_arm_and_the_epochs_of_its_stopped_trials():
    with pytest.raises(UserError) as err:
        ablate.compare_arms(stopped_frame(), {"predictor.name": "linear"}, {"predictor.name": "none"}, "z_std")
    assert str(err.value).startswith(
        "compare: 2 trial(s) of predictor.name=none were ended at collapse by the sweep's stop_collapsed (epochs 3, 4)"
    )
