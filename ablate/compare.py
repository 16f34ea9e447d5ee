"""Is a gap between two arms real? Welch's t-test over seeds (``ablate compare``).

A table cell is a mean over a handful of seeds, so "DirectPred beats the linear predictor by 0.3
points" is only worth saying when the gap is large against the seed-to-seed spread. For two arms
A and B with final-epoch values a_1..a_n (one per seed) and b_1..b_m:

    diff = mean(a) - mean(b),   se = sqrt(s_a^2 / n + s_b^2 / m)        (s: sample std, ddof 1)
    t = diff / se,   dof = (s_a^2/n + s_b^2/m)^2 / ((s_a^2/n)^2/(n-1) + (s_b^2/m)^2/(m-1))
    CI = diff +- t_{(1+c)/2, dof} * se,   p = 2 * P(T_dof > |t|)

(Welch's unequal-variance test with the Welch-Satterthwaite degrees of freedom; it does not assume
the two arms have the same spread, which they often do not: a collapsing arm varies far more.)
The arms are independent samples (different seeds or sweeps), not paired.

:func:`compare` takes two results DataFrames (each trial's final row counts once) or two plain
sequences of numbers; :func:`compare_arms` picks two arms out of one sweep by config values;
:func:`compare_by` compares two sweeps cell by cell.
"""
from __future__ import annotations

import argparse
import math
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ablate.errors import UserError

if TYPE_CHECKING:  # numpy / pandas / scipy load on use: the CLI imports this module for --help
    import numpy as np
    import pandas as pd

__all__ = ["CompareResult", "compare", "compare_arms", "compare_by", "final_values", "select",
           "add_compare_parser", "cmd_compare"]

DEFAULT_METRIC = "probe_top1_best"


@dataclass(frozen=True)
class CompareResult:
    """Welch's t-test of A against B on one metric. ``diff`` is mean(A) - mean(B)."""

    metric: str
    label_a: str
    label_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    std_a: float  # sample std over seeds (ddof 1)
    std_b: float
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    t: float
    dof: float  # Welch-Satterthwaite degrees of freedom
    p_value: float  # two-sided

    @property
    def significant(self) -> bool:
        """p below 1 - confidence (equivalently: the CI excludes 0)."""
        return self.p_value < 1.0 - self.confidence

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}

    def summary(self, scale: float = 1.0, digits: int = 2) -> str:
        """One line, e.g. ``A - B: probe_top1_best +0.30 (95% CI -0.41 .. +1.01), t = 1.1, ...``.

        ``scale`` multiplies means and differences for display (100: accuracy in points)."""
        d = digits
        pct = f"{self.confidence * 100:g}%"
        verdict = "significant" if self.significant else "not significant"
        return (f"{self.label_a} - {self.label_b}: {self.metric} {self.diff * scale:+.{d}f} "
                f"({pct} CI {self.ci_low * scale:+.{d}f} .. {self.ci_high * scale:+.{d}f}); "
                f"means {self.mean_a * scale:.{d}f} ± {self.std_a * scale:.{d}f} (n={self.n_a}) vs "
                f"{self.mean_b * scale:.{d}f} ± {self.std_b * scale:.{d}f} (n={self.n_b}); "
                f"Welch t = {self.t:.3g}, dof = {self.dof:.3g}, p = {self.p_value:.3g}: "
                f"{verdict} at {100 - self.confidence * 100:g}%")

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------- the test
def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Welch's t statistic, dof, two-sided p and the CI of mean(a) - mean(b) (module docstring)."""
    import numpy as np
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise UserError(f"confidence {confidence}: must be between 0 and 1, e.g. 0.95")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n, m = len(x), len(y)
    va, vb = x.var(ddof=1) / n, y.var(ddof=1) / m  # squared standard errors of the two means
    diff = float(x.mean() - y.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:  # every seed identical on both sides: the difference is exact
        dof = float(n + m - 2)
        t = math.copysign(math.inf, diff) if diff else math.nan
        return {"diff": diff, "t": t, "dof": dof, "p_value": 0.0 if diff else 1.0, "ci_low": diff, "ci_high": diff}
    dof = (va + vb) ** 2 / ((va ** 2 / (n - 1) if va else 0.0) + (vb ** 2 / (m - 1) if vb else 0.0))
    t = diff / se
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
    return {"diff": diff, "t": t, "dof": float(dof), "p_value": float(2 * stats.t.sf(abs(t), dof)),
            "ci_low": diff - half, "ci_high": diff + half}


def final_values(data: pd.DataFrame | Sequence[float], metric: str = DEFAULT_METRIC) -> np.ndarray:
    """One value per trial: the metric of each trial's final row (status ok, finite value).

    A DataFrame without ``is_final`` / ``trial_id`` columns counts every row once; a sequence of
    numbers is taken as is (one number per seed)."""
    import numpy as np
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        vals = np.asarray(list(data), dtype=float)
        return vals[np.isfinite(vals)]
    if data.empty:
        return np.array([])
    if metric not in data.columns:
        numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c]) and "." not in c]
        from ablate.configtree import did_you_mean

        raise UserError(f"metric {metric!r} is not a column of the results{did_you_mean(metric, numeric) or ''}; "
                        f"choose one of {', '.join(numeric[:12])}")
    df = data
    if "is_final" in df.columns:
        df = df[df["is_final"].fillna(False).astype(bool)]
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    if "trial_id" in df.columns:
        df = df.drop_duplicates("trial_id", keep="last")  # a resumed trial counts once
    vals = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
    return vals[np.isfinite(vals)]


def compare(a: pd.DataFrame | Sequence[float], b: pd.DataFrame | Sequence[float], metric: str = DEFAULT_METRIC,
            *, confidence: float = 0.95, labels: tuple[str, str] = ("A", "B")) -> CompareResult:
    """Welch's t-test of A against B on ``metric`` over seeds (each trial's final row counts once).

    ``a`` and ``b`` are results DataFrames (``ablate.load_results``, possibly filtered) or plain
    sequences of per-seed values. Needs at least 2 values per side.

    >>> r = compare([70.1, 70.6, 70.4], [69.8, 70.0, 69.9], metric="top1", labels=("directpred", "linear"))
    >>> round(r.diff, 3), round(r.ci_low, 2), round(r.ci_high, 2), round(r.p_value, 3), r.significant
    (0.467, -0.07, 1.01, 0.069, False)
    """
    x, y = final_values(a, metric), final_values(b, metric)
    for name, v in zip(labels, (x, y)):
        if len(v) < 2:
            raise UserError(f"compare: {name} has {len(v)} finished trial(s) with a finite {metric}; "
                            "a t-test over seeds needs at least 2 per side (add seeds to the sweep)")
    w = welch(x, y, confidence)
    return CompareResult(metric, labels[0], labels[1], len(x), len(y), float(x.mean()), float(y.mean()),
                         float(x.std(ddof=1)), float(y.std(ddof=1)), w["diff"], w["ci_low"], w["ci_high"],
                         confidence, w["t"], w["dof"], w["p_value"])


# ---------------------------------------------------------------- arms and cells
def select(df: pd.DataFrame, where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows whose config columns equal ``where`` (dotted key -> value; 0.0 == 0, "0.996" == 0.996)."""
    import pandas as pd

    from ablate.paper import canon

    mask = pd.Series(True, index=df.index)
    for key, value in where.items():
        if key not in df.columns:
            from ablate.configtree import did_you_mean

            raise UserError(f"{key!r} is not a column of the results{did_you_mean(key, list(df.columns)) or ''}; "
                            "use a dotted config key such as predictor.name")
        mask &= df[key].map(canon) == canon(value)
    return df[mask]


def _label(where: Mapping[str, Any]) -> str:
    from ablate.expand import compact

    return ", ".join(f"{k}={compact(v)}" for k, v in where.items()) or "all"


def compare_arms(df: pd.DataFrame, arm_a: Mapping[str, Any], arm_b: Mapping[str, Any],
                 metric: str = DEFAULT_METRIC, *, confidence: float = 0.95) -> CompareResult:
    """Two arms of one sweep, each given by config values, e.g.
    ``compare_arms(df, {"predictor.name": "directpred"}, {"predictor.name": "linear"})``."""
    return compare(select(df, arm_a), select(df, arm_b), metric, confidence=confidence,
                   labels=(_label(arm_a), _label(arm_b)))


def compare_by(df_a: pd.DataFrame, df_b: pd.DataFrame, by: Sequence[str], metric: str = DEFAULT_METRIC,
               *, confidence: float = 0.95, labels: tuple[str, str] = ("A", "B")) -> pd.DataFrame:
    """Two sweeps cell by cell: one Welch test per combination of ``by`` values present in both.

    Returns a DataFrame with the ``by`` columns and the :class:`CompareResult` fields; cells with
    fewer than 2 seeds on a side are left out."""
    import pandas as pd

    from ablate.paper import canon

    by = list(by)
    key = lambda df: df[by].map(canon).apply(tuple, axis=1) if len(df) else pd.Series([], dtype=object)  # noqa: E731
    for name, df in zip(labels, (df_a, df_b)):
        missing = [k for k in by if k not in df.columns]
        if missing:
            raise UserError(f"compare --by {missing[0]!r}: not a column of {name}'s results")
    ka, kb = key(df_a), key(df_b)
    out = []
    for cell in dict.fromkeys([*ka.tolist(), *kb.tolist()]):
        xa, xb = final_values(df_a[ka == cell], metric), final_values(df_b[kb == cell], metric)
        if len(xa) < 2 or len(xb) < 2:
            continue
        r = compare(xa, xb, metric, confidence=confidence, labels=labels)
        out.append({**dict(zip(by, cell)), **r.to_dict()})
    return pd.DataFrame(out)


# ---------------------------------------------------------------- ablate compare
def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="is a gap real? Welch's t-test over seeds between two sweeps or two arms",
        description=textwrap.fill(
            "Difference of means over seeds with its confidence interval, Welch's t, dof and p. Two results "
            "folders: A - B (optionally per cell with --by). One folder with --a/--b: two arms of that sweep, "
            "each picked by config values. Each trial's final row counts once.", 79),
        epilog="examples:\n  ablate compare results/stl10_predictor --a predictor.name=directpred "
        "--b predictor.name=linear\n  ablate compare results/run1 results/run2 --metric knn_top1 "
        "--where predictor.name=directpred",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="results folder (or .parquet file) of A")
    p.add_argument("b", nargs="?", help="results folder of B (leave out to compare two arms of A with --a/--b)")
    p.add_argument("--metric", default=None, metavar="M", help=f"result column to compare (default: {DEFAULT_METRIC})")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep only trials with this config value, on both sides (repeatable)")
    p.add_argument("--a", dest="arm_a", action="append", default=[], metavar="KEY=VALUE",
                   help="config values of arm A within one folder (repeatable)")
    p.add_argument("--b", dest="arm_b", action="append", default=[], metavar="KEY=VALUE",
                   help="config values of arm B within one folder (repeatable)")
    p.add_argument("--by", default=None, metavar="KEY[,KEY]", help="comma-separated config keys: one test per cell (two folders)")
    p.add_argument("--confidence", type=float, default=0.95, metavar="C", help="confidence level of the interval (default 0.95)")
    p.add_argument("--scale", type=float, default=None, metavar="S",
                   help="display factor (default: 100 for accuracies, 1 otherwise)")
    return p


def _read(path: str) -> pd.DataFrame:
    from ablate.results import read_results

    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such results folder or file; give results/<sweep> (see ablate status)")
    df = read_results(p)
    if df.empty:
        raise UserError(f"{path}: has no results yet; run the sweep first (ablate run)")
    return df


def cmd_compare(args: argparse.Namespace) -> int:
    from ablate.configtree import parse_set

    metric = args.metric or DEFAULT_METRIC
    scale = args.scale if args.scale is not None else (100.0 if "top" in metric else 1.0)
    where = parse_set(args.where)
    df_a = select(_read(args.a), where)
    arms = parse_set(args.arm_a), parse_set(args.arm_b)
    if args.b is None:
        if not (arms[0] and arms[1]):
            raise UserError("compare: give a second results folder, or two arms of one folder with "
                            "--a KEY=VALUE and --b KEY=VALUE")
        print(compare_arms(df_a, *arms, metric=metric, confidence=args.confidence).summary(scale))
        return 0
    if arms[0] or arms[1]:
        raise UserError("compare: --a/--b pick arms within ONE results folder; with two folders use --where")
    df_b = select(_read(args.b), where)
    labels = (Path(args.a).name, Path(args.b).name)
    if args.by:
        keys = [k.strip() for k in args.by.split(",") if k.strip()]
        table = compare_by(df_a, df_b, keys, metric, confidence=args.confidence, labels=labels)
        if table.empty:
            raise UserError("compare --by: no cell has 2 or more finished seeds on both sides")
        for _, row in table.iterrows():
            cell = ", ".join(f"{k}={row[k]}" for k in keys)
            fields = {k: row[k] for k in CompareResult.__dataclass_fields__}
            print(f"[{cell}] {CompareResult(**fields).summary(scale)}")
        return 0
    print(compare(df_a, df_b, metric, confidence=args.confidence, labels=labels).summary(scale))
    return 0
