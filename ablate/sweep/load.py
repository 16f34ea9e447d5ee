"""Sweep files: loading and strict validation (everything is checked before anything runs).

A sweep file is YAML with a ``base`` trial config, axes to vary (``grid``, ``cases``, ``seeds``) or an
Optuna ``search`` space, and how to run it (``resources``, ``max_concurrent``, ``checkpoint``...).
:func:`read_sweep` parses it (:mod:`ablate.config.yamlfile`: lines of every key, ``${VAR}`` /
``${VAR:-default}`` from the environment), applies ``--set`` overrides, builds the schema
(:mod:`ablate.sweep.schema`, strict via :mod:`ablate.config.tree`) and then builds every grid point /
case of the trial config and expands the trials (:mod:`ablate.sweep.expand`), so a value that makes
an invalid trial is reported at the line of the grid key or case that produced it. Every problem is
ONE line ``<file>:<line>: <key path>: <problem>; <fix>`` raised as :class:`UserError`.

A results folder of ``ablate run`` (a path or a URI) keeps the sweep file it ran and its ``--set``
overrides; reading the folder gives that very sweep back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ablate.config.tree import Source, build, did_you_mean, fail, set_dotted
from ablate.config.yamlfile import decode_text, expand_tree, parse_yaml, read_yaml
from ablate.datasets.records import DATASETS
from ablate.errors import UserError
from ablate.kinds.registry import DEFAULT_KIND, TrialKind, get_kind
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from ablate.results.schema import config_columns
from ablate.sweep import expand, prefix
from ablate.sweep.plugins import Plugin, is_file_entry, load_entry_points, load_plugins
from ablate.sweep.schema import Distribution, MetricSpec, SweepFile, fixed_key_problem
from ablate.sweep.validated import Case, GridAxis, Sweep, SweepSource, undot

TOP_KEYS = tuple(f.name for f in dataclasses.fields(SweepFile))


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> set[str]:
    """Apply ``--set`` keys: ``seeds=[0]`` / ``resources.gpu=1`` (top-level sweep keys) or
    ``base.optim.lr=0.1`` / ``optim.lr=0.1`` (the trial config). Returns the file paths replaced."""
    paths: set[str] = set()
    for key, value in overrides.items():
        key = str(key)
        top = key.split(".")[0]
        full = key if top in TOP_KEYS else f"base.{key}"
        if full.startswith("base."):
            base = data.get("base")
            data["base"] = base = undot(base) if isinstance(base, Mapping) else {}
            set_dotted(base, full[len("base.") :], value)
        else:
            set_dotted(data, full, value)
        paths.add(full)
    return paths


def read_sweep(
    source: str | Path | Location | SweepDir, overrides: Mapping[str, Any] | None = None, *, validate_paths: bool = True
) -> Sweep:
    """Load, validate completely and expand a sweep file, or the sweep a results folder was run with.

    ``overrides`` are ``--set`` dotted keys (:func:`ablate.config.tree.parse_set`): trial-config keys go
    into ``base`` (``train.epochs``), top-level sweep keys (``seeds``, ``max_concurrent``,
    ``resources.gpu``) replace the file's; a results folder's own overrides apply first.
    ``validate_paths=False`` skips the dataset-existence checks (``--no-data``).
    """
    folder = results_folder(source)
    if folder is not None:
        saved = json.loads(folder.overrides_file.read_text()) if folder.overrides_file.exists() else {}
        file = str(folder.sweep_file)
        data, lines, text = parse_yaml(decode_text(folder.sweep_file.read_bytes(), file), file)
        overrides = {**saved, **(overrides or {})}
    else:
        file = str(source)
        data, lines, text = read_yaml(file)
    plugin_files = kept_plugins(folder) if folder is not None else None
    return _build(file, data, lines, text, dict(overrides or {}), validate_paths, plugin_files)


def kept_plugins(folder: SweepDir) -> Path | None:
    """A local folder holding the plugin files a results folder's run kept (``ablate run`` saves them
    beside its sweep file), fetched into a temporary folder when the results live behind a URI."""
    saved = folder.plugins
    if not saved.exists():
        return None
    if saved.local is not None:
        return saved.local
    local = Path(tempfile.mkdtemp(prefix="ablate-plugins-"))
    for item in saved.children():
        (local / item.name).write_bytes(item.read_bytes())
    return local


def results_folder(source: str | Path | Location | SweepDir) -> SweepDir | None:
    """The results folder ``source`` names (a folder that holds the sweep file it ran), else None."""
    if isinstance(source, SweepDir):
        folder = source
    elif isinstance(source, Location) or "://" in str(source) or Path(source).is_dir():
        folder = SweepDir.at(source)
    else:
        return None
    moved = folder.upgrade_layout() if not folder.has_sweep() else []
    if moved:  # written by an older ablate: its sweep file and the rest go beside the trial files now
        print(
            f"{folder}: moved {', '.join(moved)} to {folder.companion}/ (this version keeps the results "
            "folder to trial files only)",
            file=sys.stderr,
        )
    if not folder.has_sweep():
        raise UserError(
            f"{folder}: not a results folder of `ablate run` (no {folder.sweep_file.name}); give the sweep file"
        )
    return folder


def locate(
    target: Any, storage: Any = None, overrides: Mapping[str, Any] | None = None, validate_paths: bool = False
) -> tuple[Sweep, SweepDir]:
    """A sweep file, a results folder or a loaded Sweep -> (the sweep, its results folder). A results
    folder is its own location; a sweep's is ``<storage, else its storage:, else results>/<name>``."""
    if isinstance(target, Sweep):  # more overrides reload it from its file, so they are validated too
        sweep = read_sweep(target.path, {**target.overrides, **overrides}) if overrides else target
        return sweep, SweepDir.of(sweep.name, storage or sweep.storage)
    folder = results_folder(target)
    sweep = read_sweep(folder or target, overrides, validate_paths=validate_paths)
    return sweep, folder or SweepDir.of(sweep.name, storage or sweep.storage)


def is_sweep_source(source: Any) -> bool:
    """Whether ``source`` names a sweep: a loaded Sweep, a sweep file, or a results folder that keeps one."""
    if isinstance(source, Sweep) or str(source).endswith((".yaml", ".yml")):
        return True
    try:
        return SweepDir.at(source).has_sweep()
    except (UserError, OSError):
        return False


def _build(
    file: str,
    data: Any,
    lines: dict[str, int],
    text: str,
    overrides: dict[str, Any],
    validate_paths: bool,
    plugin_files: Path | None = None,
) -> Sweep:
    if not isinstance(data, dict):
        raise UserError(f"{file}: expected a mapping with name:, base: and grid: (see sweeps/smoke.yaml), got {data!r}")
    data = expand_tree(data, file, lines)
    data = {k: v for k, v in data.items() if v is not None}  # `grid:` with everything commented out = default
    if "name" not in data:
        raise UserError(f"{file}: name: is required; add e.g. name: {Path(file).stem} (results go to results/<name>/)")
    overridden = frozenset(_apply_overrides(data, overrides or {}))
    src = SweepSource(file, lines, "", overridden)
    _check_lists(data, src)
    plugins = _plugins(data.get("plugins") or [], file, src, plugin_files)
    raw_base = data.get("base", {})
    if not isinstance(raw_base, Mapping):
        raise fail(
            src, "base", f"expected a mapping of trial config keys, e.g. {{optim: {{lr: 0.03}}}}, got {raw_base!r}"
        )
    base = undot(raw_base)
    if "seed" in base:
        raise fail(src, "base.seed", fixed_key_problem("seed"))
    kind = get_kind(base.pop("kind", DEFAULT_KIND), src, "base.kind")
    spec: SweepFile = build(SweepFile, {**data, "base": base}, src)
    sweep = Sweep(
        **{**_settled(spec, kind, lines), "plugins": plugins},
        path=file,
        text=text,
        lines=dict(lines),
        kind=kind.name,
        overrides=overrides,
        overridden=overridden,
    )
    return _expanded(sweep, kind, validate_paths)


def _expanded(sweep: Sweep, kind: TrialKind, validate_paths: bool) -> Sweep:
    """The validated sweep with its trials (the shorter ones read from longer runs marked,
    :mod:`ablate.sweep.prefix`) and what ``ablate check`` says about them."""
    trials, notes = expand.expand_cells(sweep, _validate(sweep, kind, validate_paths))
    trials, sharing = prefix.share(trials, kind.prefix, sweep.share_prefix)
    return dataclasses.replace(sweep, trials=tuple(trials), notes=tuple(notes), sharing=tuple(sharing))


def _settled(spec: SweepFile, kind: TrialKind, lines: Mapping[str, int]) -> dict[str, Any]:
    """The file's settings in the form a :class:`Sweep` holds them: the grid and cases as axes with their
    lines, resources normalised, the kind's default metric, the search's metric and space filled in."""
    metric = spec.metric if spec.metric.name else MetricSpec(*kind.default_metric)
    search = spec.search
    if search is not None:
        space = {str(k): Distribution(dist, tuple(args)) for k, v in search.space.items() for dist, args in v.items()}
        search = dataclasses.replace(
            search, metric=search.metric or metric.name, mode=search.mode or metric.mode, space=space
        )
    return {
        **{f.name: getattr(spec, f.name) for f in dataclasses.fields(SweepFile)},
        "grid": tuple(GridAxis(str(k), tuple(v), lines.get(f"grid.{k}", 0)) for k, v in spec.grid.items()),
        "cases": tuple(
            Case(i, {str(k): v for k, v in c.items()}, lines.get(f"cases[{i}]", 0)) for i, c in enumerate(spec.cases)
        ),
        "resources": spec.resources.normalised(),
        "metric": metric,
        "search": search,
    }


def _plugins(entries: list[Any], file: str, src: Source, kept: Path | None) -> tuple[Plugin, ...]:
    """The sweep's own plugins (files relative to the sweep file; those a results folder kept, when it
    was read from one), then the installed packages' entry points: loaded before any key is checked,
    since a plugin's names (predictor.name, base.kind, data.name) are valid only once it is."""
    if kept is not None:  # its files, as they were run, by name
        entries = [Path(e).name if isinstance(e, str) and is_file_entry(e) else e for e in entries]
    base = kept if kept is not None else Path(file).parent
    own = load_plugins(entries, base, lambda i: f"{src.where(f'plugins[{i}]')}: plugins[{i}]")
    return own + load_entry_points()


def _check_lists(data: Mapping[str, Any], src: Source) -> None:
    """Friendlier messages than "expected tuple" for the list-valued keys users most often write bare."""
    table = data.get("table") if isinstance(data.get("table"), Mapping) else {}
    for key, value in [
        ("seeds", data.get("seeds")),
        ("cases", data.get("cases")),
        ("logging", data.get("logging")),
        ("plugins", data.get("plugins")),
        ("table.rows", table.get("rows")),
        ("table.cols", table.get("cols")),
    ]:
        if value is not None and not isinstance(value, list):
            raise fail(src, key, f"expected a list, got {value!r}; write [{value!r}]")
    for i, case in enumerate(data.get("cases") or []):
        if not isinstance(case, Mapping):
            raise fail(
                src, f"cases[{i}]", f"expected a mapping of overrides, e.g. {{predictor.name: linear}}, got {case!r}"
            )


# ---------------------------------------------------------------- checks that need the trial kind
def _validate(sweep: Sweep, kind: TrialKind, validate_paths: bool) -> list[expand.BuiltCell]:
    """The checks that need the trial kind; returns every cell built (each grid point / case)."""
    src = sweep.source()
    if not kind.has_seed and sweep.seeds != (0,):
        raise fail(src, "seeds", f"trials of kind {kind.name} have no seed; remove seeds")
    metrics = kind.metric_names(numeric_only=True)
    _check_metric(src, "metric.name", sweep.metric.name, kind, metrics)
    if sweep.search is not None:
        _check_metric(src, "search.metric", sweep.search.metric, kind, metrics)
    if sweep.table is not None:
        _check_metric(src, "table.metric", sweep.table.metric, kind, metrics)
        columns = config_columns(kind.Config)
        for part in ("rows", "cols"):
            for i, key in enumerate(getattr(sweep.table, part)):
                if key not in columns:
                    raise fail(
                        src,
                        f"table.{part}[{i}]",
                        f"{key!r} is not a config key of kind {kind.name}"
                        f"{did_you_mean(key, columns) or '; give a dotted leaf key such as predictor.name'}",
                    )
    built = expand.build_cells(sweep)  # builds every grid point / case: raises at the responsible line
    if sweep.search is not None:
        expand.check_search_space(sweep)
    if validate_paths:
        seen: set[Any] = set()
        for _, cell_src, cfg in built:
            data = kind.data(cfg)
            if data is not None and data not in seen:
                seen.add(data)
                check_data_paths(data, cell_src)
    return built


def _check_metric(src: Source, key: str, name: str, kind: TrialKind, metrics: list[str]) -> None:
    if name not in metrics:
        hint = did_you_mean(name, metrics)
        raise fail(
            src,
            key,
            f"unknown metric {name!r} for kind {kind.name}{hint or ''}"
            f"{'' if hint else '; choose one of ' + ', '.join(metrics)}",
        )


def check_data_paths(data: Any, src: Source) -> None:
    """The dataset of a trial exists where ``data.root`` says (it is never downloaded)."""
    record, root = DATASETS.get(getattr(data, "name", None)), getattr(data, "root", None)
    if record is None or not record.needs_root or not root:
        return
    if not Path(root).is_dir():
        rel = "" if Path(root).is_absolute() else f" (relative to {os.getcwd()})"
        raise fail(
            src,
            "data.root",
            f"directory {root!r} does not exist{rel}; {record.how_to_get(Path(root))}, "
            "or check the rest of the sweep without it with `ablate check --no-data`",
        )
