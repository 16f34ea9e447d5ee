"""Paper-shaped tables: cell statistics, flags, paper matching, every output format (golden files),
the paper reference file and the shipped paper sweeps.

Golden files live in tests/unit/analysis/golden/. After an intended change of the output, regenerate them
with ``ABLATE_UPDATE_GOLDEN=1 pytest tests/unit/analysis/test_tables.py`` and review the diff.
"""

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ablate
from ablate.analysis.paper import canon, load_paper
from ablate.analysis.protocols import with_protocol
from ablate.analysis.render import render
from ablate.analysis.tables import axis_label, build_table, expected_configs
from ablate.config.tree import build
from ablate.config.trial import TrialConfig
from ablate.errors import UserError
from ablate.kinds.ssl import load_trial_config
from ablate.results.layout import PAPER_FILE
from ablate.results.schema import config_columns
from ablate.sweep.load import read_sweep
from ablate.sweep.table_block import TableSpec
from ablate.sweep.validated import undot
from helpers.sweeps import (
    SEED_OFFSET,
    STL,
    T3_BASE,
    T6,
    config,
    expansion_rows,
    table3_trials,
    table6_trials,
    trial_rows,
    write_sweep,
)

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"

T6_SPEC = build(
    TableSpec,
    {
        "rows": ["predictor.rho"],
        "cols": ["predictor.eps"],
        "paper": "table6",
        "caption": "Table 6: DirectPred, rho x eps",
    },
)
T3_SPEC = build(
    TableSpec,
    {
        "rows": ["predictor.name", "ema.tau"],
        "cols": ["predictor.bias", "predictor.symmetric"],
        "paper": "table3",
        "labels": {
            "predictor.name": "predictor",
            "ema.tau": "EMA",
            "predictor.name=linear": "linear",
            "predictor.name=mlp": "2-layer",
            "ema.tau=0.996": "EMA",
            "ema.tau=0.0": "no EMA",
            "predictor.bias=false": "no bias",
            "predictor.bias=true": "bias",
            "predictor.symmetric=true": "sym",
            "predictor.symmetric=false": "regular",
        },
    },
)


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ABLATE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; run with ABLATE_UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"output differs from {path}"


@pytest.fixture(scope="module")
def t6(tmp_path_factory):
    trials, expected = table6_trials()
    return write_sweep(tmp_path_factory.mktemp("t6") / "stl10_directpred", trials), expected


@pytest.fixture(scope="module")
def t3(tmp_path_factory):
    trials, expected = table3_trials()
    return write_sweep(tmp_path_factory.mktemp("t3") / "stl10_predictor", trials), expected


# ---------------------------------------------------------------- cells
def test_cells_are_mean_and_sample_std_over_seeds_of_the_final_epoch(t6):
    df, expected = t6
    table = build_table(df, T6_SPEC, expected=expected)
    assert len(table.cells) == 8 and table.seeds == (0, 1, 2, 3, 4)
    cell = table.get("rho=0.3", "eps=0.1")
    assert cell.mean == pytest.approx(77.86) and cell.n == 5 and cell.expected == 5
    assert cell.std == pytest.approx(100 * math.sqrt(sum(o * o for o in (0.004, 0.002, 0, 0.002, 0.004)) / 4))
    assert cell.flags == frozenset() and len(cell.trial_ids) == 5
    # the earlier epoch's (lower) values are not in the cell
    assert min(c.mean for c in table.cells.values()) == pytest.approx(75.06)


def test_rows_and_columns_follow_the_expansion_order_else_sorted(t6):
    df, expected = t6
    rev = sorted(expected, key=lambda c: (-c["predictor.rho"], -c["predictor.eps"]))
    table = build_table(df, T6_SPEC, expected=rev)
    assert [table.row_label(r) for r in table.row_values] == ["rho=0.5", "rho=0.3"]
    assert [table.col_label(c) for c in table.col_values] == ["eps=0.5", "eps=0.1", "eps=0.01", "eps=0"]
    plain = build_table(df, T6_SPEC)  # no expansion: sorted numerically, not as text
    assert [table.col_label(c) for c in plain.col_values] == ["eps=0", "eps=0.01", "eps=0.1", "eps=0.5"]


def test_partial_sweep_shows_n_per_cell_and_marks_missing_cells(tmp_path):
    trials, expected = table6_trials(seeds=(0, 1, 2))
    trials = [t for t in trials if not (t[0]["predictor.rho"] == 0.5 and t[0]["predictor.eps"] == 0.5)]
    cfg = config(STL, {"predictor.rho": 0.3, "predictor.eps": 0.0}, 3)
    trials.append(trial_rows(cfg, "stl10_directpred", 0.9, finished=False))  # interrupted: not in the cell
    df = write_sweep(tmp_path / "partial", trials)
    table = build_table(df, T6_SPEC, expected=expected)
    missing = table.get("rho=0.5", "eps=0.5")
    assert missing.mean is None and missing.n == 0 and "missing" in missing.flags
    half = table.get("rho=0.3", "eps=0")
    assert half.n == 3 and half.expected == 5 and half.mean == pytest.approx(T6[(0.3, 0)] * 100 - 0.2)
    text = render(table)
    assert "— (n=0/5)" in text and "(n=3/5)" in text and "no finished seed yet" in text
    golden("table6_partial.txt", text)
    # without the expansion, a combination of seen values with no trial is still marked missing
    bare = build_table(df, T6_SPEC)
    assert "missing" in bare.get("rho=0.5", "eps=0.5").flags and bare.get("rho=0.3", "eps=0").expected is None


def test_diverged_and_failed_seeds_are_flagged_and_left_out_collapsed_seeds_stay_in(t3, tmp_path):
    df, expected = t3
    table = build_table(df, T3_SPEC, expected=expected)
    div = table.get("linear, EMA", "bias, sym")
    assert div.flags == {"diverged"} and div.n == 1 and div.expected == 2
    collapsed = table.get("linear, no EMA", "no bias, sym")
    assert collapsed.flags == {"collapsed"} and collapsed.n == 2 and collapsed.mean == pytest.approx(35.8)
    assert table.get("2-layer, EMA", "no bias, regular").flags == frozenset()
    text = render(table)
    assert "73.60 (n=1/2)†" in text and "35.80 ± 0.28 (n=2)‡" in text
    assert "† a seed diverged" in text and "‡ a seed collapsed" in text
    failed = trial_rows(config(T3_BASE, {"predictor": {"name": "linear"}}, 7), "s", 0.7, status="failed")
    df2 = write_sweep(tmp_path / "f", [failed])
    cell = build_table(df2, TableSpec(rows=("predictor.name",))).cells[(("linear",), ())]
    assert cell.flags == {"failed", "missing"} and cell.mean is None
    assert "§ a seed failed" in render(build_table(df2, TableSpec(rows=("predictor.name",))))


def test_paper_numbers_and_differences(t3):
    df, expected = t3
    table = build_table(df, T3_SPEC, load_paper(), expected)
    cell = table.get("linear, no EMA", "no bias, sym")
    assert (cell.paper.mean, cell.paper.std) == (36.62, 1.85)
    assert cell.diff == pytest.approx(35.8 - 36.62)
    assert table.get("2-layer, EMA", "bias, regular").paper.mean == 78.53
    assert all(c.paper is not None and c.paper.table == "table3" for c in table.cells.values())
    assert "35.80 ± 0.28 (2)‡ | paper 36.62 ± 1.85 | Δ -0.82" in render(table, "markdown").replace("\\|", "|")


def test_epoch_axis_takes_each_trials_row_at_that_epoch(tmp_path):
    rows = []
    for s in range(3):
        cfg = config(STL, {"predictor.freq": 1}, s)
        rows.append(trial_rows(cfg, "longer", 0.8, epochs=(100, 300, 500)))
    bad = config(STL, {"predictor.freq": 1}, 3)
    rows.append(trial_rows(bad, "longer", 0.8, epochs=(100, 300, 500), status="diverged"))  # diverges at 500
    df = write_sweep(tmp_path / "longer", rows)
    spec = TableSpec(rows=("predictor.freq",), cols=("epoch",), epochs=(100, 300, 500), paper="table8")
    table = build_table(df, spec, load_paper())
    e100, e500 = table.get("freq=1", "epoch=100"), table.get("freq=1", "epoch=500")
    assert e100.n == 4 and e100.flags == frozenset() and e100.mean == pytest.approx(80 * 2 / 3)
    assert e500.n == 3 and e500.flags == {"diverged"} and e500.mean == pytest.approx(80.0)
    assert e100.paper.mean == 77.86 and e500.paper.mean == 78.86  # matched by epoch=...


def test_top5_cells_and_one_seed(tmp_path):
    base = {"data": {"name": "imagefolder", "root": "x"}, "loss": {"symmetric": False}, "train": {"epochs": 60}}
    df = write_sweep(
        tmp_path / "inet",
        [
            trial_rows(config(base, {"predictor": {"name": n}}, 0), "imagenet_60ep", a)
            for n, a in (("mlp", 0.65), ("linear", 0.6))
        ],
    )
    spec = TableSpec(
        rows=("predictor.name",),
        cols=("train.epochs",),
        metric="probe_top1",
        top5="probe_top5",
        digits=1,
        paper="table9",
    )
    table = build_table(df, spec, load_paper())
    cell = table.get("name=mlp", "epochs=60")
    assert cell.std is None and cell.top5 == pytest.approx(80.0) and cell.paper.top5 == 85.8
    text = render(table)
    assert "64.0 / 80.0 (1)" in text and "paper 64.7 / 85.8" in text and "Δ -0.7 / -5.8" in text
    assert "over 1 seed at" in table.caption and "final probe epoch" in table.caption


# ---------------------------------------------------------------- labels, values, protocol
def test_axis_labels_combinations_renames_and_null_parts():
    labels = {
        "optim.weight_decay=0.0;optim.predictor_weight_decay=4e-4": "wd_p only",
        "ema.tau=0.0": "no EMA",
        "predictor.freq": "N",
    }
    keys = ["optim.weight_decay", "optim.predictor_weight_decay", "ema.tau", "predictor.freq", "predictor.rho"]
    assert axis_label(keys, ["0", "0.0004", "0", "2", "null"], labels) == "wd_p only, no EMA, N=2"
    assert (
        axis_label(keys, ["0", "0", "0.996", "null", "0.3"], labels)
        == "weight_decay=0, predictor_weight_decay=0, tau=0.996, rho=0.3"
    )


def test_canonical_values_equal_across_types():
    assert canon(4e-4) == canon(np.float64(0.0004)) == "0.0004"
    assert canon(1.0) == canon(np.int64(1)) == canon(1) == "1"
    assert canon(np.bool_(True)) == "true" and canon(float("nan")) == canon(None) == canon(pd.NA) == "null"


def test_protocol_switches_metric_and_is_named_in_the_caption(t6):
    df, expected = t6
    final = with_protocol(T6_SPEC, "final")
    assert final.metric == "probe_top1" and with_protocol(final, "best").metric == "probe_top1_best"
    assert "best of probe epochs (paper)" in build_table(df, T6_SPEC).caption
    table = build_table(df, final, expected=expected)
    assert "final probe epoch" in table.caption
    assert table.get("rho=0.3", "eps=0.1").mean == pytest.approx(76.86)  # probe_top1 = best - 0.01
    with pytest.raises(UserError, match="choose best"):
        with_protocol(T6_SPEC, "last")
    with pytest.raises(UserError, match="probe metrics"):
        with_protocol(TableSpec(metric="z_std"), "final")


def test_user_errors(t6):
    df, _ = t6
    with pytest.raises(UserError, match="'predictor.rhoo' is not a column"):
        build_table(df, TableSpec(rows=("predictor.rhoo",)))
    with pytest.raises(UserError, match="choose one of terminal"):
        render(build_table(df, T6_SPEC), "xlsx")


def test_empty_results_render_the_expected_cells_as_missing(t6):
    _, expected = t6
    table = build_table(pd.DataFrame(), T6_SPEC, expected=expected)
    assert len(table.cells) == 8 and all(c.flags == {"missing"} for c in table.cells.values())
    assert render(build_table(pd.DataFrame(), T6_SPEC)).count("\n") >= 2  # no crash, no cells


# ---------------------------------------------------------------- golden output, every format
@pytest.mark.parametrize(
    "fmt,ext", [("terminal", "txt"), ("markdown", "md"), ("latex", "tex"), ("csv", "csv"), ("html", "html")]
)
def test_table6_golden(t6, fmt, ext):
    df, expected = t6
    golden(f"table6.{ext}", render(build_table(df, T6_SPEC, expected=expected), fmt))


@pytest.mark.parametrize(
    "fmt,ext", [("terminal", "txt"), ("markdown", "md"), ("latex", "tex"), ("csv", "csv"), ("html", "html")]
)
def test_table3_with_paper_golden(t3, fmt, ext):
    df, expected = t3
    golden(f"table3_paper.{ext}", render(build_table(df, T3_SPEC, load_paper(), expected), fmt))


def test_csv_is_tidy_and_parses(t3):
    df, expected = t3
    text = render(build_table(df, T3_SPEC, load_paper(), expected), "csv")
    recs = list(csv.DictReader(io.StringIO(text)))
    assert len(recs) == 16
    div = next(r for r in recs if r["row"] == "linear, EMA" and r["col"] == "bias, sym")
    assert div["flags"] == "diverged" and div["n"] == "1" and div["paper_mean"] == "74.5200"
    assert div["predictor.name"] == "linear" and div["predictor.symmetric"] == "true"


# ---------------------------------------------------------------- the paper reference file
PAPER_COUNTS = {
    "table1": 8,
    "table2": 5,
    "table3": 16,
    "table3_imagenet": 2,
    "table5": 16,
    "table6": 8,
    "table7": 8,
    "table8": 18,
    "table9": 6,
    "feature_dependent": 1,
}


def test_paper_reference_has_every_number_of_tables_1_3_and_5_9():
    ref = load_paper()
    assert ref.path == PAPER_FILE
    assert {t: len(ref.table(t)) for t in ref.tables()} == PAPER_COUNTS
    for c in ref.cells:
        if c.table in ("table9", "table3_imagenet"):  # ImageNet: one run, Top-1 / Top-5
            assert c.std is None and c.top5 is not None and c.top5 >= c.mean
        else:
            assert c.std is not None and c.top5 is None and 0 < c.mean < 100
    t3 = {(c.row, c.col): c.mean for c in ref.table("table3")}
    assert t3[("linear, no EMA", "no bias, sym")] == 36.62 and t3[("2-layer, EMA", "no bias, regular")] == 78.85
    assert {(c.row, c.col): c.mean for c in ref.table("table6")}[("rho=0.3", "eps=0.1")] == 77.86
    t9 = {(c.row, c.col): (c.mean, c.top5) for c in ref.table("table9")}
    assert t9[("DirectPred", "300 epochs")] == (72.4, 91.0)


def test_paper_matches_are_valid_configs_and_unique_per_table():
    ref = load_paper()
    keys = set(config_columns(TrialConfig)) | {"epoch"}
    for t in ref.tables():
        seen = set()
        for c in ref.table(t):
            assert set(c.match) <= keys, (c, set(c.match) - keys)
            sig = tuple(sorted(c.match.items()))
            assert not c.match or sig not in seen, f"two cells of {t} have the same match: {c}"
            seen.add(sig)
            # every match is a buildable trial config (keys valid for the predictor variant it names)
            tree = undot({k: _value(v) for k, v in c.match.items() if k != "epoch" and v != "null"})
            tree.setdefault("data", {})["root"] = "x"
            load_trial_config(tree)


def _value(v: str):
    from ablate.analysis.paper import parse_value

    return parse_value(v)


def test_bad_reference_file_is_a_user_error(tmp_path):
    bad = tmp_path / "ref.csv"
    bad.write_text("table,row,col,mean,std,top5,match,note\ntable1,a,b,x,,,,\n")
    with pytest.raises(UserError, match="table1/a/b"):
        load_paper(bad)
    bad.write_text("table,row,mean\n")
    with pytest.raises(UserError, match="header must be"):
        load_paper(bad)


# ---------------------------------------------------------------- the shipped paper sweeps
PAPER_SWEEPS = {
    "stl10_plugin": (80, ["table1"]),  # both solves: the paper's and the reference code's
    "stl10_wd": (120, ["table5", "table3"]),
    "stl10_predictor": (80, ["table3"]),
    "stl10_directpred": (40, ["table6"]),
    "stl10_eigen_offset": (40, ["table7"]),
    "stl10_longer": (45, ["table8"]),
    "cifar10_longer": (45, ["table8"]),
    "imagenet_60ep": (3, ["table9"]),
    "imagenet_300ep": (3, ["table9"]),
}


@pytest.mark.parametrize("name", sorted(PAPER_SWEEPS))
def test_paper_sweep_expands_to_the_papers_trials_and_every_cell_finds_its_number(name):
    n_trials, tables = PAPER_SWEEPS[name]
    sweep = read_sweep(REPO / "sweeps" / f"{name}.yaml", validate_paths=False)
    expected = expected_configs(sweep)
    assert len(expected) == n_trials
    ref = load_paper()
    table = build_table(pd.DataFrame(), sweep.table, ref, expected, sweep.name)
    assert [t.strip() for t in sweep.table.paper.split(",")] == tables
    for cell in table.cells.values():
        assert cell.paper is not None, (name, cell.row, cell.col)
        contexts = [
            c
            for c in expected
            if (tuple(canon(c.get(k)) for k in sweep.table.rows), tuple(canon(c.get(k)) for k in sweep.table.cols))
            == (cell.row, cell.col)
        ]
        hits = [
            p for p in ref.table(cell.paper.table) if all(p.holds({**c, "epoch": c["train.epochs"]}) for c in contexts)
        ]
        assert hits == [cell.paper], (name, cell.row, cell.col, hits)  # exactly one number per cell
    matched = {(c.paper.table, c.paper.row, c.paper.col) for c in table.cells.values()}
    first = ref.table(tables[0])
    if name.startswith("stl10") or name.startswith("imagenet"):
        covered = [p for p in first if (p.table, p.row, p.col) in matched]
        want = [
            p
            for p in first
            if not (name == "stl10_longer" and "CIFAR" in p.row)
            and not (name == "imagenet_60ep" and p.col == "300 epochs")
            and not (name == "imagenet_300ep" and p.col == "60 epochs")
        ]
        assert covered == want  # every number of the paper's table has a cell
    seeds = sorted({c["seed"] for c in expected})
    assert seeds == ([0] if name.startswith("imagenet") else [0, 1, 2, 3, 4])
    assert all(c["projector.bn_affine"] is (name.startswith("imagenet")) for c in expected)
    assert all(c["train.batch_size"] == {"imagenet_60ep": 256, "imagenet_300ep": 4096}.get(name, 128) for c in expected)


def test_stl10_wd_also_covers_table2_and_table3_linear_rows():
    sweep = read_sweep(REPO / "sweeps" / "stl10_wd.yaml", validate_paths=False)
    ref = load_paper()
    table = build_table(pd.DataFrame(), sweep.table, ref, expected_configs(sweep), sweep.name)
    got = {c.paper.mean for c in table.cells.values()}
    assert {c.mean for c in ref.table("table2")} <= got  # Table 2's numbers are Table 5's / Table 3's cells
    assert {c.mean for c in ref.table("table3") if c.row.startswith("linear")} <= got
    assert [table.row_label(r) for r in table.row_values][:3] == [
        "wd 4e-4 on all, EMA",
        "wd 4e-4 on all, no EMA",
        "wd_p only, EMA",
    ]


def test_table_reads_the_results_folder_of_a_sweep(t6, tmp_path):
    df, _ = t6
    sweep = read_sweep(REPO / "sweeps" / "stl10_directpred.yaml", validate_paths=False)
    root = tmp_path / "stl10_directpred"
    acc = lambda t: T6[(t.axes["predictor.rho"], t.axes["predictor.eps"])] + SEED_OFFSET[t.axes["seed"]]  # noqa: E731
    write_sweep(root, expansion_rows(sweep, acc, spectra=True))
    text = ablate.table(sweep, storage=tmp_path, paper=True).render()
    assert "paper 77.86 ± 0.16" in text and "77.86 ± 0.32 (5)" in text and "Table 6" in text
    assert "final probe epoch" in ablate.table(sweep, storage=tmp_path, protocol="final").render("markdown")
    with pytest.raises(UserError, match=r"nothing/stl10_directpred: no results of this sweep yet; run it first"):
        ablate.table(sweep, storage=tmp_path / "nothing")
