"""The report as a page to share: contents, aligned numbers, one time format, no path of this machine,
what the sweep varies (not a variant's defaults), and the one Markdown table writer."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis.render import markdown_table, md_cell, render
from ablate.analysis.report import write_report
from ablate.analysis.report_blocks import CSS, Grid, anchor, render_blocks
from ablate.analysis.report_sections import config_summary, durations, trial_grid
from ablate.analysis.tables import build_table, expected_configs
from ablate.results.layout import SweepDir
from ablate.sweep.load import read_sweep
from ablate.sweep.table_block import TableSpec
from helpers.sweeps import STL, config, fill_run_folder, trial_rows, write_sweep

REPO = Path(__file__).resolve().parents[3]
SMOKE = REPO / "sweeps" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke sweep (4 predictors x 2 EMA rates) run for 2 epochs: its loaded sweep and rows."""
    sweep = read_sweep(SMOKE, {"train.epochs": 2})
    root = tmp_path_factory.mktemp("smoke") / sweep.name
    df = write_sweep(root, [trial_rows(t.config, sweep.name, 0.9, epochs=(1, 2)) for t in sweep.trials])
    return sweep, df


def _report(smoke, path: Path, fmt: str) -> str:
    sweep, df = smoke
    out = write_report(df, sweep.table, path, sweep=sweep, fmt=fmt, expected=expected_configs(sweep), paper=False)
    return Path(out).read_text()


def _cells(line: str) -> list[str]:
    """The cells of one Markdown table row, split at the pipes that are not escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


# ---------------------------------------------------------------- contents
def test_the_page_opens_with_contents_that_link_every_section(smoke, tmp_path):
    page = _report(smoke, tmp_path / "r.html", "html")
    sections = re.findall(r'<h2 id="([^"]+)">([^<]+)</h2>', page)
    assert [title for _, title in sections][:3] == ["Table", "Configuration", "Trials"]
    links = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', page.split("</nav>")[0])
    assert links == sections  # one entry per section, in page order, each to its heading's id
    assert page.index('<nav class="toc">') < page.index('<h2 id="table">')
    text = _report(smoke, tmp_path / "r.md", "markdown")
    toc = [line for line in text.split("## Table")[0].splitlines() if re.match(r"\d+\. \[", line)]
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert toc == [f"{i}. [{h}](#{anchor(h)})" for i, h in enumerate(headings, 1)]
    assert anchor("Sweep as run") == "sweep-as-run"  # the anchor GitHub gives the heading


# ---------------------------------------------------------------- the per-trial table
def test_the_per_trial_table_scrolls_inside_the_page_and_right_aligns_its_numbers(smoke, tmp_path):
    page = _report(smoke, tmp_path / "r.html", "html")
    trials = page.split("<summary>Each trial")[1].split("</details>")[0]
    assert trials.lstrip().split(">", 1)[1].startswith('\n<div class="scroll"><table class="grid">')
    assert re.search(r"\.scroll\{[^}]*overflow-x:auto", CSS)  # a wide table scrolls in its box, not the page
    width = int(re.search(r"body\{[^}]*max-width:(\d+)px", CSS).group(1))
    assert width <= 1280 - 2 * 16  # the page itself fits a 1280 px window with its margins
    header = re.findall(r"<th>([^<]*)</th>", trials.split("</tr>")[0])
    first = trials.split("</tr>")[1]
    cells = re.findall(r'<td( class="num")?>([^<]*)</td>', first)
    numeric = {h for h, (cls, _) in zip(header, cells) if cls}
    assert {
        "ema.tau",
        "probe top-1 best (%)",
        "kNN top-1 (%)",
        "z_std",
        "epochs",
        "wall time",
        "device time",
    } <= numeric
    assert not numeric & {"trial", "predictor.name", "status"}
    assert re.search(r"td\.num[^{]*\{[^}]*text-align:right", CSS)
    text = _report(smoke, tmp_path / "r.md", "markdown")
    head = next(line for line in text.splitlines() if line.startswith("| trial |"))
    align = dict(zip(_cells(head), _cells(text.splitlines()[text.splitlines().index(head) + 1])))
    assert align["probe top-1 best (%)"] == "---:" and align["status"] == ":---" and align["wall time"] == "---:"


def test_times_of_a_table_share_one_format():
    assert durations([20.5, 3.25], [None, 9.0]) == [["20.5 s", "3.2 s"], ["—", "9.0 s"]]
    # one trial over a minute: every time of both columns in h:mm:ss, none in seconds
    assert durations([20.5, 720.0], [19.0, 700.4]) == [["0:00:20", "0:12:00"], ["0:00:19", "0:11:40"]]
    rows = [
        trial_rows(config(STL, {}, 0), "t", 0.7, epochs=(5, 10), wall_per_epoch=2.0),  # 20 s
        trial_rows(config(STL, {}, 1), "t", 0.7, epochs=(5, 10), wall_per_epoch=72.0),  # 720 s
    ]
    df = pd.DataFrame([r for t in rows for r in t])
    grid = trial_grid(df, ["seed"], "probe_top1_best", 100.0)
    wall = [r[grid.header.index("wall time")] for r in grid.rows]
    assert wall == ["0:00:20", "0:12:00"]


# ---------------------------------------------------------------- nothing of this machine
def test_a_report_of_a_results_folder_names_no_path_of_this_machine(tmp_path):
    folder = SweepDir.at(tmp_path / "results" / "two")
    trials = fill_run_folder(folder, tmp_path)
    other = config(STL, {"predictor": {"name": "linear"}}, 9)  # the same sweep run with other settings
    write_sweep(tmp_path / "results" / "two", [trial_rows(other, "two", 0.5)])
    for fmt, name in (("html", "r.html"), ("markdown", "r.md")):
        page = Path(ablate.report(folder.loc.local, fmt, tmp_path / name)).read_text()
        assert str(tmp_path) not in page and "/tmp" not in page
        assert "results folder two: also holds 1 trial of this sweep run with other settings" in page
        assert f"trials       {len(trials)} = 2 cells x 2 seeds" in html.unescape(page)  # the expansion is still said


# ---------------------------------------------------------------- what the sweep varies
def test_what_varies_is_what_the_sweep_chose_not_a_variants_defaults(smoke, tmp_path):
    text = _report(smoke, tmp_path / "r.md", "markdown")
    config_part = text.split("## Configuration")[1].split("## Trials")[0]
    varies = config_part.split("What varies")[1].split("A variant's own settings")[0]
    rows = [_cells(line) for line in varies.splitlines() if line.startswith("| ") and "setting" not in line]
    assert rows == [["predictor.name", "none, linear, mlp, directpred"], ["ema.tau", "0.996, 0"]]
    own = config_part.split("A variant's own settings")[1]
    assert "| predictor.bias | false | where predictor.name=linear |" in own  # a default, per variant
    assert "| predictor.bias | true | where predictor.name=mlp |" in own
    head = next(line for line in text.splitlines() if line.startswith("| trial |"))
    assert "predictor.bias" not in head and _cells(head)[1:3] == ["predictor.name", "ema.tau"]


def test_without_the_sweep_a_key_that_follows_from_another_is_a_variants_default(smoke):
    sweep, df = smoke
    summary = config_summary(df)  # no sweep: the keys' values tell what follows from what
    assert [k for k, _ in summary.varies] == ["predictor.name", "ema.tau"]
    assert ("predictor.bias", "true", "where predictor.name=mlp") in summary.partly


# ---------------------------------------------------------------- one Markdown table writer
def test_one_markdown_writer_escapes_pipes_alike_in_tables_and_reports():
    assert md_cell("||W||_F\nat T") == r"\|\|W\|\|_F at T"
    grid = render_blocks([("grid", Grid(("setting", "value"), (("caption", "a | b"),), (1,)))], "markdown")
    assert grid == markdown_table(("setting", "value"), [("caption", "a | b")], right=[1])
    assert grid.splitlines()[2] == r"| caption | a \| b |" and grid.splitlines()[1] == "|:---|---:|"
    rows = [trial_rows(config(STL, {"predictor": {"name": n}}, 0), "t", 0.7) for n in ("linear", "mlp")]
    spec = TableSpec(rows=("predictor.name",), labels={"predictor.name=linear": "lin | ear"})
    table = render(build_table(pd.DataFrame([r for t in rows for r in t]), spec), "markdown")
    body = [line for line in table.splitlines() if line.startswith("| lin")]
    assert body == [r"| lin \| ear | 70.00 (n=1) |"] and len(_cells(body[0])) == 2
