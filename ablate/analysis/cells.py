"""What a table cell holds and what names it: the display label of a row or column
(:func:`axis_label`), the caption's values of the configuration the cells hold
(:func:`fill_caption`), and the checks :func:`ablate.analysis.tables.build_table` makes before it fills
cells: every ``labels`` entry names something the table has (:func:`check_labels`), and the trials
of one cell differ in nothing but the seed (:func:`check_one_config`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ablate.analysis.paper import canon, parse_value, value_rank
from ablate.config.tree import did_you_mean, flatten
from ablate.config.trial import UNHASHED_KEYS
from ablate.errors import UserError
from ablate.kinds.registry import KINDS
from ablate.results.schema import config_columns
from ablate.sweep.table_block import TableSpec


def label_values(label: Any) -> dict[str, str]:
    """The ``key -> canonical value`` pairs a ``labels`` entry names: ``"k=v"`` or ``"k1=v1;k2=v2"``;
    {} for a bare key (a display name)."""
    if "=" not in str(label):
        return {}
    pairs = [part.split("=", 1) for part in str(label).split(";")]
    if any(len(p) != 2 for p in pairs):
        raise UserError(f"table.labels: {label!r}: write a combination as 'k1=v1;k2=v2'")
    return {a.strip(): canon(parse_value(b)) for a, b in pairs}


def axis_label(keys: Sequence[str], values: Sequence[str], labels: Mapping[str, Any]) -> str:
    """Display text of one row (or column): labelled combinations first, then ``key=value`` parts.

    ``labels`` maps ``"k=v"`` (or ``"k1=v1;k2=v2"``, a combination) to display text and a bare key
    to its display name. Values are canonical (:func:`ablate.analysis.paper.canon`); a null value (a key
    that does not apply to this arm, e.g. ``predictor.freq`` of a linear predictor) is left out."""
    combos = [(label_values(k), str(text)) for k, text in labels.items() if "=" in str(k)]
    combos.sort(key=lambda c: -len(c[0]))  # stable: longest combinations win, then written order
    pos = {k: i for i, k in enumerate(keys)}
    used: set[int] = set()
    parts: list[tuple[int, str]] = []
    for combo, text in combos:
        idx = [pos.get(k) for k in combo]
        if None in idx or used & set(idx) or any(values[pos[k]] != v for k, v in combo.items()):
            continue
        used |= set(idx)
        parts.append((min(idx), text))
    for i, k in enumerate(keys):
        if i not in used and values[i] != "null":
            parts.append((i, f"{labels.get(k, k.rsplit('.', 1)[-1])}={values[i]}"))
    return ", ".join(t for _, t in sorted(parts) if t)


CAPTION_FIELD = re.compile(r"\{\{|\}\}|\{([^{}:]+)(?::([^{}]*))?\}")  # {key}, {key:fmt}, or {{ / }}


def fill_caption(text: str, rows: Sequence[Mapping[str, Any]], known: Collection[str] = ()) -> str:
    """``text`` (a ``table.caption``) with each ``{key}`` replaced by the values of ``key`` (a config key
    or a results column, e.g. ``{train.epochs}``, ``{t}``) that ``rows`` (the rows of the cells, and the
    expansion's configs) hold, in value order: a caption says what the cells are, whatever the sweep
    file's values were before a ``--set``. ``{key:.3g}`` formats each value; ``{{`` and ``}}`` are
    braces. ``known``: the keys there are (none known: nothing is checked)."""

    def sub(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        key = m.group(1).strip()
        if known and key not in known:
            raise UserError(
                f"table.caption: {{{key}}} is not a config key or column of the results"
                f"{did_you_mean(key, known) or ''}; write a literal brace as {{{{ or }}}}"
            )
        seen = dict.fromkeys(_caption_value(r[key], key, m.group(2)) for r in rows if canon(r.get(key)) != "null")
        return ", ".join(sorted(seen, key=value_rank)) or "—"

    return CAPTION_FIELD.sub(sub, text)


def _caption_value(v: Any, key: str, fmt: str | None) -> str:
    """One value of a caption field: formatted by ``fmt``, else a float to 6 significant digits (a
    flow's time step * dt is 200, not 200.00000000000003), anything else canonical."""
    v = v.item() if hasattr(v, "item") and not isinstance(v, (list, tuple, str)) else v
    if not fmt:
        return format(v, ".6g") if isinstance(v, float) else canon(v)
    try:
        return format(v, fmt)
    except (TypeError, ValueError):
        raise UserError(f"table.caption: {{{key}:{fmt}}}: {fmt!r} cannot format {v!r}; e.g. {{{key}:g}}") from None


def check_labels(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> None:
    """Every ``labels`` entry names a column and, as ``k=v`` (or ``k1=v1;k2=v2``), values that some
    row of ``rows`` (the results' records and the expansion's configs) has: a misspelt label would
    otherwise show nothing. With no rows nothing is known yet and nothing is checked."""
    axes = [*spec.rows, *spec.cols]
    known = set(axes).union(*rows) if rows else set()
    for label in spec.labels if rows else ():
        want = label_values(label)
        for key in want or [str(label)]:
            if key not in known:
                raise UserError(
                    f"table.labels: {label!r}: {key!r} is not a column of the results"
                    f"{did_you_mean(key, known) or ''}; the table's keys are {', '.join(axes) or '(none)'}"
                )
        if not want or any(holds(want, r) for r in rows):
            continue
        for k, v in want.items():
            have = sorted(dict.fromkeys(canon(r.get(k)) for r in rows), key=value_rank)
            if v not in have:
                raise UserError(f"table.labels: {label!r}: no trial has {k}={v}; its values are {', '.join(have)}")
        raise UserError(f"table.labels: {label!r}: no trial has this combination of values; label one that exists")


def holds(values: Mapping[str, str], row: Mapping[str, Any]) -> bool:
    """Whether ``row`` has every canonical value of ``values`` (:func:`label_values`)."""
    return all(canon(row.get(k)) == v for k, v in values.items())


IGNORED_KEYS = frozenset({"seed", *UNHASHED_KEYS})  # seeds are what a cell averages; the rest do not change a trial


@functools.cache
def _config_keys() -> tuple[str, ...]:
    return tuple(sorted({k for kind in KINDS.values() for k in config_columns(kind.Config)}))


@functools.cache
def schema_columns() -> frozenset[str]:
    """Every column a results row of any trial kind may have: what a caption field may name before
    the rows that hold it exist (``{t}`` of a theory sweep not run yet)."""
    return frozenset(n for kind in KINDS.values() for n in kind.schema.names)


def _config_text(rec: Mapping[str, Any]) -> dict[str, str]:
    """A results row's trial config (``config_json``, else its config columns) as canonical text
    per dotted key, without the keys a cell may differ in."""
    raw = rec.get("config_json")
    flat_ = flatten(json.loads(raw)) if isinstance(raw, str) and raw else {k: rec.get(k) for k in _config_keys()}
    return {
        k: canon(list(v) if hasattr(v, "tolist") and getattr(v, "ndim", 0) else v)
        for k, v in flat_.items()
        if k not in IGNORED_KEYS
    }


def config_spread(recs: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The config keys (but those seeds of one config may differ in) whose values differ between the
    trials of ``recs`` (results rows, one or more per trial), each with its canonical values in order
    (numbers in numeric order, ``null`` where a trial lacks the key, last)."""
    trials = {str(r.get("trial_id")) if r.get("trial_id") is not None else i: r for i, r in enumerate(recs)}
    configs = [_config_text(rec) for rec in trials.values()]
    keys = dict.fromkeys(k for cfg in configs for k in cfg)
    values = {k: sorted({cfg.get(k, "null") for cfg in configs}, key=value_rank) for k in keys}
    return {k: v for k, v in values.items() if len(v) > 1}


def check_one_config(groups: Mapping[tuple, list[dict]], spec: TableSpec) -> None:
    """A cell is the seeds of ONE config: trials of a cell that differ in any other key (but those that
    do not change the trial id) would be averaged as if they were seeds."""
    for (r, c), recs in groups.items():
        values = config_spread(recs)
        differ = sorted(values)
        if not differ:
            continue
        cell = " / ".join(
            x for x in (axis_label(spec.rows, r, spec.labels), axis_label(spec.cols, c, spec.labels)) if x
        )
        shown = "; ".join(f"{k}: {', '.join(values[k][:4])}" for k in differ[:3]) + (" ..." if len(differ) > 3 else "")
        raise UserError(
            f"table: cell {cell or 'of the table'!r} would average trials of different configs ({shown}); add "
            f"{', '.join(differ)} to the table's rows or cols, or filter the results to one value of each"
        )
