"""The Python API's documented examples run as doctests (from the repository root, as a user would),
and its arguments are checked at its boundary: a wrong type is one UserError naming the argument.

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


# ---------------------------------------------------------------- arguments checked at the boundary
@pytest.fixture
def nothing_runs(monkeypatch, tmp_path):
    """In an empty folder; a run, a trial or a job that starts fails the test (every mistake here is
    refused before), and nothing may be written."""
    monkeypatch.chdir(tmp_path)

    def started(*args, **kwargs):
        raise AssertionError("work started: the argument was not checked at the API's boundary")

    for target in (
        "ablate.runner.driver.run_sweep",
        "ablate.kinds.single.run_single",
        "ablate.cluster.slurm.submit_sweep",
        "ablate.benchmark.suite.run_bench",
    ):
        monkeypatch.setattr(target, started)
    yield tmp_path
    assert list(tmp_path.iterdir()) == []


SMOKE = str(REPO / "sweeps" / "smoke.yaml")
WRONG = {  # a call with one wrong argument -> what the one line names: argument=value (type); what it takes
    "storage a list": (
        lambda: ablate.run(SMOKE, storage=["a"]),
        "ablate.run: storage=['a'] (list); storage takes a path or a URI",
    ),
    "path None": (lambda: ablate.load_sweep(None), "ablate.load_sweep: path=None (NoneType); path takes a path"),
    "path bytes": (lambda: ablate.check(SMOKE.encode()), "sweep_or_path=b'"),
    "path an int": (
        lambda: ablate.expand_sweep(3),
        "ablate.expand_sweep: sweep_or_path=3 (int); sweep_or_path takes a sweep file",
    ),
    "storage empty": (
        lambda: ablate.run(SMOKE, storage=""),
        "ablate.run: storage='' (str); storage takes a path or a URI",
    ),
    "path empty": (
        lambda: ablate.load_results(""),
        "ablate.load_results: source='' (str); source takes a results DataFrame",
    ),
    "overrides a list": (
        lambda: ablate.load_sweep(SMOKE, ["a"]),
        "overrides=['a'] (list); overrides takes a mapping with str keys",
    ),
    "overrides int keys": (
        lambda: ablate.run(SMOKE, {1: 2}),
        "overrides={1: 2} (dict); overrides takes a mapping with str keys",
    ),
    "restart a string": (
        lambda: ablate.run(SMOKE, restart="false"),
        "ablate.run: restart='false' (str); restart takes True or False",
    ),
    "count a bool": (
        lambda: ablate.run(SMOKE, max_concurrent=True),
        "max_concurrent=True (bool); max_concurrent takes a whole number",
    ),
    "count a float": (
        lambda: ablate.bench(threads=1.5),
        "ablate.bench: threads=1.5 (float); threads takes a whole number",
    ),
    "names a string": (
        lambda: ablate.table(SMOKE, rows="predictor.name"),
        "rows='predictor.name' (str); rows takes a list",
    ),
    "formats a string": (lambda: ablate.plot(SMOKE, formats="png"), "formats='png' (str); formats takes a list"),
    "a choice": (lambda: ablate.report(SMOKE, fmt="pdf"), "ablate.report: fmt='pdf'; choose html or markdown"),
    "a number a string": (
        lambda: ablate.compare_sweeps([1.0, 2.0], [1.0, 3.0], confidence="95%"),
        "confidence='95%' (str)",
    ),
    "a sample with text": (
        lambda: ablate.compare_sweeps([1.0, 2.0], [3.0, "x"]),
        "b=[3.0, 'x'] (list); b takes a source",
    ),
    "a callable": (
        lambda: ablate.run_trial(report=print.__name__),
        "ablate.run_trial: report='print' (str); report takes a function",
    ),
    "a stream": (
        lambda: ablate.run(SMOKE, stream="out.txt"),
        "ablate.run: stream='out.txt' (str); stream takes a text stream",
    ),
    "an option misspelt": (
        lambda: ablate.run(SMOKE, storge="x"),
        "ablate.run: no argument 'storge'; did you mean 'storage'?",
    ),
    "an option of the wrong type": (
        lambda: ablate.run(SMOKE, log=3),
        "ablate.run: log=3 (int); log takes a string or a list",
    ),
    "a slurm option misspelt": (
        lambda: ablate.submit(SMOKE, nodez=2),
        "ablate.submit: no argument 'nodez'; did you mean 'nodes'?",
    ),
    "an export option": (
        lambda: ablate.export_trunk(SMOKE, epoch="3"),
        "ablate.export_trunk: epoch='3' (str); epoch takes a whole number",
    ),
    "a data name": (
        lambda: ablate.data_check(None),
        "ablate.data_check: name=None (NoneType); name takes a non-empty string",
    ),
    "a submit URI": (lambda: ablate.submit(SMOKE, storage="s3://b//x", dry_run=True), "an empty folder name (//)"),
}


@pytest.mark.parametrize("case", WRONG, ids=list(WRONG))
def test_a_wrong_argument_is_one_error_naming_it_what_it_got_and_what_it_takes(case, nothing_runs):
    call, said = WRONG[case]
    with pytest.raises(ablate.api.UserError) as e:
        call()
    assert said in str(e.value) and "\n" not in str(e.value)


def test_every_argument_of_every_public_function_has_a_family():
    """One checker for the whole API: a new function or argument that no family covers fails here."""
    import inspect

    for name in api.__all__:
        fn = getattr(api, name)
        assert hasattr(fn, "__wrapped__"), f"{name} is not checked (@_checked)"
        for p in inspect.signature(fn).parameters.values():
            if p.kind is not p.VAR_KEYWORD:
                assert p.name in api.PARAMS, f"{name}({p.name}=...) has no family in api.PARAMS"
    assert set(api.PARAMS.values()) <= set(api.FAMILIES)


def test_right_arguments_of_every_kind_pass():
    """A Path, a tuple of names, a mapping, keyword overrides, None where the default is None."""
    from pathlib import Path

    sweep = ablate.load_sweep(Path(SMOKE), {"seeds": [0]}, validate_paths=False)
    assert ablate.load_sweep(SMOKE, train__epochs=1).base["train"]["epochs"] == 1
    assert len(ablate.expand_sweep(sweep)) == len(sweep.trials)
    df = pd.DataFrame({"trial_id": ["a"], "is_final": [True], "seed": 0, "status": "ok", "m": [0.5], "epoch": 1})
    assert len(ablate.load_results(df, final=True, storage=None)) == 1
    r = ablate.compare_sweeps((77.1, 77.6, 77.3), [77.0, 77.2, 77.1], confidence=0.9, labels=("x", "y"))
    assert r.confidence == 0.9
    assert ablate.table(df, rows=("m",), metric="m", protocol=None).to_frame().n.sum() == 1
