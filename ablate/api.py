"""The Python API: everything the CLI does, from a notebook, with objects back instead of prints.

Re-exported as ``ablate.<name>``. Each function is a thin layer over the library function the CLI
command uses, so a notebook and ``ablate run`` produce the same results folder.

    load_sweep(path, **overrides)      a validated Sweep (``--set`` overrides as keyword arguments)
    check(path, **overrides)           the text ``ablate check`` prints
    expand_sweep(sweep)                its trials: [Trial(trial_id, config, axes, ...)]
    run(sweep, **overrides)            ``ablate run``: Ray Tune -> results/<sweep>/; a RunSummary
    run_trial(config, **overrides)     ``ablate trial`` in-process; the rows as a DataFrame
    load_results(source)               the results as a DataFrame (one row per trial and epoch)
    table(source, ...)                 the paper-shaped table: a TableView (renders, shows in Jupyter)
    figures(source, ...)               the ``ablate plot`` figures as matplotlib Figures (not saved)
    compare_sweeps(a, b) / compare_arms(df, arm_a, arm_b)   Welch's t-test over seeds
    export_trunk(results, ...) / load_exported(path)        the pretrained trunk as a state_dict

A ``source`` is a results DataFrame, a results folder (``results/<sweep>``, which remembers its
sweep file), a sweep file, or a loaded Sweep. The names avoid the module names of the package
(``ablate.expand``, ``ablate.results``, ``ablate.compare`` are modules), so both stay importable.

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
['accuracy', 'eigen', 'spectra_predictor=directpred_BYOL_EMA_0.996', 'spectra_predictor=linear_BYOL_EMA_0.996', 'z_std']
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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Mapping, Sequence

from ablate.errors import UserError

if TYPE_CHECKING:  # the API imports its heavy modules lazily: `import ablate` must stay instant
    import pandas as pd
    from matplotlib.figure import Figure

    from ablate.compare import CompareResult
    from ablate.expand import Trial
    from ablate.sweep import Sweep
    from ablate.tables import Cell, Table, TableSpec

__all__ = ["load_sweep", "check", "expand_sweep", "run", "run_trial", "load_results", "table", "TableView",
           "figures", "compare_sweeps", "compare_arms", "export_trunk", "load_exported"]


def _dotted(overrides: Mapping[str, Any] | None, sets: Mapping[str, Any]) -> dict[str, Any]:
    """``--set`` overrides from a mapping and keyword arguments (``train__epochs=2`` = ``train.epochs``)."""
    out = dict(overrides or {})
    out.update({k.replace("__", "."): v for k, v in sets.items()})
    return out


# ---------------------------------------------------------------- sweeps
def load_sweep(path: str | Path, overrides: Mapping[str, Any] | None = None, /, *, validate_paths: bool = True,
               **sets: Any) -> "Sweep":
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
    from ablate.sweep import load_sweep as _load

    p = Path(path)
    overrides = _dotted(overrides, sets)
    if p.is_dir():
        if not (p / "_sweep.yaml").is_file():
            raise UserError(f"{p}: not a results folder of `ablate run` (no _sweep.yaml); give the sweep file")
        saved = p / "_overrides.json"
        overrides = {**(json.loads(saved.read_text()) if saved.is_file() else {}), **overrides}
        p = p / "_sweep.yaml"
    return _load(p, overrides, validate_paths=validate_paths)


def _sweep(sweep_or_path: "Sweep | str | Path") -> "Sweep":
    return load_sweep(sweep_or_path) if isinstance(sweep_or_path, (str, Path)) else sweep_or_path


def check(sweep_or_path: "Sweep | str | Path", overrides: Mapping[str, Any] | None = None, /, *,
          validate_paths: bool = True, **sets: Any) -> str:
    """What ``ablate check`` prints: trials, axes, resources (starts nothing).

    >>> import ablate
    >>> print(ablate.check("sweeps/smoke.yaml"))  # doctest: +ELLIPSIS
    sweep        sweeps/smoke.yaml
    name         smoke  (kind ssl)
    ...
    """
    from ablate.expand import describe, expand

    s = load_sweep(sweep_or_path, overrides, validate_paths=validate_paths, **sets) \
        if isinstance(sweep_or_path, (str, Path)) else sweep_or_path
    return describe(s, [] if s.search else expand(s))


def expand_sweep(sweep_or_path: "Sweep | str | Path") -> "list[Trial]":
    """The sweep's trials in run order (seeds outermost); each has ``trial_id``, ``config``, ``axes``, ``label``.

    >>> import ablate
    >>> trials = ablate.expand_sweep("sweeps/smoke.yaml")
    >>> len(trials), trials[0].label
    (8, 'predictor=none, ema.tau=0.996, seed=0')
    >>> trials[0].config.predictor.name, len(trials[0].trial_id)
    ('none', 12)
    """
    from ablate.expand import expand

    return expand(_sweep(sweep_or_path))


def run(sweep_or_path: "Sweep | str | Path", overrides: Mapping[str, Any] | None = None, /, *,
        storage: str | None = None, address: str | None = None, max_concurrent: int | None = None,
        restart: bool = False, stream: IO[str] | None = None, **kwargs: Any) -> Any:
    """``ablate run``: every unfinished trial with Ray Tune into ``<storage>/<sweep>/``; a RunSummary
    (``results_dir``, ``total``, ``skipped``, ``ran``, ``failed``, ``exit_code``). Runs resume.

    Other keyword arguments go to :func:`ablate.runner.run_sweep` (e.g. ``log=["tensorboard"]``
    where it takes them). Progress goes to ``stream`` (default stdout). See the module example."""
    from ablate.runner import run_sweep

    if isinstance(sweep_or_path, (str, Path)):
        sweep = load_sweep(sweep_or_path, overrides)
    elif overrides:
        sweep = _reload(sweep_or_path, overrides)
    else:
        sweep = sweep_or_path
    return run_sweep(sweep, address=address, max_concurrent=max_concurrent, restart=restart, storage=storage,
                     stream=stream, **kwargs)


def _reload(sweep: "Sweep", overrides: Mapping[str, Any]) -> "Sweep":
    """A loaded sweep with more ``--set`` overrides (reloaded from its file, so they are validated)."""
    return load_sweep(sweep.path, {**sweep.overrides, **overrides})


def run_trial(config: Any = None, overrides: Mapping[str, Any] | None = None, /, *,
              report: Any = None, **sets: Any) -> "pd.DataFrame":
    """``ablate trial`` in this process: one pretraining trial; its rows (one per evaluated epoch)
    as a DataFrame in the results schema. ``config`` is a sparse mapping, a TrialConfig, a YAML file
    or None (defaults: digits, convnet); ``report(row)`` is also called per row if given.

    >>> import ablate
    >>> df = ablate.run_trial(train__epochs=1, train__steps_per_epoch=2, train__device="cpu",
    ...                       eval__probe_epochs=2, predictor__name="directpred")
    >>> df[["epoch", "is_final", "status", "predictor.name"]].values.tolist()
    [[1, True, 'ok', 'directpred']]
    >>> bool(0.0 <= df.probe_top1_best.iloc[0] <= 1.0)
    True
    """
    import pandas as pd

    from ablate.config import TrialConfig, load_trial_config
    from ablate.configtree import load_yaml, merge, set_dotted, to_dict
    from ablate.results import SSL_METRICS, schema_for, to_table
    from ablate.trial import run_trial as _run

    if isinstance(config, (str, Path)):
        tree, _ = load_yaml(config)
    elif isinstance(config, TrialConfig):
        tree = to_dict(config)
    else:
        tree = merge(dict(config or {}), {})
    for key, value in _dotted(overrides, sets).items():
        set_dotted(tree, key, value)
    cfg = load_trial_config(tree)
    rows: list[dict] = []

    def _report(row: dict) -> None:
        rows.append(row)
        if report is not None:
            report(row)

    _run(cfg, _report)
    if not rows:
        return pd.DataFrame()
    # through the results schema: the same columns and types as a results folder
    return to_table([{"sweep": "", **r} for r in rows], schema_for(TrialConfig, SSL_METRICS)).to_pandas()


# ---------------------------------------------------------------- results
def _source(source: Any, sweep: Any = None, storage: str | None = None) -> "tuple[pd.DataFrame, Sweep | None]":
    """(results DataFrame, the sweep if known) of a DataFrame / results folder / sweep file / Sweep."""
    import pandas as pd

    from ablate.runner import results_location
    from ablate.store import read_rows

    if isinstance(source, pd.DataFrame):
        return source, (_sweep(sweep) if sweep is not None else None)
    if isinstance(source, (str, Path)) and Path(source).is_file() and str(source).endswith((".yaml", ".yml")):
        source = load_sweep(source, validate_paths=False)
    if hasattr(source, "trial_kind"):  # a Sweep: its results location
        return read_rows(results_location(source, storage)), source
    path = Path(source)
    if "://" not in str(source) and not path.exists():
        raise UserError(f"{source}: no such results folder, Parquet file or sweep file")
    if path.is_file():  # one .parquet file
        from ablate.results import read_results

        return read_results(path), (_sweep(sweep) if sweep is not None else None)
    if sweep is None and (path / "_sweep.yaml").is_file():
        sweep = load_sweep(path, validate_paths=False)
    return read_rows(source), (_sweep(sweep) if sweep is not None else None)


def load_results(source: Any, *, storage: str | None = None, final: bool = False) -> "pd.DataFrame":
    """The results as a DataFrame: one row per (trial, evaluated epoch), every config leaf a column.
    ``final=True`` keeps each trial's final row only. Same as ``pandas.read_parquet("results/<sweep>")``.

    >>> import ablate, pandas as pd
    >>> ablate.load_results(pd.DataFrame({"trial_id": ["a", "a"], "is_final": [False, True]}), final=True)
      trial_id  is_final
    1        a      True
    """
    df, _ = _source(source, storage=storage)
    if final and not df.empty:
        df = df[df["is_final"].fillna(False).astype(bool)]
    return df


@dataclass(frozen=True)
class TableView:
    """A built table (:class:`ablate.tables.Table`) that renders itself: ``str()`` / ``repr()`` give
    the terminal form, Jupyter shows the HTML form, ``render(fmt)`` any of terminal, markdown,
    latex, csv, html; ``to_frame()`` the cells as a DataFrame; ``cell(row, col)`` one cell."""

    table: "Table"

    def render(self, fmt: str = "terminal") -> str:
        from ablate.tables import render

        return render(self.table, fmt)

    def __str__(self) -> str:
        return self.render("terminal")

    def __repr__(self) -> str:
        return self.render("terminal")

    def _repr_html_(self) -> str:
        return self.render("html")

    def _repr_markdown_(self) -> str:
        return self.render("markdown")

    def cell(self, row: str, col: str | None = None) -> "Cell":
        """The cell under the displayed row and column labels (one column: ``col`` may be left out)."""
        t = self.table
        return t.get(row, col if col is not None else t.col_label(t.col_values[0]))

    def to_frame(self) -> "pd.DataFrame":
        """One row per cell: row and column labels, mean, std, n (seeds), expected, flags, paper, diff."""
        import pandas as pd

        t = self.table
        out = []
        for r in t.row_values:
            for c in t.col_values:
                cell = t.cells.get((r, c))
                if cell is None:
                    continue
                out.append({"row": t.row_label(r), "col": t.col_label(c), "mean": cell.mean, "std": cell.std,
                            "n": cell.n, "expected": cell.expected, "flags": ",".join(sorted(cell.flags)),
                            "paper": cell.paper.mean if cell.paper else None, "diff": cell.diff})
        return pd.DataFrame(out)


def _spec(sweep: Any, rows: Sequence[str] | None, cols: Sequence[str] | None, metric: str | None,
          fields: Mapping[str, Any]) -> "TableSpec":
    import dataclasses

    from ablate.tables import TableSpec

    spec = getattr(sweep, "table", None) if sweep is not None else None
    spec = spec or TableSpec()
    changes = {k: tuple(v) for k, v in (("rows", rows), ("cols", cols)) if v is not None}
    if metric is not None:
        changes["metric"] = metric
    unknown = set(fields) - {f.name for f in dataclasses.fields(TableSpec)}
    if unknown:
        raise UserError(f"table: unknown option {sorted(unknown)[0]!r}; TableSpec fields are "
                        f"{', '.join(f.name for f in dataclasses.fields(TableSpec))}")
    return dataclasses.replace(spec, **changes, **fields)


def table(source: Any, sweep: Any = None, *, rows: Sequence[str] | None = None, cols: Sequence[str] | None = None,
          metric: str | None = None, paper: bool | str | Path = False,
          protocol: Literal["best", "final"] | None = None, storage: str | None = None, **spec: Any) -> TableView:
    """The paper-shaped table (``ablate table``) as an object: mean ± std over seeds per cell.

    The layout is the sweep's ``table:`` block (a results folder remembers its sweep), changed by
    ``rows`` / ``cols`` / ``metric`` and any other :class:`ablate.tables.TableSpec` field
    (``scale``, ``digits``, ``caption``, ``labels``...). ``paper=True`` adds the paper's numbers.

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
    from ablate.tables import build_table, expected_configs, load_paper, with_protocol

    df, sw = _source(source, sweep, storage)
    spec_ = with_protocol(_spec(sw, rows, cols, metric, spec), protocol)
    ref = None if paper is False else load_paper(None if paper is True else paper)
    return TableView(build_table(df, spec_, ref, expected_configs(sw) if sw is not None else None,
                                 sw.name if sw is not None else None))


def figures(source: Any, sweep: Any = None, *, rows: Sequence[str] | None = None, cols: Sequence[str] | None = None,
            metric: str | None = None, storage: str | None = None) -> "dict[str, Figure]":
    """The figures of ``ablate plot`` as matplotlib Figures, by name (``accuracy``, ``z_std``,
    ``eigen``, ``spectra_<arm>``): shown inline by Jupyter, saved with ``fig.savefig(...)``.
    Arms are the table's rows x columns (``rows`` / ``cols`` change them). Figures without data
    (e.g. ``eigen`` for MLP predictors) are left out."""
    from ablate import plots
    from ablate.tables import expected_configs

    df, sw = _source(source, sweep, storage)
    spec = _spec(sw, rows, cols, metric, {})
    title = sw.name if sw is not None else None
    expected = expected_configs(sw) if sw is not None else None
    pairs = plots.sweep_figures(df, spec, expected=expected, title=title)
    return {name: fig for name, fig in pairs if fig is not None}


# ---------------------------------------------------------------- is a gap real?
def compare_sweeps(a: Any, b: Any, metric: str = "probe_top1_best", *, where: Mapping[str, Any] | None = None,
                   by: Sequence[str] | None = None, confidence: float = 0.95,
                   labels: tuple[str, str] | None = None) -> "CompareResult | pd.DataFrame":
    """Welch's t-test of A against B over seeds: difference of means, CI, t, dof, p.

    ``a`` / ``b``: sources (results folders, DataFrames...) or plain lists of per-seed values.
    ``where`` keeps only trials with these config values on both sides; ``by`` compares cell by
    cell (a DataFrame, one row per cell). See :mod:`ablate.compare`.

    >>> import ablate
    >>> r = ablate.compare_sweeps([77.1, 77.6, 77.3, 77.5], [77.0, 77.2, 77.1, 76.9], "probe_top1_best")
    >>> print(r.summary(digits=2))
    A - B: probe_top1_best +0.33 (95% CI -0.01 .. +0.66); means 77.38 ± 0.22 (n=4) vs 77.05 ± 0.13 (n=4); Welch t = 2.53, dof = 4.82, p = 0.0541: not significant at 5%
    """
    from ablate.compare import compare, compare_by, select

    def data(x: Any) -> Any:
        if isinstance(x, (list, tuple)) or (hasattr(x, "__array__") and not hasattr(x, "columns")):
            return x
        df, _ = _source(x)
        return select(df, where) if where else df

    names = labels or tuple(Path(str(x)).name if isinstance(x, (str, Path)) else n for x, n in ((a, "A"), (b, "B")))
    if by:
        return compare_by(data(a), data(b), list(by), metric, confidence=confidence, labels=names)
    return compare(data(a), data(b), metric, confidence=confidence, labels=names)


def compare_arms(source: Any, arm_a: Mapping[str, Any], arm_b: Mapping[str, Any], metric: str = "probe_top1_best",
                 *, where: Mapping[str, Any] | None = None, confidence: float = 0.95) -> "CompareResult":
    """Two arms of one sweep, each picked by config values (:func:`ablate.compare.compare_arms`).

    >>> import ablate, pandas as pd
    >>> df = pd.DataFrame({"trial_id": list("abcdef"), "is_final": True, "status": "ok",
    ...                    "predictor.name": ["directpred"] * 3 + ["linear"] * 3,
    ...                    "probe_top1_best": [0.779, 0.781, 0.780, 0.772, 0.776, 0.774]})
    >>> r = ablate.compare_arms(df, {"predictor.name": "directpred"}, {"predictor.name": "linear"})
    >>> round(r.diff * 100, 2), r.significant
    (0.6, True)
    """
    from ablate.compare import compare_arms as _arms, select

    df, _ = _source(source)
    return _arms(select(df, where) if where else df, arm_a, arm_b, metric, confidence=confidence)


# ---------------------------------------------------------------- pretrained weights
def export_trunk(results: Any, trial_id: str | None = None, best: str | None = None, mode: str = "max",
                 to: str | Path | None = None, **kwargs: Any) -> Path:
    """``ablate export``: one trial's trunk as a plain state_dict + JSON sidecar (:mod:`ablate.export`).
    ``results`` may also be a loaded Sweep (its results location)."""
    from ablate.export import export_trunk as _export

    if hasattr(results, "trial_kind"):
        from ablate.runner import results_location

        results = results_location(results, kwargs.pop("storage", None))
    return _export(results, trial_id, best, mode, to, **kwargs)  # type: ignore[arg-type]


def load_exported(path: str | Path) -> Any:
    """The trunk module of an exported ``trunk.pt`` (+ sidecar), in eval mode (:func:`ablate.export.load_exported`)."""
    from ablate.export import load_exported as _load

    return _load(path)
