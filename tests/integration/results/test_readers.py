"""A results folder as ``ablate run`` and the analysis commands leave it reads with each library's
one-liner for a folder of Parquet files: pandas, pyarrow.dataset, DuckDB and polars, exactly as the
results schema page shows them (docs/results.md: the lines are taken from the page and run). Every file a
run leaves besides the trial files is there: the sweep file and overrides, the lock, the progress
file, a damaged file set aside, weights, Ray's folder, logs, figures and the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import ablate
from ablate.kinds.registry import SSL
from ablate.provenance import REPO
from ablate.results.io import Expect, ResultsStore, read_rows
from ablate.results.layout import SweepDir
from ablate.results.lock import run_lock
from helpers.sweeps import fill_run_folder

MARK = "# pandas, pyarrow.dataset, DuckDB, polars"  # the results page's code block of the four one-liners
PAGE = "docs/results.md"


def page_one_liners() -> list[str]:
    """The page's one-liners: the lines after the import line of the block that starts with MARK."""
    text = (REPO / PAGE).read_text()
    block = re.search(rf"```python\n{re.escape(MARK)}\n(.*?)```", text, re.S)
    assert block, f"{PAGE} has no ```python block starting with {MARK!r}"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert lines[0].startswith("import ") and len(lines) == 5, lines
    return lines


def as_frame(result) -> pd.DataFrame:
    """What a reader returned, as pandas (a pandas or polars frame, an Arrow table, a DuckDB relation)."""
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, pa.Table):
        return result.to_pandas()
    if hasattr(result, "df"):  # duckdb.DuckDBPyRelation
        return result.df()
    return result.to_pandas()  # polars.DataFrame


@pytest.fixture
def results(tmp_path, monkeypatch) -> SweepDir:
    """``results/readers`` with four finished trials and everything else a run, ``plot`` and
    ``report`` leave, each written by the code that writes it."""
    monkeypatch.chdir(tmp_path)
    folder = SweepDir.of("readers")
    for t in fill_run_folder(folder, tmp_path):
        (folder.checkpoint_roots(t.trial_id)[0] / "result.json").write_text("{}")
    lock = run_lock(folder)
    lock.acquire()  # a local lock file stays after release, as after every run
    lock.release()
    store = ResultsStore(folder, Expect("readers", SSL.schema))
    folder.trial_file("0123456789ab").write_bytes(b"PAR1 cut short")  # a damaged file ...
    store.set_aside(store.holdings().skipped)  # ... moved aside as the next run does
    folder.progress_file.write_text(json.dumps({"pid": 1, "trials": {}}))
    folder.logs.mkdir(parents=True)
    (folder.logs / "ray.log").write_text("ray says\n")
    ablate.plot("results/readers", formats=("png",))
    ablate.report("results/readers")
    return folder


def test_every_file_a_run_leaves_is_outside_the_results_folder(results):
    assert sorted(p.suffix for p in Path("results/readers").rglob("*")) == [".parquet"] * 4
    beside = {p.relative_to("results/_readers").as_posix() for p in Path("results/_readers").rglob("*")}
    assert {"sweep.yaml", "overrides.json", "lock", "progress.json", "report.html", "logs/ray.log"} <= beside
    assert {"damaged/0123456789ab.parquet", "figures/accuracy.png"} <= beside
    assert str(SweepDir.at("results/_readers")) == str(results)  # naming the companion names the sweep


@pytest.mark.parametrize("reader", ["pandas", "pyarrow.dataset", "duckdb", "polars"])
def test_each_library_reads_the_results_folder_with_the_documented_one_liner(reader, results):
    pytest.importorskip(reader)
    imports, *lines = page_one_liners()
    [line] = [ln for ln in lines if ln.startswith(reader + ".")]
    scope: dict = {}
    exec(imports, scope)
    got = as_frame(eval(line.replace("<sweep>", "readers"), scope))
    want = read_rows(results)
    assert len(got) == len(want) == 8  # 4 trials x 2 evaluated epochs, the damaged file not among them
    key = ["trial_id", "epoch"]
    got, want = (f.sort_values(key).reset_index(drop=True) for f in (got, want))
    assert got[key].equals(want[key])
    for column in ("probe_top1_best", "z_std", "predictor.name", "is_final", "status"):
        assert got[column].tolist() == want[column].tolist(), column


def test_the_results_page_shows_the_four_one_liners_on_one_folder():
    imports, *lines = page_one_liners()
    assert imports == "import pandas, pyarrow.dataset, duckdb, polars"
    assert [ln.split("(")[0] for ln in lines] == [
        "pandas.read_parquet",
        "pyarrow.dataset.dataset",
        "duckdb.sql",
        "polars.read_parquet",
    ]
    assert all("results/<sweep>" in ln for ln in lines)
