"""Mistakes in what the analysis commands are asked for: each is one UserError naming the problem
and the fix, never a traceback or a message that points the wrong way."""

from __future__ import annotations

import html
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis.compare import compare_two_arms, select
from ablate.analysis.export import select_trial, write_trunk
from ablate.analysis.report import write_report
from ablate.analysis.tables import build_table, expected_configs
from ablate.analysis.views import TableView
from ablate.analysis.weights import weights_file
from ablate.config.tree import flatten, to_dict
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.results.layout import SweepDir
from ablate.sweep.load import read_sweep
from ablate.sweep.table_block import TableSpec
from helpers.sweeps import T3_BASE, config, table3_trials, trial_rows, write_sweep

REPO = Path(__file__).resolve().parents[3]
SMOKE = REPO / "sweeps" / "smoke.yaml"


@pytest.fixture(scope="module")
def t3(tmp_path_factory):
    """Table 3's shape (predictor x EMA x bias x symmetric, 2 seeds) as a results folder."""
    trials, expected = table3_trials()
    root = tmp_path_factory.mktemp("t3") / "stl10_predictor"
    return root, write_sweep(root, trials), expected


# ---------------------------------------------------------------- 1, 2: export
def test_export_best_must_be_a_numeric_metric(t3):
    root, _, _ = t3
    with pytest.raises(UserError, match=r"--best status: an identity column, not a measure .*; choose one of .*probe"):
        select_trial(root, best="status")  # a text column: pandas' float conversion failed
    with pytest.raises(UserError, match=r"--best optim.lr: a config key, not a measure of a trial .*z_std"):
        select_trial(root, best="optim.lr")  # a config key is not a measure of a trial
    with pytest.raises(UserError, match=r"--best collapsed: not a numeric metric \(a flag"):
        select_trial(root, best="collapsed")
    with pytest.raises(
        UserError, match=r"not a column of these results \(ssl trials\); did you mean 'z_std'\?; choose"
    ):
        select_trial(root, best="z_sdt")


def _saved_trial(root: Path, weights: str, files: list[str]) -> dict:
    cfg = config(T3_BASE, {"save.weights": weights}, 0)
    rows = trial_rows(cfg, "stl10_predictor", 0.7, epochs=(5, 10))
    write_sweep(root, [rows])
    where = SweepDir.at(root).weights(rows[0]["trial_id"]).local
    where.mkdir(parents=True)
    for name in files:
        (where / name).write_bytes(b"not read")
    return select_trial(root, trial_id=rows[0]["trial_id"])


def test_export_epoch_not_kept_says_which_are_and_a_rerun_that_runs(tmp_path):
    root = tmp_path / "stl10_predictor"
    row = _saved_trial(root, "final", ["trunk_final.pt"])
    with pytest.raises(UserError) as err:
        write_trunk(root, trial_id=row["trial_id"], epoch=3, to=tmp_path / "t.pt")
    msg = str(err.value)
    assert f"export --epoch 3: trial {row['trial_id']} kept the weights of epoch 10 (final) only" in msg
    assert "(save.weights=final); give one of those" in msg
    # the same folder again would skip the finished trial (save.* keys are not in its id): start over
    assert msg.endswith(f"ablate run {root} --restart --set save.weights=every --set save.every=3")
    assert "\n" not in msg and not (tmp_path / "t.pt").exists()
    # the last epoch's weights are the final ones
    assert weights_file(SweepDir.at(root), row, 10).name == "trunk_final.pt"
    with pytest.raises(UserError, match=r"--epoch 11: trial \w+ ran epochs 1..10; give one of them"):
        weights_file(SweepDir.at(root), row, 11)


def test_export_epoch_lists_the_epochs_kept_every_n(tmp_path):
    root = tmp_path / "stl10_predictor"
    row = _saved_trial(root, "every", ["trunk_epoch5.pt", "trunk_final.pt"])
    assert weights_file(SweepDir.at(root), row, 5).name == "trunk_epoch5.pt"
    with pytest.raises(UserError, match=r"kept the weights of epochs 5, 10 \(final\) only \(save.weights=every\)"):
        weights_file(SweepDir.at(root), row, 4)


# ---------------------------------------------------------------- 3: a cell by its labels
def test_table_view_cell_with_an_unknown_label_names_the_labels_there_are(t3):
    _, df, _ = t3
    spec = TableSpec(rows=("predictor.name", "ema.tau"), cols=("predictor.bias", "predictor.symmetric"))
    t = TableView(build_table(df, spec))
    assert t.cell("name=mlp, tau=0", "bias=false, symmetric=false").n == 2
    with pytest.raises(UserError) as err:
        t.cell("name=directpred, tau=0", "bias=false, symmetric=false")
    msg = str(err.value)
    assert "no row 'name=directpred, tau=0'" in msg and "'name=linear, tau=0.996'" in msg
    assert "columns: 'bias=false, symmetric=false', 'bias=false, symmetric=true'" in msg
    with pytest.raises(UserError, match=r"no column 'tau=0.996'; rows: .*; columns: 'bias=false, symmetric=false'"):
        t.cell("name=mlp, tau=0", "tau=0.996")


# ---------------------------------------------------------------- 4: labels
def test_labels_that_name_no_column_or_value_are_refused(t3):
    _, df, expected = t3
    spec = TableSpec(rows=("predictor.name", "ema.tau"), cols=("predictor.bias", "predictor.symmetric"))
    with pytest.raises(UserError, match=r"'ema.tauu=0.996': 'ema.tauu' is not a column .*did you mean 'ema.tau'"):
        build_table(df, replace(spec, labels={"ema.tauu=0.996": "EMA"}), expected=expected)
    with pytest.raises(UserError, match=r"'ema.tau=0.99': no trial has ema.tau=0.99; its values are 0, 0.996"):
        build_table(df, replace(spec, labels={"ema.tau=0.99": "EMA"}))
    with pytest.raises(UserError, match=r"'predictor.nam' is not a column"):
        ablate.table(
            df,
            rows=["predictor.name"],
            cols=["ema.tau", "predictor.bias", "predictor.symmetric"],
            labels={"predictor.nam": "predictor"},
        )
    both = {"predictor.name=linear;predictor.hidden_dim=512": "x"}  # linear has no hidden_dim
    with pytest.raises(UserError, match="no trial has this combination"):
        build_table(df, replace(spec, labels=both))


def test_labels_of_the_sweep_file_are_checked_and_kept_when_rows_change(t3, tmp_path):
    _, df, _ = t3
    sweep = read_sweep(REPO / "sweeps" / "stl10_predictor.yaml", validate_paths=False)
    bad = read_sweep(
        REPO / "sweeps" / "stl10_predictor.yaml", {"table.labels": {"ema.tau=0.99": "EMA"}}, validate_paths=False
    )
    with pytest.raises(UserError, match=r"table.labels: 'ema.tau=0.99': no trial has ema.tau=0.99"):
        ablate.table(df, bad)
    # the file's labels name columns the results have, though no longer rows or columns here
    t = ablate.table(
        df[df["ema.tau"] == 0.996], sweep, cols=["predictor.bias", "predictor.symmetric"], rows=["predictor.name"]
    )
    assert t.cell("linear", "no bias, sym").n == 2


def test_labels_of_values_an_override_dropped_are_no_mistake():
    short = {"grid": {"predictor": [{"name": "linear"}, {"name": "mlp"}]}, "train.epochs": 2}
    sweep = read_sweep(SMOKE, short)  # ema.tau is 0.996 only: the file's "ema.tau=0.0" label has nothing to label
    df = _frame([trial_rows(t.config, sweep.name, 0.9, epochs=(1, 2)) for t in sweep.trials])
    t = ablate.table(df, sweep)
    assert t.cell("predictor=mlp", "BYOL (EMA 0.996)").n == 1
    typo = read_sweep(SMOKE, {**short, "table.labels": {"ema.tau=0.99": "BYOL"}})
    with pytest.raises(UserError, match=r"'ema.tau=0.99': no trial has ema.tau=0.99; its values are 0.996"):
        ablate.table(df, typo)  # labels given with the override are checked


def test_a_label_typo_in_the_sweep_file_is_refused_under_overrides_that_do_not_touch_its_key(tmp_path):
    path = tmp_path / "smoke.yaml"
    path.write_text(SMOKE.read_text().replace('"ema.tau=0.0"', '"ema.tau=0.01"'))
    sweep = read_sweep(path, {"train.epochs": 2, "save.weights": "every"})
    df = _frame([trial_rows(t.config, sweep.name, 0.9, epochs=(1, 2)) for t in sweep.trials])
    with pytest.raises(UserError, match=r"'ema.tau=0.01': no trial has ema.tau=0.01; its values are 0, 0.996"):
        ablate.table(df, sweep)


# ---------------------------------------------------------------- 5: one config per cell
def _frame(trials: list[list[dict]]) -> pd.DataFrame:
    return pd.DataFrame([r for rows in trials for r in rows])


def test_a_cell_of_trials_with_different_configs_is_refused():
    lrs = [trial_rows(config(T3_BASE, {"optim.lr": lr}, s), "x", 0.7) for lr in (0.03, 0.05) for s in (0, 1)]
    spec = TableSpec(rows=("predictor.name",), labels={"predictor.name": "predictor"})
    with pytest.raises(UserError) as err:
        build_table(_frame(lrs), spec)
    assert str(err.value) == (
        "table: cell 'predictor=linear' would average trials of different configs (optim.lr: 0.03, 0.05); "
        "add optim.lr to the table's rows or cols, or filter the results to one value of each"
    )
    no_json = _frame(lrs).drop(columns=["config_json"])  # a hand-made frame: its config columns count
    with pytest.raises(UserError, match=r"\(optim.lr: 0.03, 0.05\)"):
        build_table(no_json, spec)
    assert build_table(_frame(lrs), TableSpec(rows=("predictor.name", "optim.lr"))).cells  # the fix
    # seeds, and keys that do not change the trial id (where the data is, the device, weights kept), may differ
    where = [{"data.root": "/a", "train.device": "cpu"}, {"data.root": "/b", "save.weights": "every", "save.every": 2}]
    trials = [trial_rows(config(T3_BASE, w, s), "x", 0.7) for s, w in enumerate(where)]
    assert build_table(_frame(trials), spec).cells[(("linear",), ())].n == 2


def _rows_of(sweep) -> list[dict]:
    """One final row per trial of a sweep's expansion, as a results reader gives it (any kind)."""
    out = []
    for t in sweep.trials:
        tree = to_dict(t.config)
        flat = flatten(tree)
        out.append(
            {
                **flat,
                "trial_id": t.trial_id,
                "seed": flat.get("seed", 0),
                "epoch": flat.get("train.epochs", 1),
                "is_final": True,
                "status": "ok",
                "config_json": json.dumps(tree),
                sweep.table.metric: 0.5,
                sweep.table.top5 or sweep.table.metric: 0.5,
            }
        )
    return out


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweeps_table_has_one_config_per_cell(path):
    sweep = read_sweep(path, validate_paths=False)
    assert sweep.table is not None and sweep.trials
    df = pd.DataFrame(_rows_of(sweep))
    table = build_table(df, sweep.table, expected=expected_configs(sweep))
    assert {c.n for c in table.cells.values()} == {len(sweep.seeds) if sweep.trial_kind.has_seed else 1}
    # without its row keys the same table would average over them: refused
    with pytest.raises(UserError, match="would average trials of different configs"):
        build_table(df, replace(sweep.table, rows=(), labels={}))


# ---------------------------------------------------------------- 6: compare arms by values
def test_compare_value_no_trial_has_lists_the_values(t3):
    _, df, _ = t3
    with pytest.raises(UserError) as err:
        compare_two_arms(df, {"predictor.name": "linear"}, {"predictor.name": "linar"})
    assert str(err.value) == (
        "compare --b predictor.name=linar: no trial has this value; predictor.name values here: linear, mlp"
    )
    with pytest.raises(
        UserError,
        match=r"--a predictor.nme=linear: 'predictor.nme' is not a column .*did you mean "
        r"'predictor.name'.*; keys that vary here: .*ema.tau",
    ):
        compare_two_arms(df, {"predictor.nme": "linear"}, {"predictor.name": "mlp"})
    with pytest.raises(UserError, match=r"--where ema.tau=0.5: no trial has this value; ema.tau values here: 0, 0.996"):
        select(df, {"ema.tau": 0.5})
    with pytest.raises(UserError, match="no trial has all of these values"):
        select(df, {"predictor.name": "linear", "predictor.hidden_dim": 512})


# ---------------------------------------------------------------- 7: the report shows the sweep as run
def test_report_shows_the_sweep_as_run_with_its_overrides_and_the_folders_notes(tmp_path):
    sweep = read_sweep(SMOKE, {"seeds": [3], "train.epochs": 2})
    trials = [trial_rows(t.config, sweep.name, 0.9, epochs=(1, 2)) for t in sweep.trials]
    df = _frame(trials)
    note = f"{tmp_path}: also holds 1 trial of this sweep run with other settings (other --set overrides)"
    for fmt, name in (("markdown", "r.md"), ("html", "r.html")):
        out = Path(
            write_report(
                df,
                sweep.table,
                tmp_path / name,
                sweep=sweep,
                fmt=fmt,
                expected=expected_configs(sweep),
                title=sweep.name,
                notes=[note],
            )
        )
        page = html.unescape(out.read_text())
        assert "--set 'seeds=[3]' --set train.epochs=2" in page
        assert "trials       8 = 8 cells x 1 seed" in page and "seeds        3" in page
        assert "also holds 1 trial of this sweep run with other settings" in page
        assert "Collapse monitor z_std" in page  # the sweep file as written is still there


def test_api_report_passes_the_sweep_and_the_notes(tmp_path):
    sweep = read_sweep(SMOKE, {"seeds": [3], "train.epochs": 2})
    other = read_sweep(SMOKE, {"seeds": [4], "train.epochs": 2})  # the same sweep run with other settings
    runs = [trial_rows(t.config, sweep.name, 0.9, epochs=(1, 2)) for t in (*sweep.trials, other.trials[0])]
    write_sweep(tmp_path / sweep.name, runs)
    text = Path(ablate.report(sweep, "markdown", tmp_path / "r.md", storage=tmp_path)).read_text()
    assert "--set 'seeds=[3]' --set train.epochs=2" in text and "trials       8 = 8 cells x 1 seed" in text
    assert "also holds 1 trial of this sweep run with other settings" in text


def test_export_head_classes_of_a_convnet_trial_is_one_line(tmp_path):
    """A blank torchvision head fits ResNets only: a convnet trial is refused before anything is written."""
    from ablate.analysis.export import write_trunk
    from ablate.kinds.ssl import load_trial_config
    from ablate.models.trunks import build_trunk, export_state_dict
    from ablate.results.io import ArtifactStore, Expect, ResultsStore
    from ablate.results.layout import SweepDir
    from helpers.sweeps import trial_rows

    cfg = load_trial_config({"model": {"width": 8}})
    folder = SweepDir.at(tmp_path / "s")
    ResultsStore(folder, Expect("s", SSL.schema)).add_many(trial_rows(cfg, "s", 0.5))
    tid = trial_rows(cfg, "s", 0.5)[0]["trial_id"]
    ArtifactStore(folder.weights(tid)).save("trunk_final.pt", export_state_dict(build_trunk(cfg.model, 1)))
    with pytest.raises(UserError, match=r"--head-classes 10: trial \w+ has the convnet trunk"):
        write_trunk(folder, tid, to=tmp_path / "t.pt", head_classes=10)
    assert not (tmp_path / "t.pt").exists()


# ---------------------------------------------------------------- 8: a table of a measure
def test_a_table_or_export_of_a_config_key_or_identity_column_is_refused(t3):
    _, df, _ = t3
    with pytest.raises(UserError, match=r"^table.metric optim.lr: a config key, not a measure of a trial"):
        ablate.table(df, rows=["predictor.name"], metric="optim.lr")
    with pytest.raises(UserError, match=r"^table.top5 epoch: an identity column, not a measure of a trial"):
        ablate.table(df, rows=["predictor.name"], top5="epoch")
