"""Plugins: a researcher's own predictors, datasets and trial kinds, used without editing ablate.

A sweep names them in ``plugins:``: Python files (paths relative to the sweep file) or importable
module names. An installed package offers its own as entry points in the groups ``ablate.predictors``,
``ablate.datasets`` and ``ablate.kinds`` (each entry point names a module, which is imported). A plugin
registers its records with the same calls the built-ins use (``register_predictor``,
``register_dataset``, ``register_kind``; docs/plugins.md), and they are validated the same way: strict
config keys, and a name a built-in holds is refused.

Loading a plugin imports it while :func:`ablate.config.registry.loading` marks what it registers with
its :class:`~ablate.config.registry.Origin` (its name and the sha256 of its source); that hash joins the
trial id of every trial that uses one of its records, and the rows carry both (``plugin``,
``plugin_sha256``), so an edited plugin reruns exactly its own trials. A file plugin runs in Ray's
workers as a package Ray's runtime environment ships (:func:`package`), never from the working
directory; a module plugin must be importable there (installed, as on any cluster).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ablate.config.registry import DATASETS, KINDS, PREDICTORS, Origin, loading
from ablate.errors import UserError

ENTRY_POINT_GROUPS = ("ablate.predictors", "ablate.datasets", "ablate.kinds")
PACKAGE_PREFIX = "ablate_plugin_"  # the importable name of a file plugin: ablate_plugin_<stem>_<sha12>
_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class Plugin:
    """One loaded plugin: ``name`` as the sweep (or the entry point) names it, the module it is imported
    as, its source file and that file's sha256. ``file`` plugins travel to Ray's workers as a package."""

    name: str
    module: str
    path: str
    sha256: str
    file: bool

    @property
    def origin(self) -> Origin:
        return Origin(self.name, self.sha256)

    def to_params(self) -> dict[str, Any]:
        """What a trial's parameters carry so that a worker imports the same plugin (plain data)."""
        return asdict(self)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_plugins(entries: Sequence[str], base: Path, where: Callable[[int], str]) -> tuple[Plugin, ...]:
    """Load the plugins a sweep names; files resolve against ``base``; ``where(i)`` names entry i in
    messages (``sweeps/x.yaml:4: plugins[0]``)."""
    return tuple(load_plugin(entry, base, where(i)) for i, entry in enumerate(entries))


def is_file_entry(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def load_plugin(entry: str, base: Path, where: str) -> Plugin:
    """Import one plugin (a ``.py`` file or a module name) and register what it registers."""
    if not isinstance(entry, str) or not entry.strip():
        raise UserError(f"{where}: expected a Python file (my_predictors.py) or a module name, got {entry!r}")
    if is_file_entry(entry):
        path = (base / entry).expanduser().resolve()
        if not path.is_file():
            raise UserError(
                f"{where}: plugin file {entry} not found (looked at {path}); paths are relative to the sweep file"
            )
        sha = sha256_of(path)
        stem = re.sub(r"\W", "_", path.stem)
        plugin = Plugin(path.name, f"{PACKAGE_PREFIX}{stem}_{sha[:12]}", str(path), sha, True)
        _import(plugin, where, lambda: _exec_file(plugin))
        return plugin
    if not _MODULE_RE.fullmatch(entry):
        raise UserError(f"{where}: {entry!r} is neither a .py file nor a module name (such as my_pkg.predictors)")
    spec = _find(entry, where)
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise UserError(
            f"{where}: no module {entry!r} importable here; install its package, or name its file (my_module.py)"
        )
    plugin = Plugin(entry, entry, spec.origin, sha256_of(Path(spec.origin)), False)
    _import(plugin, where, lambda: importlib.import_module(entry))
    return plugin


def _find(module: str, where: str) -> Any:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:  # a parent package that does not import
        raise UserError(
            f"{where}: no module {module!r} importable here ({type(e).__name__}: {e}); install its package, or name "
            "its file (my_module.py)"
        ) from None


def _exec_file(plugin: Plugin) -> None:
    spec = importlib.util.spec_from_file_location(plugin.module, plugin.path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[plugin.module] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[plugin.module]
        raise


def _import(plugin: Plugin, where: str, do_import: Any) -> None:
    """Run ``do_import`` with the registries marking ``plugin``'s records; a failure is one line."""
    if plugin.module in sys.modules and _registered(plugin.origin):
        return  # this very source is loaded already (a sweep read twice in one process)
    before = _counts()
    try:
        with loading(plugin.origin):
            do_import()
    except UserError as e:
        raise UserError(f"{where}: plugin {plugin.name}: {e}") from None
    except (Exception, SystemExit) as e:
        raise UserError(f"{where}: plugin {plugin.name} failed to import: {_error_line(e, plugin.path)}") from None
    if _counts() == before and not _registered(plugin.origin):
        raise UserError(
            f"{where}: plugin {plugin.name} registers nothing; call register_predictor, register_dataset or "
            "register_kind in it (docs/plugins.md)"
        )


def _counts() -> tuple[int, ...]:
    return len(PREDICTORS), len(DATASETS), len(KINDS)


def _registered(origin: Origin) -> bool:
    return any(r.origin(n) == origin for r in (PREDICTORS, DATASETS, KINDS) for n in r)


def _error_line(e: BaseException, path: str) -> str:
    """``Type: message (file, line N)`` of an import failure, one line: where in the plugin it broke."""
    line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
    if line is None:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
        line = frames[-1].lineno if frames else None
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text}" + (f" (line {line})" if line else "")


# ------------------------------------------------------------------ installed packages' entry points
def load_entry_points() -> tuple[Plugin, ...]:
    """Import every ``ablate.predictors`` / ``ablate.datasets`` / ``ablate.kinds`` entry point of the
    installed packages (a plugin named ``<distribution>:<entry point>``)."""
    plugins = []
    for group in ENTRY_POINT_GROUPS:
        for ep in importlib.metadata.entry_points(group=group):
            module = ep.value.split(":")[0].strip()
            where = f"entry point {ep.name} = {ep.value} ({group})"
            spec = _find(module, where)
            if spec is None or not spec.origin or not Path(spec.origin).is_file():
                raise UserError(f"{where}: module {module!r} is not importable; reinstall its package")
            dist = ep.dist.name if ep.dist is not None else "?"
            plugin = Plugin(f"{dist}:{ep.name}", module, spec.origin, sha256_of(Path(spec.origin)), False)
            _import(plugin, where, lambda ep=ep: ep.load())
            plugins.append(plugin)
    return tuple(plugins)


# ------------------------------------------------------------------ in Ray's workers
@contextmanager
def packaged(plugins: Iterable[Plugin]) -> Iterator[list[str]]:
    """Each file plugin as a package ``<tmp>/<module>/__init__.py`` holding its source, for as long as
    the block runs: the ``py_modules`` of Ray's runtime environment, which Ray ships to every worker of
    the job (it zips and uploads them when Ray starts)."""
    with tempfile.TemporaryDirectory(prefix="ablate-plugins-") as tmp:
        out = []
        for plugin in (p for p in plugins if p.file):
            target = Path(tmp) / plugin.module
            target.mkdir()
            (target / "__init__.py").write_bytes(Path(plugin.path).read_bytes())
            out.append(str(target))
        yield out


def keep(plugins: Iterable[Plugin], folder: Any) -> None:
    """Copy each file plugin into ``folder`` (a results folder's ``plugins``, a Location): reading the
    results later loads the very source its trials ran."""
    for plugin in (p for p in plugins if p.file):
        (folder / plugin.name).write_bytes(Path(plugin.path).read_bytes())


def import_shipped(params: Sequence[Mapping[str, Any]]) -> None:
    """In a worker: import the plugins a trial's parameters name (file plugins as the packages Ray's
    runtime environment shipped), registering their records, before its config is built."""
    for p in params:
        plugin = Plugin(**p)
        _import(plugin, f"plugin {plugin.name}", lambda m=plugin.module: importlib.import_module(m))
