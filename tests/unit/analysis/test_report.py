"""Sweep reports: self-contained HTML, Markdown with figure files, provenance and status counts."""

import base64
import re
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis.report import provenance_summary, status_counts, write_report
from ablate.analysis.tables import expected_configs
from ablate.errors import UserError
from ablate.sweep.load import read_sweep
from ablate.sweep.table_block import TableSpec
from helpers.sweeps import STL, T3_BASE, config, flat, trial_rows, write_sweep

REPO = Path(__file__).resolve().parents[3]
SPEC = TableSpec(
    rows=("predictor.name",),
    cols=("ema.tau",),
    paper="table3",
    labels={"ema.tau=0.996": "EMA", "ema.tau=0.0": "no EMA"},
)
SWEEP_TEXT = "name: small\n# a <comment> & more\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """linear x EMA / no EMA, 2 seeds; no-EMA seed 1 diverges, one more trial is unfinished."""
    root = tmp_path_factory.mktemp("r") / "small"
    trials, expected = [], []
    for tau in (0.996, 0.0):
        for s in (0, 1):
            cfg = config(T3_BASE, {"predictor": {"name": "linear", "symmetric": False}, "ema.tau": tau}, s)
            expected.append(flat(cfg))
            status = "diverged" if (tau, s) == (0.0, 1) else "ok"
            trials.append(trial_rows(cfg, "small", 0.74, status=status, spectra=True, wall_per_epoch=3.0))
    cfg = config(T3_BASE, {"predictor": {"name": "linear"}, "ema.tau": 0.996}, 2)
    trials.append(trial_rows(cfg, "small", 0.74, finished=False))
    write_sweep(root, trials)
    return root, expected


def test_status_counts_and_provenance(results):
    root, _ = results
    df = pd.read_parquet(root)
    assert status_counts(df) == {
        "trials": 5,
        "ok": 3,
        "collapsed": 0,
        "diverged": 1,
        "failed": 0,
        "stopped": 0,
        "unfinished": 1,
    }
    prov = provenance_summary(df)
    assert prov["git commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert prov["uncommitted changes"] == "no" and prov["device"] == "cpu (test)"
    assert prov["versions"] == "python 3.12, torch 2.14.1"
    # 4 trials x 10 epochs x 3 s + the unfinished one's 10 epochs x 2 s
    assert prov["total wall time (sum over trials)"] == "0:02:20" and prov["longest trial"] == "0:00:30"
    assert status_counts(pd.DataFrame()) == {} and provenance_summary(pd.DataFrame()) == {}


def test_html_report_is_self_contained(results):
    root, expected = results
    out = write_report(
        pd.read_parquet(root), SPEC, root / "_report.html", sweep_text=SWEEP_TEXT, expected=expected, title="small"
    )
    assert out == root / "_report.html"
    page = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6  # accuracy, loss, z_std, eigen, and the spectra of each of the two arms
    assert all(base64.b64decode(b)[:4] == b"\x89PNG" for b in images)
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    assert "paper 74.51 ± 0.47" in page  # the sweep names table3: its numbers are in the report
    assert (
        "a seed diverged" in page and "5 trials: 3 ok (0 of them collapsed), 1 diverged, 0 failed, 1 unfinished" in page
    )
    assert "a &lt;comment&gt; &amp; more" in page  # the sweep file, escaped
    assert "0123456789abcdef0123456789abcdef01234567" in page and "0:02:20" in page


def test_markdown_report_links_figure_files(results, tmp_path):
    root, expected = results
    out = write_report(
        pd.read_parquet(root),
        SPEC,
        tmp_path / "rep" / "small.md",
        sweep_text=SWEEP_TEXT,
        fmt="markdown",
        expected=expected,
        paper=False,
    )
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((out.parent / link).is_file() for link in links)
    assert all(link.startswith("small_figures/") for link in links)
    assert "| name=linear |" in text and "paper 74" not in text
    assert "```yaml\nname: small" in text and "## Provenance" in text


def test_report_of_a_loaded_sweep_without_results_is_refused(tmp_path):
    sweep = read_sweep(REPO / "sweeps" / "stl10_directpred.yaml", validate_paths=False)
    with pytest.raises(UserError, match=r"stl10_directpred: no results of this sweep yet; run it first: ablate run"):
        ablate.report(sweep, "markdown", tmp_path / "r.md", storage=tmp_path)
    assert not (tmp_path / "r.md").exists()


def test_report_of_a_partly_run_sweep_shows_missing_cells_and_the_paper(tmp_path):
    sweep = read_sweep(REPO / "sweeps" / "stl10_directpred.yaml", validate_paths=False)
    first = next(t for t in sweep.trials)
    write_sweep(tmp_path / sweep.name, [trial_rows(first.config, sweep.name, 0.77)])
    text = ablate.report(sweep, "markdown", tmp_path / "r.md", storage=tmp_path).read_text()
    assert "— (0/5)" in text and "paper 77.86 ± 0.16" in text  # missing cells, paper numbers
    assert "name: stl10_directpred" in text


def test_report_summarises_the_config_and_has_one_row_per_trial(results, tmp_path):
    root, expected = results
    text = write_report(
        pd.read_parquet(root), SPEC, tmp_path / "r.md", fmt="markdown", expected=expected, paper=False
    ).read_text()
    config_part = text.split("## Configuration")[1].split("## Trials")[0]
    assert "What varies across the 5 trials:" in config_part
    assert "| seed | 0, 1, 2 |" in config_part and "| ema.tau | 0.996, 0 |" in config_part
    assert "Fixed in every trial" in config_part and "| predictor.name | linear |" in config_part
    assert "| data.name | stl10 |" in config_part
    trials = text.split("## Trials")[1].split("## Figures")[0]
    header = next(line for line in trials.splitlines() if line.startswith("| trial |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[:3] == ["trial", "seed", "ema.tau"] and cells[-4:] == ["status", "epochs", "wall time", "device time"]
    assert "probe top-1 best (%)" in cells and "kNN top-1 (%)" in cells and "loss" in cells
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in trials.splitlines()[header_at(trials) + 2 :]]
    rows = [r for r in rows if len(r) == len(cells)]
    assert len(rows) == 5
    by_status = {r[cells.index("status")] for r in rows}
    assert by_status == {"ok", "diverged", "unfinished"}
    # table order: EMA arm (seeds 0, 1, then the unfinished 2), then no EMA; wall time = wall_s of the last row
    assert [(r[1], r[2]) for r in rows] == [("0", "0.996"), ("1", "0.996"), ("2", "0.996"), ("0", "0"), ("1", "0")]
    assert rows[0][cells.index("wall time")] == "30.0 s" and rows[2][cells.index("wall time")] == "20.0 s"
    assert rows[0][cells.index("probe top-1 best (%)")] == "74.00"
    assert "wall time: seconds from the trial's start to its last row" in trials
    assert "by construction" not in text  # no DirectPred here


def header_at(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if line.startswith("| trial |"))


def test_report_says_why_directpred_is_aligned_by_construction_beside_the_eigen_figure(tmp_path):
    trials = [
        trial_rows(config(STL, {"predictor": {"name": name}}, s), "dp", 0.7, spectra=True)
        for name in ("directpred", "linear")
        for s in (0, 1)
    ]
    df = write_sweep(tmp_path / "dp", trials)
    spec = TableSpec(rows=("predictor.name",))
    text = write_report(df, spec, tmp_path / "r.md", fmt="markdown", paper=False).read_text()
    figures = text.split("## Figures")[1]
    eigen = figures.split("![eigen]")[1].split("![spectra_")[0]
    assert "DirectPred's eigen-alignment is 1 by construction" in eigen
    assert "W_p = U diag(p) U^T" in eigen and "predictor.freq > 1" in eigen
    assert "DirectPred's eig-align is 1 by construction: see the note under the eigen figure" in text
    assert "A variant's own settings" in text and "where predictor.name=directpred" in text  # rho, eps, freq ...
    page = write_report(df, spec, tmp_path / "r.html", paper=False).read_text()
    assert page.count("1 by construction") == 2 and "<details open><summary>Each trial" in page


def test_report_starts_with_the_sweeps_description_and_names_its_overrides(tmp_path):
    sweep = read_sweep(REPO / "sweeps" / "smoke.yaml", {"seeds": [3], "train.epochs": 2})
    df = write_sweep(
        tmp_path / sweep.name, [trial_rows(t.config, sweep.name, 0.9, epochs=(1, 2)) for t in sweep.trials]
    )
    expected = expected_configs(sweep)
    out = write_report(
        df, sweep.table, tmp_path / "r.md", sweep=sweep, fmt="markdown", expected=expected, title="smoke"
    )
    text = out.read_text()
    top = text.split("## Table")[0]
    assert sweep.description.strip() in top
    config_part = text.split("## Configuration")[1].split("## Trials")[0]
    assert "--set overrides: --set 'seeds=[3]' --set train.epochs=2" in config_part
    assert "| predictor.name | none, linear, mlp, directpred |" in config_part


def test_report_says_the_measured_compute_of_the_sweep_and_of_each_trial(results, tmp_path):
    root, expected = results
    df = pd.read_parquet(root)
    df["device_s"] = 720.0  # every row; a trial's final row counts
    sweep = read_sweep(REPO / "sweeps" / "stl10_directpred.yaml", validate_paths=False)  # resources.gpu 0.25
    n = df[df.is_final].trial_id.nunique()
    text = write_report(df, SPEC, tmp_path / "r.md", fmt="markdown", sweep=sweep, paper=False).read_text()
    trials = text.split("## Trials")[1]
    assert f"Measured compute: {n * 720 * 0.25 / 3600:.3g} GPU-hours in all" in trials
    assert "| 12:00 |" not in trials and "0:12:00" in trials  # 720 s of device time per trial
