"""Every analysis command reads a results folder through the one reader, wherever the folder lives:
a local path, a ``file://`` URI, and a non-local pyarrow filesystem (the in-memory one stands in for
s3://, which takes the same code path: no rename, no local Path). Nothing here starts Ray; the
runner on URIs is tests/system/test_storage_uris.py."""

from __future__ import annotations

import json

import pyarrow.fs as pafs
import pytest
import torch

import ablate
from ablate.cli import main
from ablate.config.trial import ModelConfig
from ablate.models.trunks import build_trunk, export_state_dict
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from helpers.sweeps import fill_run_folder


def fill(folder: SweepDir, tmp_path) -> list[str]:
    """The folder as ``ablate run`` leaves it, run with three seeds."""
    return [t.trial_id for t in fill_run_folder(folder, tmp_path, {"seeds": [0, 1, 2]})]


def where(kind: str, tmp_path) -> tuple[SweepDir, object]:
    """(the folder, what a user names it by) for a local path, a file:// URI, an in-memory filesystem."""
    if kind == "memory":
        loc = Location(pafs._MockFileSystem(), "bucket/results/stores", "mock://bucket/results/stores")
        return SweepDir(loc), loc
    path = tmp_path / "results" / "stores"
    return SweepDir.at(path), (f"file://{path}" if kind == "file-uri" else str(path))


@pytest.mark.parametrize("kind", ["path", "file-uri", "memory"])
def test_every_analysis_command_reads_the_folder_where_it_lives(kind, tmp_path):
    folder, name = where(kind, tmp_path)
    ids = fill(folder, tmp_path)
    assert ablate.load_results(name).trial_id.nunique() == 6 == len(ids)
    assert "6 trials: 6 done" in ablate.status(name)  # the folder's overrides: 3 seeds, not the file's 2
    t = ablate.table(name)
    assert t.cell("name=directpred").n == 3 and t.cell("name=directpred").mean == pytest.approx(81.0)
    figs = ablate.plot(name, formats=("png",))
    assert {str(f).rsplit("/", 1)[-1] for f in figs} == {"accuracy.png", "loss.png", "z_std.png"}  # no spectra
    assert (folder.figures / "accuracy.png").read_bytes()[:4] == b"\x89PNG"  # default: <storage>/_<sweep>/figures
    report = ablate.report(name, "markdown")
    assert "## Provenance" in folder.report("markdown").read_text() and str(report).endswith("_stores/report.md")
    r = ablate.compare_arms(name, {"predictor.name": "directpred"}, {"predictor.name": "linear"})
    assert r.diff == pytest.approx(0.10) and (r.n_a, r.n_b) == (3, 3)
    out = ablate.export_trunk(name, best="probe_top1_best", to=tmp_path / "trunk.pt")
    assert json.loads(out.with_suffix(".json").read_text())["trial_id"] in ids
    assert torch.load(out).keys() == export_state_dict(build_trunk(ModelConfig(width=8), 1)).keys()


@pytest.mark.parametrize("kind", ["path", "file-uri"])
def test_the_commands_on_the_command_line(kind, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, name = where(kind, tmp_path)
    fill(folder, tmp_path)
    for argv, expect in (
        (["status", name], "6 done"),
        (["table", name, "--format", "csv"], "name=directpred"),
        (["report", name], "_stores/report.html"),
        (["plot", name, "--format", "png"], "accuracy.png"),
        (["compare", name, "--a", "predictor.name=directpred", "--b", "predictor.name=linear"], "significant"),
        (["export", name, "--best", "probe_top1_best", "--to", str(tmp_path / "t.pt")], "load it"),
    ):
        assert main(argv) == 0, argv
        assert expect in capsys.readouterr().out, argv
    assert not (tmp_path / "file:").exists() and not list(
        tmp_path.glob("*/file:*")
    )  # no local folder named after a URI


def test_a_uri_query_stays_at_the_end_of_every_path():
    base = Location(
        pafs._MockFileSystem(), "b/results", "s3://b/results", "endpoint_override=localhost:9000&scheme=http"
    )
    folder = SweepDir(base / "smoke")
    assert str(folder) == "s3://b/results/smoke?endpoint_override=localhost:9000&scheme=http"
    assert (
        str(folder.trial_file("abc")) == "s3://b/results/smoke/abc.parquet?endpoint_override=localhost:9000&scheme=http"
    )
    assert folder.trial_file("abc").path == "b/results/smoke/abc.parquet"
    assert str(folder.backup()).startswith("s3://b/results/smoke.old-") and str(folder.backup()).endswith("scheme=http")


def test_restart_on_a_filesystem_without_folder_renames_keeps_the_old_results(tmp_path):
    from ablate.results.io import move_aside

    folder, _ = where("memory", tmp_path)
    ids = fill(folder, tmp_path)
    backup = move_aside(folder)
    assert not folder.loc.exists() and sorted(
        c.name for c in backup.loc.children() if c.name.endswith(".parquet")
    ) == sorted(f"{i}.parquet" for i in ids)
    assert len(ablate.load_results(backup.loc)) == 12
