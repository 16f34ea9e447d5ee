"""Sweep reports: self-contained HTML, Markdown with figure files, provenance and status counts."""

import base64
import re
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis.report import provenance_summary, status_counts, write_report
from ablate.errors import UserError
from ablate.sweep.load import read_sweep
from ablate.sweep.schema import TableSpec
from helpers.sweeps import T3_BASE, config, flat, trial_rows, write_sweep

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
    assert status_counts(df) == {"trials": 5, "ok": 3, "collapsed": 0, "diverged": 1, "failed": 0, "unfinished": 1}
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
    assert len(images) == 5  # accuracy, z_std, eigen, and the spectra of each of the two arms
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
