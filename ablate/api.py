# long: each public function carries its runnable example (doctests: tests/integration/test_api.py); one arg table
"""The Python API: everything the CLI does, from a notebook, with objects back instead of prints.

Re-exported as ``ablate.<name>``; every ``ablate`` command is a call of one of these, so a notebook
and the command line produce the same results folder::

    load_sweep(path, **overrides)      a validated Sweep (``--set`` overrides as keyword arguments)
    check(path, **overrides)           the text ``ablate check`` prints
    expand_sweep(sweep)                its trials: [Trial(trial_id, config, axes, ...)]
    run(sweep, **overrides)            ``ablate run``: Ray Tune -> results/<sweep>/; a RunSummary
    run_trial(config, **overrides)     ``ablate trial`` in-process; the rows as a DataFrame
    load_results(source)               the results as a DataFrame (one row per trial and epoch)
    status(source)                     the text ``ablate status`` prints
    table(source, ...)                 the paper-shaped table: a TableView (renders, shows in Jupyter)
    figures(source, ...) / plot(source)  the ``ablate plot`` figures, as matplotlib Figures / written
    report(source)                     ``ablate report``: one HTML or Markdown file
    compare_sweeps(a, b) / compare_arms(df, arm_a, arm_b)   Welch's t-test over seeds
    export_trunk(results, ...) / load_exported(path)        the pretrained trunk as a state_dict
    submit(sweep, ...) / bench(...)    ``ablate submit`` (SLURM) / ``ablate bench``
    data_fetch(name) / data_check(name)   ``ablate data fetch`` / ``ablate data check``

A ``source`` is a results DataFrame, a results folder (``results/<sweep>`` or a URI, which
remembers its sweep file), a sweep file, or a loaded Sweep.

A whole study from a notebook, on the bundled digits data (this runs as a doctest):

>>> import ablate, io, tempfile
>>> sweep = ablate.load_sweep("sweeps/smoke.yaml", **{
...     "grid": {"predictor": [{"name": "linear"}, {"name": "directpred"}]}, "seeds": [0, 1],
...     "train.epochs": 1, "train.steps_per_epoch": 2, "eval.probe_epochs": 2, "eval.knn_k": 20})
>>> [t.label for t in ablate.expand_sweep(sweep)]
['predictor=linear, seed=0', 'predictor=directpred, seed=0', 'predictor=linear, seed=1', 'predictor=directpred, seed=1']
>>> storage = tempfile.mkdtemp()
>>> summary = ablate.run(sweep, storage=storage, stream=io.StringIO())   # Ray Tune, 4 trials
>>> summary.exit_code, summary.ran
(0, 4)
>>> df = ablate.load_results(summary.results_dir)
>>> df.groupby("predictor.name").trial_id.nunique().to_dict()
{'directpred': 2, 'linear': 2}
>>> t = ablate.table(summary.results_dir)              # the sweep's table: block (z_std here)
>>> t.to_frame()[["row", "n"]].values.tolist()
[['predictor=linear', 2], ['predictor=directpred', 2]]
>>> sorted(ablate.figures(summary.results_dir))        # matplotlib Figures, nothing written
['accuracy', 'eigen', 'loss', 'spectra_predictor-directpred_BYOL_EMA_0.996', 'spectra_predictor-linear_BYOL_EMA_0.996', 'z_std']
>>> r = ablate.compare_arms(df, {"predictor.name": "directpred"}, {"predictor.name": "linear"}, "z_std")
>>> (r.n_a, r.n_b), r.ci_low <= r.diff <= r.ci_high
((2, 2), True)
>>> path = ablate.export_trunk(summary.results_dir, best="probe_top1_best", to=f"{storage}/trunk.pt")
>>> trunk = ablate.load_exported(path)                 # the online trunk, weights as trained
>>> trunk.feature_dim
64
>>> import shutil; shutil.rmtree(storage)              # (the doctest cleans up after itself)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from ablate.errors import UserError

if TYPE_CHECKING:  # the API imports its rooms on use: `import ablate` and `ablate --help` stay instant
    import pandas as pd
    from matplotlib.figure import Figure

    from ablate.analysis.compare import CompareResult
    from ablate.analysis.views import TableView
    from ablate.runner.recorder import RunSummary
    from ablate.sweep.expand import Trial
    from ablate.sweep.validated import Sweep

__all__ = [
    "load_sweep",
    "check",
    "expand_sweep",
    "run",
    "run_trial",
    "load_results",
    "status",
    "table",
    "figures",
    "plot",
    "report",
    "compare_sweeps",
    "compare_arms",
    "export_trunk",
    "load_exported",
    "submit",
    "bench",
    "data_fetch",
    "data_check",
]


# ---------------------------------------------------------------- the arguments' families
def _instance(value: Any, module: str, *names: str) -> bool:
    """``value`` is an instance of ``module.<name>``: a module not imported yet has made none, so the
    check costs no import."""
    mod = sys.modules.get(module)
    return mod is not None and any(isinstance(value, getattr(mod, n)) for n in names)


def _is_path(v: Any) -> bool:
    text = os.fspath(v) if isinstance(v, (str, os.PathLike)) else None
    return isinstance(text, str) and text != "" and "\0" not in text


def _is_sweep(v: Any) -> bool:
    return _is_path(v) or _instance(v, "ablate.sweep.validated", "Sweep")


def _is_source(v: Any) -> bool:
    return (
        _is_sweep(v)
        or _instance(v, "pandas", "DataFrame")
        or _instance(v, "ablate.results.layout", "SweepDir")
        or _instance(v, "ablate.results.location", "Location")
    )


def _is_names(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) and x for x in v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# family -> (the test, what it takes)
FAMILIES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "path": (_is_path, "a path (a non-empty str or pathlib.Path)"),
    "location": (_is_path, "a path or a URI such as s3://bucket/prefix (a non-empty str or pathlib.Path)"),
    "sweep": (_is_sweep, "a sweep file or results folder (str or pathlib.Path) or a loaded Sweep"),
    "source": (_is_source, "a results DataFrame, a results folder or URI, a sweep file or a loaded Sweep"),
    "sample": (
        lambda v: _is_source(v) or (isinstance(v, (list, tuple)) and all(map(_is_number, v))) or hasattr(v, "dtype"),
        "a source (results folder, DataFrame, sweep file, Sweep) or a list of per-seed numbers",
    ),
    "config": (
        lambda v: isinstance(v, Mapping) or _is_path(v) or _instance(v, "ablate.config.trial", "TrialConfig"),
        "a mapping of config keys, a TrialConfig or a YAML file",
    ),
    "mapping": (
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
        "a mapping with str keys, such as {'train.epochs': 2}",
    ),
    "names": (_is_names, "a list of non-empty strings, such as ['predictor.name']"),
    "names_or_text": (lambda v: _is_names(v) or (isinstance(v, str) and v), "a string or a list of strings"),
    "pair": (lambda v: _is_names(v) and len(v) == 2, "two strings, such as ('A', 'B')"),
    "text": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "paper": (lambda v: isinstance(v, bool) or _is_path(v), "True, False or the path of a paper-numbers CSV"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "number": (_is_number, "a number, such as 0.95"),
    "stream": (lambda v: callable(getattr(v, "write", None)), "a text stream with .write(), such as sys.stdout"),
    "callable": (callable, "a function taking one row (a dict)"),
}
# Every parameter of the public functions, by name: one name, one family, in every function.
PARAMS = {
    **dict.fromkeys(("path", "root"), "path"),
    **dict.fromkeys(("storage", "out", "to"), "location"),
    **dict.fromkeys(("sweep_or_path", "sweep"), "sweep"),
    **dict.fromkeys(("source", "results"), "source"),
    **dict.fromkeys(("a", "b"), "sample"),
    **dict.fromkeys(("overrides", "where", "arm_a", "arm_b"), "mapping"),
    **dict.fromkeys(("rows", "cols", "by", "formats", "sets"), "names"),
    **dict.fromkeys(("address", "metric", "protocol", "fmt", "trial_id", "best", "mode", "device", "name"), "text"),
    **dict.fromkeys(("mirror", "tracking_uri", "time", "partition", "account"), "text"),
    **dict.fromkeys(("validate_paths", "restart", "final", "cost", "shared_storage_ok", "dry_run", "quick"), "bool"),
    **dict.fromkeys(("max_concurrent", "threads", "epoch", "head_classes", "nodes", "cpus_per_task"), "count"),
    **dict.fromkeys(("gpus_per_node", "grace", "max_requeues"), "count"),
    "log": "names_or_text",
    "sbatch_args": "names",
    "config": "config",
    "paper": "paper",
    "confidence": "number",
    "labels": "pair",
    "only": "names_or_text",
    "stream": "stream",
    "report": "callable",
}
CHOICES = {"fmt": ("html", "markdown"), "mode": ("max", "min")}  # --protocol: the protocols module checks it


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every argument checked against its family (:data:`PARAMS`) before it runs: a wrong
    one is one UserError naming the argument, what it got and what it takes, not a failure frames
    deep (or a folder literally named ``['a']``). None passes where the default is None."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name, value in signature.bind(*args, **kwargs).arguments.items():
            param = signature.parameters[name]
            if param.kind is not param.VAR_KEYWORD and not (value is None and param.default is None):
                _check(fn.__name__, name, value)
        return fn(*args, **kwargs)

    return checked


def _check(fn: str, name: str, value: Any) -> None:
    ok, takes = FAMILIES[PARAMS[name]]
    if not ok(value):
        raise UserError(f"ablate.{fn}: {name}={_shown(value)}; {name} takes {takes}")
    if name in CHOICES and value not in CHOICES[name]:
        raise UserError(f"ablate.{fn}: {name}={value!r}; choose {' or '.join(CHOICES[name])}")


def _shown(value: Any) -> str:
    """``value`` as a message shows it: its repr (short) and its type."""
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({type(value).__name__})"


def _known(fn: Callable[..., Any], given: Mapping[str, Any], takes: Sequence[str]) -> None:
    """The options ``takes`` of ``fn``'s ``**kwargs`` checked like its named arguments: a name it does
    not take or a value outside its family is one UserError."""
    for name, value in given.items():
        if name not in takes:
            params = inspect.signature(fn).parameters.values()
            names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)] + list(takes)
            near = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise UserError(f"ablate.{fn.__name__}: no argument {name!r}; {hint}it takes {', '.join(names)}")
        if value is not None:
            _check(fn.__name__, name, value)


RUN_NAMED = ("address", "max_concurrent", "restart", "stream")  # run()'s own arguments among RunOptions'


def _ray_address(address: str | None) -> str | None:
    """The Ray cluster to attach to: ``address``, else ``RAY_ADDRESS`` as ``ray.init()`` reads it;
    checked to answer, in seconds, before Ray is asked. None: a local Ray on this machine."""
    from ablate.runner.address import check_address

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_address(address)
    return address


def _dotted(overrides: Mapping[str, Any] | None, sets: Mapping[str, Any]) -> dict[str, Any]:
    """``--set`` overrides from a mapping and keyword arguments (``train__epochs=2`` = ``train.epochs``)."""
    return {**(overrides or {}), **{k.replace("__", "."): v for k, v in sets.items()}}


def _writable(where: Any, what: str, *, folder: bool = False) -> None:
    """Refuse, before any work, an output ``where`` that could never be written (one line naming ``what``)."""
    from ablate.results.location import Location

    Location.parse(where).check_writable(what, folder=folder)


def _storage_writable(loc: Any, what: str) -> None:
    """A sweep's results folder ``loc`` (a Location) can be made and written: its storage root first
    when the folder is new, so a root that is a file or a device is named as such."""
    if loc.local is not None and not loc.local.exists():
        _writable(loc.parent, what, folder=True)
    _writable(loc, what, folder=True)


# ---------------------------------------------------------------- sweeps
@_checked
def load_sweep(
    path: str | Path, overrides: Mapping[str, Any] | None = None, /, *, validate_paths: bool = True, **sets: Any
) -> Sweep:
    """Load and validate a sweep file (or a results folder: the sweep as it was run there).

    Overrides are ``ablate run --set`` keys: a mapping, or keyword arguments where ``__`` stands for
    the dot. Mistakes raise :class:`ablate.errors.UserError` with the file line and the fix.

    >>> import ablate
    >>> sweep = ablate.load_sweep("sweeps/smoke.yaml", train__epochs=2, seeds=[0, 1])
    >>> sweep.name, sweep.kind, sweep.seeds, sweep.base["train"]["epochs"]
    ('smoke', 'ssl', (0, 1), 2)
    >>> ablate.load_sweep("sweeps/smoke.yaml", optim__lrr=0.1)
    Traceback (most recent call last):
    ...
    ablate.errors.UserError: --set: optim.lrr: unknown key; did you mean 'lr'? ...
    """
    from ablate.sweep.load import read_sweep

    return read_sweep(path, _dotted(overrides, sets), validate_paths=validate_paths)


@_checked
def check(
    sweep_or_path: Sweep | str | Path,
    overrides: Mapping[str, Any] | None = None,
    /,
    *,
    validate_paths: bool = True,
    address: str | None = None,
    **sets: Any,
) -> str:
    """What ``ablate check`` prints: trials, axes, resources, the memory and compute estimates (starts
    nothing; with ``address``, also whether a trial fits on that Ray cluster).

    >>> import ablate
    >>> print(ablate.check("sweeps/smoke.yaml"))  # doctest: +ELLIPSIS
    sweep        sweeps/smoke.yaml
    name         smoke  (kind ssl)
    ...
    """
    from ablate.runner.resources import check_cluster, check_local
    from ablate.sweep.describe import describe
    from ablate.sweep.load import locate

    sweep, folder = locate(sweep_or_path, None, _dotted(overrides, sets), validate_paths)
    if validate_paths:  # this machine's storage; --no-data checks a sweep for another machine
        _storage_writable(folder.loc, "storage")
    address = _ray_address(address)
    if not address and validate_paths:
        check_local(sweep)  # the local Ray of `ablate run` on this machine
    lines = [describe(sweep), *sweep.trial_kind.estimate(sweep)]  # its kind's memory / compute estimate
    if address:
        check_cluster(sweep, address, folder)
        lines.append(f"resources fit on the cluster at {address} (this machine's own CPUs and GPUs were not checked)")
    return "\n".join(line for line in lines if line)


@_checked
def expand_sweep(sweep_or_path: Sweep | str | Path) -> list[Trial]:
    """The sweep's trials in run order (seeds outermost); each has ``trial_id``, ``config``, ``axes``, ``label``.

    >>> import ablate
    >>> trials = ablate.expand_sweep("sweeps/smoke.yaml")
    >>> len(trials), trials[0].label
    (8, 'predictor=none, ema.tau=0.996, seed=0')
    >>> trials[0].config.predictor.name, len(trials[0].trial_id)
    ('none', 12)
    """
    from ablate.sweep.load import locate

    return list(locate(sweep_or_path)[0].trials)


@_checked
def run(
    sweep_or_path: Sweep | str | Path,
    overrides: Mapping[str, Any] | None = None,
    /,
    *,
    storage: str | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    restart: bool = False,
    stream: IO[str] | None = None,
    **kwargs: Any,
) -> RunSummary:
    """``ablate run``: every unfinished trial with Ray Tune into ``<storage>/<sweep>/`` (a results
    folder given as the target runs into itself); a RunSummary (``results_dir``, ``total``,
    ``skipped``, ``ran``, ``failed``, ``exit_code``). Runs resume.

    Other keyword arguments go to :func:`ablate.runner.driver.run_sweep` (``log=["tensorboard"]``,
    ``tracking_uri``, ``shared_storage_ok``). Progress goes to ``stream`` (default stdout)."""
    from ablate.cluster.options import check_count
    from ablate.runner.driver import RunOptions, run_sweep
    from ablate.sweep.load import locate

    _known(run, kwargs, [f.name for f in dataclasses.fields(RunOptions) if f.name not in RUN_NAMED])
    if max_concurrent is not None:  # 0: the sweep's max_concurrent
        check_count("--max-concurrent", max_concurrent, 0)
    sweep, folder = locate(sweep_or_path, storage, overrides, validate_paths=True)
    _storage_writable(folder.loc, "--storage" if storage else "storage")
    return run_sweep(
        sweep,
        folder,
        address=_ray_address(address),
        max_concurrent=max_concurrent,
        restart=restart,
        stream=stream,
        **kwargs,
    )


@_checked
def run_trial(
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    /,
    *,
    report: Any = None,
    out: str | Path | None = None,
    **sets: Any,
) -> pd.DataFrame:
    """``ablate trial`` in this process: one trial (a ``kind`` key picks the kind; default a pretraining
    trial); its rows (one per evaluated epoch) as a DataFrame in the results schema. ``config`` is a
    sparse mapping, a built config, a YAML file or None (defaults: digits, convnet); installed packages'
    plugins (entry points) are loaded first; ``report(row)`` is also called per row if given. With
    ``out`` (a ``.parquet`` file) the rows are written there after every row and the trunk weights
    beside it; a trial that raises leaves a failed row there, and the error propagates.

    >>> import ablate
    >>> df = ablate.run_trial(train__epochs=1, train__steps_per_epoch=2, train__device="cpu",
    ...                       eval__probe_epochs=2, predictor__name="directpred")
    >>> df[["epoch", "is_final", "status", "predictor.name"]].values.tolist()
    [[1, True, 'ok', 'directpred']]
    >>> bool(0.0 <= df.probe_top1_best.iloc[0] <= 1.0)
    True
    """
    if out is not None:  # before the training (and torch's import), not after it
        _writable(out, "--out")
    from ablate.kinds.single import run_single
    from ablate.sweep.plugins import load_entry_points

    load_entry_points()
    return run_single(config, _dotted(overrides, sets), report=report, out=out)


# ---------------------------------------------------------------- results
@_checked
def load_results(source: Any, *, storage: str | None = None, final: bool = False) -> pd.DataFrame:
    """The results as a DataFrame: one row per (trial, evaluated epoch), every config leaf a column.
    ``final=True`` keeps each trial's final row only. Same as ``pandas.read_parquet("results/<sweep>")``.

    >>> import ablate, pandas as pd
    >>> ablate.load_results(pd.DataFrame({"trial_id": ["a", "a"], "is_final": [False, True]}), final=True)
      trial_id  is_final
    1        a      True
    """
    from ablate.analysis.sources import read_source
    from ablate.results.io import final_rows

    df = read_source(source, storage=storage).rows
    return final_rows(df) if final else df


@_checked
def status(source: Any, *, storage: str | None = None) -> str:
    """What ``ablate status`` prints: done / failed / diverged / interrupted / missing trials."""
    from ablate.analysis.sources import sweep_holdings
    from ablate.analysis.status import render_status, trial_states
    from ablate.sweep.load import locate

    sweep, folder = locate(source, storage)
    held = sweep_holdings(sweep, folder)
    return "\n".join(
        [render_status(trial_states(sweep, held.rows, folder), folder.display()), *held.notes(folder.display())]
    )


@_checked
def table(
    source: Any,
    sweep: Any = None,
    *,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    metric: str | None = None,
    paper: bool | str | Path = False,
    protocol: str | None = None,
    cost: bool = False,
    storage: str | None = None,
    **spec: Any,
) -> TableView:
    """The paper-shaped table (``ablate table``) as an object: mean ± std over seeds per cell.

    The layout is the sweep's ``table:`` block (a results folder remembers its sweep), changed by
    ``rows`` / ``cols`` / ``metric`` and any other :class:`ablate.sweep.schema.TableSpec` field
    (``scale``, ``digits``, ``caption``, ``labels``...). ``paper=True`` adds the paper's numbers;
    ``protocol`` (best, final, max, top<k>) is which probe number stands for a trial (:mod:`ablate.analysis.protocols`);
    ``cost=True`` shows the measured device-hours per trial instead, the sweep's total in the caption.

    >>> import ablate, pandas as pd
    >>> df = pd.DataFrame({"trial_id": list("abcd"), "seed": [0, 1, 0, 1], "epoch": 100, "is_final": True,
    ...                    "status": "ok", "predictor.name": ["linear", "linear", "directpred", "directpred"],
    ...                    "probe_top1_best": [0.7712, 0.7750, 0.7790, 0.7802]})
    >>> t = ablate.table(df, rows=["predictor.name"], labels={"predictor.name": "predictor"}, caption="Table 1")
    >>> t.to_frame()[["row", "mean", "std", "n"]].round(2).values.tolist()
    [['predictor=directpred', 77.96, 0.08, 2], ['predictor=linear', 77.31, 0.27, 2]]
    >>> print(t.render("markdown"))
    **Table 1 (results). probe_top1_best x100, best of probe epochs (paper); mean ± std over 2 seeds at the final epoch, n = seeds per cell.**
    <BLANKLINE>
    | predictor | probe_top1_best |
    |:---|---:|
    | predictor=directpred | 77.96 ± 0.08 (n=2) |
    | predictor=linear | 77.31 ± 0.27 (n=2) |
    """
    from ablate.analysis.paper import load_paper
    from ablate.analysis.protocols import with_protocol
    from ablate.analysis.sources import read_source
    from ablate.analysis.tables import build_table, expected_configs
    from ablate.analysis.views import TableView, table_spec

    if cost and protocol is not None:
        raise UserError(
            "table --cost shows each trial's measured device time, which no probe --protocol reads: leave one out"
        )
    src = read_source(source, sweep, storage)
    df, sw = src.require_rows(source), src.sweep
    spec_ = with_protocol(table_spec(sw, rows, cols, metric, spec), protocol)
    if cost:
        from ablate.analysis.cost import cost_spec, device_cost

        df, unit = device_cost(df, sw)
        spec_, paper = cost_spec(df, spec_, unit), False
    ref = None if paper is False else load_paper(None if paper is True else paper)
    table = build_table(df, spec_, ref, expected_configs(sw), sw.name if sw is not None else None)
    return TableView(table, src.notes)


@_checked
def figures(
    source: Any,
    sweep: Any = None,
    *,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    metric: str | None = None,
    storage: str | None = None,
) -> dict[str, Figure]:
    """The figures of ``ablate plot`` as matplotlib Figures, by name (``accuracy``, ``z_std``,
    ``eigen``, ``spectra_<arm>``): shown inline by Jupyter, saved with ``fig.savefig(...)``.
    Arms are the table's rows x columns (``rows`` / ``cols`` change them). Figures without data
    (e.g. ``eigen`` for MLP predictors) are left out."""
    from ablate.analysis.plots import sweep_figures
    from ablate.analysis.sources import read_source
    from ablate.analysis.tables import expected_configs
    from ablate.analysis.views import table_spec

    src = read_source(source, sweep, storage)
    df, sw = src.require_rows(source), src.sweep
    spec = table_spec(sw, rows, cols, metric, {}, required=False)
    pairs = sweep_figures(df, spec, expected=expected_configs(sw), title=sw.name if sw is not None else None)
    return {name: fig for name, fig in pairs if fig is not None}


@_checked
def plot(
    source: Any,
    out: str | Path | None = None,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    protocol: str | None = None,
    storage: str | None = None,
) -> list[Path | str]:
    """``ablate plot``: write the sweep's figures (default ``<storage>/_<sweep>/figures/``); return the files.
    ``protocol`` picks the probe curve (best or final probe epoch; max plots the same curves as best,
    whose peaks it takes). What the folder held besides the sweep's trials is said on stderr."""
    from ablate.analysis.plots import plot_sweep
    from ablate.analysis.protocols import with_protocol
    from ablate.analysis.sources import sweep_source
    from ablate.analysis.tables import expected_configs
    from ablate.analysis.views import table_spec

    if out is not None:  # before the results are read
        _writable(out, "--out", folder=True)
    src = sweep_source(source, storage)
    sweep, folder = src.sweep, src.folder
    if out is None:
        _writable(folder.figures, "--out", folder=True)
    for note in src.notes:
        print(note, file=sys.stderr)
    return plot_sweep(
        src.require_rows(source),
        with_protocol(table_spec(sweep, required=False), protocol),
        out or folder.figures,
        formats=formats,
        expected=expected_configs(sweep),
        title=sweep.name,
    )


@_checked
def report(
    source: Any,
    fmt: Literal["html", "markdown"] = "html",
    out: str | Path | None = None,
    *,
    paper: bool | str | Path | None = None,
    protocol: str | None = None,
    storage: str | None = None,
) -> Path | str:
    """``ablate report``: the sweep's table, figures, provenance and sweep file in one file (default
    ``<storage>/_<sweep>/report.html``); ``paper=False`` leaves the paper's numbers out; ``protocol`` as for
    :func:`table`."""
    from ablate.analysis.protocols import with_protocol
    from ablate.analysis.report import write_report
    from ablate.analysis.sources import sweep_source
    from ablate.analysis.tables import expected_configs
    from ablate.analysis.views import table_spec

    if out is not None:  # before the results are read
        _writable(out, "--out")
    src = sweep_source(source, storage)
    sweep, folder = src.sweep, src.folder
    if out is None:
        _writable(folder.report(fmt), "--out")
    for note in src.notes:
        print(note, file=sys.stderr)
    return write_report(
        src.require_rows(source),
        with_protocol(table_spec(sweep, required=False), protocol),
        out or folder.report(fmt),
        sweep=sweep,
        notes=src.shared_notes(),
        fmt=fmt,
        paper=paper,
        expected=expected_configs(sweep),
        title=sweep.name,
    )


# ---------------------------------------------------------------- is a gap real?
@_checked
def compare_sweeps(
    a: Any,
    b: Any,
    metric: str = "probe_top1_best",
    *,
    where: Mapping[str, Any] | None = None,
    by: Sequence[str] | None = None,
    confidence: float = 0.95,
    labels: tuple[str, str] | None = None,
    protocol: str | None = None,
) -> CompareResult | pd.DataFrame:
    """Welch's t-test of A against B over seeds: difference of means, CI, t, dof, p.

    ``a`` / ``b``: sources (results folders, DataFrames...) or plain lists of per-seed values.
    ``where`` keeps only trials with these config values on both sides; ``by`` compares cell by
    cell (a DataFrame, one row per cell); ``protocol`` as for :func:`table` (it sets the probe
    metric). See :mod:`ablate.analysis.compare`.

    >>> import ablate
    >>> r = ablate.compare_sweeps([77.1, 77.6, 77.3, 77.5], [77.0, 77.2, 77.1, 76.9], "probe_top1_best")
    >>> print(r.summary(digits=2))
    A - B: probe_top1_best +0.33 (95% CI -0.01 .. +0.66); means 77.38 ± 0.22 (n=4) vs 77.05 ± 0.13 (n=4); Welch t = 2.53, dof = 4.82, p = 0.0541: not significant at 5%
    """
    from ablate.analysis.arms import rows_under
    from ablate.analysis.compare import compare, compare_by
    from ablate.analysis.protocols import metric_under
    from ablate.analysis.sources import rows_to_compare

    def data(x: Any) -> Any:
        if isinstance(x, (list, tuple)) or (hasattr(x, "__array__") and not hasattr(x, "columns")):
            return x
        return rows_under(rows_to_compare(x), metric, protocol, where)[0]

    names = labels or tuple(Path(str(x)).name if isinstance(x, (str, Path)) else n for x, n in ((a, "A"), (b, "B")))
    a, b = data(a), data(b)
    metric = metric_under(metric, protocol)[0]
    if by:
        return compare_by(a, b, list(by), metric, confidence=confidence, labels=names)
    return compare(a, b, metric, confidence=confidence, labels=names)


@_checked
def compare_arms(
    source: Any,
    arm_a: Mapping[str, Any],
    arm_b: Mapping[str, Any],
    metric: str = "probe_top1_best",
    *,
    where: Mapping[str, Any] | None = None,
    by: Sequence[str] | None = None,
    confidence: float = 0.95,
    protocol: str | None = None,
) -> CompareResult | pd.DataFrame:
    """Two arms of one sweep, each picked by config values (:func:`ablate.analysis.compare.compare_two_arms`);
    ``by`` compares them cell by cell (a DataFrame, one row per cell); ``protocol`` as for :func:`table`.

    >>> import ablate, pandas as pd
    >>> df = pd.DataFrame({"trial_id": list("abcdef"), "is_final": True, "status": "ok",
    ...                    "predictor.name": ["directpred"] * 3 + ["linear"] * 3,
    ...                    "probe_top1_best": [0.779, 0.781, 0.780, 0.772, 0.776, 0.774]})
    >>> r = ablate.compare_arms(df, {"predictor.name": "directpred"}, {"predictor.name": "linear"})
    >>> round(r.diff * 100, 2), r.significant
    (0.6, True)
    """
    from ablate.analysis.arms import rows_under
    from ablate.analysis.compare import compare_two_arms
    from ablate.analysis.sources import rows_to_compare

    df, metric = rows_under(rows_to_compare(source), metric, protocol, where)
    return compare_two_arms(df, arm_a, arm_b, metric, confidence=confidence, by=list(by) if by else None)


# ---------------------------------------------------------------- pretrained weights
@_checked
def export_trunk(
    results: Any,
    trial_id: str | None = None,
    best: str | None = None,
    mode: str = "max",
    to: str | Path | None = None,
    *,
    storage: str | None = None,
    **kwargs: Any,
) -> Path:
    """``ablate export``: one trial's trunk as a plain state_dict + JSON sidecar
    (:mod:`ablate.analysis.export`). ``results`` is a results folder, a sweep file or a loaded Sweep;
    ``best`` picks among that sweep's trials (one expansion: :mod:`ablate.analysis.sources`)."""
    from ablate.analysis.export import write_trunk
    from ablate.analysis.sources import sweep_source
    from ablate.results.layout import SweepDir
    from ablate.sweep.load import is_sweep_source

    options = inspect.signature(write_trunk).parameters.values()
    _known(export_trunk, kwargs, [p.name for p in options if p.kind is p.KEYWORD_ONLY and p.name != "among"])

    if to is not None:  # the weights and their sidecar, before anything is loaded
        _writable(to, "--to")
        _writable(Path(to).with_suffix(".json"), "--to (its sidecar)")
    else:
        _writable(Path.cwd(), "--to (default: the current folder)", folder=True)
    if not is_sweep_source(results):
        return write_trunk(SweepDir.at(results), trial_id, best, mode, to, **kwargs)
    src = sweep_source(results, storage)
    for note in src.notes:
        print(note, file=sys.stderr)
    return write_trunk(src.folder, trial_id, best, mode, to, among=src.rows, **kwargs)


@_checked
def load_exported(path: str | Path) -> Any:
    """The trunk module of an exported ``trunk.pt`` (+ sidecar), in eval mode."""
    from ablate.analysis.export import read_trunk

    return read_trunk(path)


# ---------------------------------------------------------------- clusters and costs
@_checked
def submit(
    source: Any,
    overrides: Mapping[str, Any] | None = None,
    /,
    *,
    storage: str | None = None,
    sets: Sequence[str] = (),
    max_concurrent: int | None = None,
    shared_storage_ok: bool = False,
    dry_run: bool = False,
    stream: IO[str] | None = None,
    **slurm: Any,
) -> str | None:
    """``ablate submit``: an sbatch script that runs the sweep on a Ray cluster of SLURM nodes; the
    job id (None with ``dry_run``). ``source`` is a sweep file or a results folder (then the job runs
    exactly the trials the folder holds, with its overrides); ``slurm``:
    :class:`ablate.cluster.options.SlurmOptions`. Nothing is opened on the storage: an s3:// URI
    stays text until the job runs."""
    import math

    from ablate.cluster.options import SlurmOptions
    from ablate.cluster.slurm import submit_sweep
    from ablate.config.tree import parse_set
    from ablate.results.layout import DEFAULT_STORAGE, SweepDir
    from ablate.results.remote import check_uri
    from ablate.sweep.load import read_sweep, results_folder

    _known(submit, slurm, [f.name for f in dataclasses.fields(SlurmOptions)])
    folder = results_folder(source)
    sweep = read_sweep(folder or source, {**(overrides or {}), **parse_set(sets)})
    slurm.setdefault("cpus_per_task", max(1, math.ceil(sweep.resources.cpu)))
    if folder is not None:  # the job reruns the folder itself: its sweep file and overrides, into it
        where, store = str(folder), str(folder.loc.parent)
    else:
        where, store = str(Path(sweep.path).resolve()), storage or sweep.storage or DEFAULT_STORAGE
    if "://" in str(store) and not str(store).lower().startswith("file:"):
        check_uri(str(store))  # its text, here (opening it asks the network): a URI the job could never open
    else:  # a path (file:// too), parsed here: the script and SLURM's logs go to <storage>/_<sweep>/slurm
        loc = SweepDir.of(sweep.name, store).loc
        if not dry_run:
            _storage_writable(loc, "--storage" if storage else "storage")
    return submit_sweep(
        sweep,
        where,
        store,
        SlurmOptions(**slurm),
        sets,
        max_concurrent=max_concurrent,
        shared_storage_ok=shared_storage_ok,
        dry_run=dry_run,
        stream=stream,
    )


@_checked
def bench(
    quick: bool = False,
    device: str = "auto",
    only: str | Sequence[str] | None = None,
    out: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """``ablate bench``: one row per measured figure (ours vs baseline, ratio, target, verdict)."""
    from ablate.benchmark.suite import parse_sections, run_bench

    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: must be at least 1")
    return run_bench(
        quick=quick,
        device=device,
        out_dir=Path(out) if out is not None else None,
        sections=parse_sections(only),
        threads=threads,
    )


# ---------------------------------------------------------------- datasets on disk
@_checked
def data_fetch(
    name: str, root: str | Path | None = None, *, mirror: str | None = None, stream: IO[str] | None = None
) -> Path:
    """``ablate data fetch``: the official archive of dataset ``name`` downloaded (resumable), verified (md5)
    and unpacked into ``<root>/<its folder>`` (root: ``$ABLATE_DATA``, else ``data``); returns that folder, a
    trial's ``data.root``. ``mirror`` (or ``$ABLATE_DATA_MIRROR``) serves the archive by file name. Progress
    and notes go to ``stream`` (default stderr); a dataset prepared by hand (``imagefolder``) prints how
    and raises UserError. See :mod:`ablate.datasets.fetch`."""
    from ablate.datasets.fetch import fetch

    return fetch(name, root, mirror=mirror, stream=stream)


@_checked
def data_check(name: str, root: str | Path | None = None) -> str:
    """``ablate data check``: what the folder of dataset ``name`` under ``root`` holds (files, sizes, shapes,
    class counts), checked without loading the images; UserError when it is missing or malformed."""
    from ablate.datasets.check import check_dataset

    return check_dataset(name, root)


def data_list() -> str:
    """``ablate data list``: one line per registered dataset (name, title, images, image size, classes,
    how to get it), read from the dataset records (:mod:`ablate.datasets.records`)."""
    from ablate.datasets.listing import list_lines

    return "\n".join(list_lines())
