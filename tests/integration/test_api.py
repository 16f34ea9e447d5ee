"""The Python API's documented examples run as doctests (from the repository root, as a user would).

The per-function examples are quick (loading the smoke sweep, a synthetic table, a tiny in-process
trial); the module docstring's tour runs a real 4-trial sweep with Ray Tune and exports a trunk.
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import pandas as pd
import pytest

import ablate
import ablate.api as api

REPO = Path(__file__).resolve().parents[2]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _run(tests: list[doctest.DocTest]) -> doctest.TestResults:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in tests:
        runner.run(t, out=sys.stdout.write)
    return runner.summarize(verbose=False)


def _examples(module_tour: bool) -> list[doctest.DocTest]:
    tests = [t for t in doctest.DocTestFinder().find(api) if t.examples]
    return [t for t in tests if (t.name == api.__name__) == module_tour]


def test_function_examples(monkeypatch):
    monkeypatch.chdir(REPO)  # the examples name sweeps/smoke.yaml as a user in the checkout would
    tests = _examples(module_tour=False)
    names = {t.name.rsplit(".", 1)[-1] for t in tests}
    assert {
        "load_sweep",
        "check",
        "expand_sweep",
        "run_trial",
        "load_results",
        "table",
        "compare_sweeps",
        "compare_arms",
    } <= names
    result = _run(tests)
    assert result.attempted >= 20 and result.failed == 0


@pytest.mark.slow  # a real Ray Tune run of 4 tiny trials (~20 s idle)
def test_module_tour(monkeypatch):
    monkeypatch.chdir(REPO)
    (tour,) = _examples(module_tour=True)
    result = _run([tour])
    assert result.attempted >= 15 and result.failed == 0


def test_package_reexports_the_api_without_shadowing_modules():
    import importlib
    import pkgutil

    # every room and module imported first: a subpackage named like an API function would replace it
    rooms = [m.name for m in pkgutil.walk_packages(ablate.__path__, "ablate.")]
    for mod in rooms:
        assert importlib.import_module(mod).__name__ == mod
    for name in api.__all__:
        assert getattr(ablate, name) is getattr(api, name), name
    assert {"ablate.sweep.expand", "ablate.results.io", "ablate.analysis.compare", "ablate.analysis.export"} <= set(
        rooms
    )


def test_table_view_renders_every_format():
    df = pd.DataFrame(
        {
            "trial_id": list("abcd"),
            "seed": [0, 1, 0, 1],
            "epoch": 5,
            "is_final": True,
            "status": "ok",
            "predictor.name": ["linear", "linear", "mlp", "mlp"],
            "ema.tau": 0.996,
            "probe_top1_best": [0.5, 0.6, 0.7, 0.8],
        }
    )
    t = ablate.table(df, rows=["predictor.name"], cols=["ema.tau"])
    assert "<table" in t._repr_html_() and "|---" in t._repr_markdown_()
    assert str(t) == t.render("terminal") and "\\begin{tabular}" in t.render("latex")
    assert t.cell("name=mlp", "tau=0.996").mean == pytest.approx(75.0)
    frame = t.to_frame()
    assert frame["n"].tolist() == [2, 2] and frame["std"].round(4).tolist() == [7.0711, 7.0711]
    with pytest.raises(ablate.api.UserError, match="unknown option"):
        ablate.table(df, rows=["predictor.name"], colour="red")


def test_figures_are_returned_not_saved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = []
    for seed in (0, 1):
        for epoch in (1, 2):
            rows.append(
                {
                    "trial_id": f"t{seed}",
                    "seed": seed,
                    "epoch": epoch,
                    "is_final": epoch == 2,
                    "status": "ok",
                    "sweep": "s",
                    "predictor.name": "directpred",
                    "probe_top1_best": 0.5 + 0.1 * epoch,
                    "knn_top1": 0.4,
                    "z_std": 0.5,
                    "eig_align": 0.9,
                    "commutator": 0.1,
                    "f_eigs": [1.0, 0.5],
                    "wp_eigs": [1.0, 0.7],
                }
            )
    figs = ablate.figures(pd.DataFrame(rows), rows=["predictor.name"])
    assert {"accuracy", "z_std", "eigen", "spectra_name-directpred"} == set(figs)
    from matplotlib.figure import Figure

    assert all(isinstance(f, Figure) for f in figs.values())
    assert list(tmp_path.iterdir()) == []  # nothing written
