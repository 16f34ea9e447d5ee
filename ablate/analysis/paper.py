"""The paper's reference numbers (``results/paper/directpred.csv``) and how a sweep's cell finds its own.

The file holds every number of Tables 1-3 and 5-9 of Tian, Chen & Ganguli (ICML 2021), one line
per cell: ``table,row,col,mean,std,top5,match,note``. ``match`` is ``key=value`` pairs joined by
``;`` (config keys in dotted form, plus ``epoch``) that identify the cell in any sweep: a cell of
a sweep takes the paper's number when every pair holds for every trial of the cell. Values are
compared in canonical form (:func:`canon`), so ``4e-4``, ``0.0004`` and ``4.0e-04`` are equal.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.results.layout import PAPER_FILE

COLUMNS = ("table", "row", "col", "mean", "std", "top5", "match", "note")


def canon(v: Any) -> str:
    """Canonical text of a config value, equal for equal values whatever their Python/NumPy type:
    ``None``/NaN -> ``null``, bools -> ``true``/``false``, integral numbers -> ``3``, other floats
    -> their shortest repr (``0.0004``)."""
    if v is None:
        return "null"
    if hasattr(v, "item") and not isinstance(v, (list, tuple, str)):  # numpy scalar
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "null"
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    try:  # pandas.NA and friends
        import pandas as pd

        if pd.isna(v):
            return "null"
    except (TypeError, ValueError):
        pass
    return str(v)


def value_rank(value: str) -> tuple:
    """A sort key of canonical values: numbers in numeric order, then text, then ``null``."""
    num = parse_value(value)
    if isinstance(num, (int, float)) and not isinstance(num, bool):
        return (0, float(num), "")
    return (1 if value != "null" else 2, 0.0, value)


def parse_value(text: str) -> Any:
    """``"0.0004"``/``"4e-4"`` -> float, ``"3"`` -> int, ``"true"`` -> True, ``"null"`` -> None, else the text."""
    s = str(text).strip()
    low = s.lower()
    if low in ("null", "none", "~", ""):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


@dataclass(frozen=True)
class PaperCell:
    """One number of the paper: Top-1 mean (+- std over 5 seeds, or Top-5 for ImageNet)."""

    table: str
    row: str
    col: str
    mean: float
    std: float | None
    top5: float | None
    match: Mapping[str, str] = field(default_factory=dict)  # config key -> canonical value
    note: str = ""

    def holds(self, context: Mapping[str, Any]) -> bool:
        return bool(self.match) and all(canon(context.get(k)) == v for k, v in self.match.items())


@dataclass(frozen=True)
class PaperRef:
    cells: tuple[PaperCell, ...]
    path: Path

    def tables(self) -> list[str]:
        return list(dict.fromkeys(c.table for c in self.cells))

    def table(self, table_id: str) -> list[PaperCell]:
        return [c for c in self.cells if c.table == table_id]

    def find(self, tables: Sequence[str], contexts: Iterable[Mapping[str, Any]]) -> PaperCell | None:
        """The first cell of ``tables`` (in that order) whose match holds for every context."""
        contexts = list(contexts)
        if not contexts:
            return None
        for t in tables:
            for c in self.table(t):
                if all(c.holds(ctx) for ctx in contexts):
                    return c
        return None


def parse_match(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"match part {part!r} is not key=value")
        out[key.strip()] = canon(parse_value(value))
    return out


def _number(rec: Mapping[str, str], key: str) -> float | None:
    """A number of the reference file, None where the field is empty."""
    return float(rec[key]) if rec[key] not in (None, "") else None


def load_paper(path: str | Path | None = None) -> PaperRef:
    """Read the reference file (default: the shipped ``results/paper/directpred.csv``)."""
    path = Path(path) if path else PAPER_FILE
    if not path.is_file():
        raise UserError(
            f"{path}: no paper reference file; give --paper-file PATH or restore results/paper/directpred.csv"
        )
    cells: list[PaperCell] = []
    with path.open(newline="") as fh:
        lines = (ln for ln in fh if not ln.startswith("#"))
        reader = csv.DictReader(lines)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{path}: header must be {','.join(COLUMNS)}, got {','.join(reader.fieldnames or [])}")
        for rec in reader:
            try:
                mean = _number(rec, "mean")
                if mean is None:
                    raise ValueError("mean is empty")
                cells.append(
                    PaperCell(
                        rec["table"],
                        rec["row"],
                        rec["col"],
                        mean,
                        _number(rec, "std"),
                        _number(rec, "top5"),
                        parse_match(rec["match"] or ""),
                        rec["note"] or "",
                    )
                )
            except (ValueError, TypeError) as e:
                raise UserError(f"{path}: cell {rec.get('table')}/{rec.get('row')}/{rec.get('col')}: {e}") from None
    return PaperRef(tuple(cells), path)
