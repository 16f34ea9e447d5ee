"""Is a gap between two arms real? Welch's t-test over seeds (``ablate compare``).

A table cell is a mean over a handful of seeds, so "DirectPred beats the linear predictor by 0.3
points" is only worth saying when the gap is large against the seed-to-seed spread. For two arms
A and B with final-epoch values a_1..a_n (one per seed) and b_1..b_m:

    diff = mean(a) - mean(b),   se = sqrt(s_a^2 / n + s_b^2 / m)        (s: sample std, ddof 1)
    t = diff / se,   dof = (s_a^2/n + s_b^2/m)^2 / ((s_a^2/n)^2/(n-1) + (s_b^2/m)^2/(m-1))
    CI = diff +- t_{(1+c)/2, dof} * se,   p = 2 * P(T_dof > |t|)

(Welch's unequal-variance test with the Welch-Satterthwaite degrees of freedom,
``scipy.stats.ttest_ind(equal_var=False)``; it does not assume the two arms have the same spread,
which they often do not: a collapsing arm varies far more.) The arms are independent samples
(different seeds or sweeps), not paired, and each is the seeds of ONE config (:func:`check_seeds`):
trials of two configs pooled as seeds would make the spread, and so the test, meaningless.

:func:`compare` takes two results DataFrames (each trial's final row counts once) or two plain
sequences of numbers; :func:`compare_two_arms` picks two arms out of one sweep by config values;
:func:`compare_by` compares two sweeps cell by cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ablate.analysis.arms import arm_label, select
from ablate.analysis.cells import config_spread
from ablate.analysis.metrics import check_measure
from ablate.analysis.paper import canon
from ablate.errors import UserError
from ablate.results.io import final_rows
from ablate.results.schema import COLLAPSED_STOPPED

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

        ``scale`` multiplies means and differences for display (100: accuracy in points); a factor
        that is not a positive number would print nan, zeros or flipped signs, so it is refused."""
        if not (math.isfinite(scale) and scale > 0):
            raise UserError(f"compare --scale {scale:g}: the display factor must be a positive number (100: points)")
        d = digits
        pct = f"{self.confidence * 100:g}%"
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{self.label_a} - {self.label_b}: {self.metric} {self.diff * scale:+.{d}f} "
            f"({pct} CI {self.ci_low * scale:+.{d}f} .. {self.ci_high * scale:+.{d}f}); "
            f"means {self.mean_a * scale:.{d}f} ± {self.std_a * scale:.{d}f} (n={self.n_a}) vs "
            f"{self.mean_b * scale:.{d}f} ± {self.std_b * scale:.{d}f} (n={self.n_b}); "
            f"Welch t = {self.t:.3g}, dof = {self.dof:.3g}, p = {self.p_value:.3g}: "
            f"{verdict} at {100 - self.confidence * 100:g}%"
        )

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------- the test
def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Welch's t statistic, dof, two-sided p and the CI of mean(a) - mean(b) (module docstring)."""
    if not 0.0 < confidence < 1.0:
        raise UserError(f"confidence {confidence}: must be between 0 and 1, e.g. 0.95")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(x.mean() - y.mean())
    if x.var(ddof=1) == 0.0 and y.var(ddof=1) == 0.0:  # every seed identical on both sides: the difference is exact
        t = math.copysign(math.inf, diff) if diff else math.nan
        return {
            "diff": diff,
            "t": t,
            "dof": float(len(x) + len(y) - 2),
            "p_value": 0.0 if diff else 1.0,
            "ci_low": diff,
            "ci_high": diff,
        }
    res = stats.ttest_ind(x, y, equal_var=False)
    ci = res.confidence_interval(confidence)
    return {
        "diff": diff,
        "t": float(res.statistic),
        "dof": float(res.df),
        "p_value": float(res.pvalue),
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
    }


# how a refusal of pooled configs (check_seeds) says to get to seeds of one: two arms of one folder,
# two folders, one cell of two folders compared --by
ARM_FIX = "keep one with {where} (it applies to both sides)"
SWEEP_FIX = "keep one with {where}, or compare cell by cell with --by {by}"
CELL_FIX = "add {by} to --by, or keep one with {where}"


def final_values(
    data: pd.DataFrame | Sequence[float],
    metric: str = DEFAULT_METRIC,
    label: str = "A",
    fix: str = ARM_FIX,
) -> np.ndarray:
    """One value per trial: the metric of each trial's final row (status ok, finite value).

    A DataFrame without ``is_final`` / ``trial_id`` columns counts every row once; its trials must be
    the seeds of one config (:func:`check_seeds`; ``label`` and ``fix`` word the refusal). A
    sequence of numbers is taken as is (one number per seed)."""
    if not isinstance(data, pd.DataFrame):
        vals = np.asarray(list(data), dtype=float)
        return vals[np.isfinite(vals)]
    if data.empty:
        return np.array([])
    check_measure(data, metric, "compare --metric")
    df = final_rows(data) if "is_final" in data.columns else data  # a resumed trial counts once
    if "status" in df.columns:
        stopped = df[df["status"] == COLLAPSED_STOPPED]
        if len(stopped):
            epochs = ", ".join(str(e) for e in sorted(stopped["epoch"].dropna().astype(int))) if "epoch" in df else "?"
            raise UserError(
                f"compare: {len(stopped)} trial(s) of {label} were ended at collapse by the sweep's stop_collapsed "
                f"(epochs {epochs}); their {metric} is of the epoch they stopped at, not of a full run: run them to "
                "the end (ablate run <sweep> --set stop_collapsed=0), or compare arms without them"
            )
        df = df[df["status"] == "ok"]
    vals = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
    check_seeds(df[np.isfinite(vals)], label, fix)
    return vals[np.isfinite(vals)]


def check_seeds(rows: pd.DataFrame, label: str, fix: str = ARM_FIX) -> None:
    """The trials of one side of a comparison are the seeds of ONE config: trials that differ in any
    other key pooled as if they were seeds (a BYOL and a SimSiam-style trial of one predictor) give a
    spread and a t-test of nothing. ``fix`` is the remedy, with ``{where}`` / ``{by}`` for the keys
    that vary (those set in every trial of the side: a variant's own keys follow from them)."""
    spread = config_spread(rows.to_dict("records"))
    if not spread:
        return
    named = [k for k, v in spread.items() if "null" not in v][:3] or list(spread)[:1]
    varies = "; ".join(f"{k} varies ({', '.join(spread[k][:6])}{' ...' * (len(spread[k]) > 6)})" for k in named)
    where = " ".join(f"--where {k}={spread[k][0]}" for k in named)
    raise UserError(
        f"compare: {label} pools trials of different configs, not the seeds of one: {varies}; "
        + fix.format(where=where, by=",".join(named))
    )


def compare(
    a: pd.DataFrame | Sequence[float],
    b: pd.DataFrame | Sequence[float],
    metric: str = DEFAULT_METRIC,
    *,
    confidence: float = 0.95,
    labels: tuple[str, str] = ("A", "B"),
    fix: str = SWEEP_FIX,
) -> CompareResult:
    """Welch's t-test of A against B on ``metric`` over seeds (each trial's final row counts once).

    ``a`` and ``b`` are results DataFrames (``ablate.load_results``, possibly filtered) or plain
    sequences of per-seed values. Needs at least 2 values per side, and each side's trials must be
    the seeds of one config (``fix``: how the refusal says to get there, :func:`check_seeds`).

    >>> r = compare([70.1, 70.6, 70.4], [69.8, 70.0, 69.9], metric="top1", labels=("directpred", "linear"))
    >>> round(r.diff, 3), round(r.ci_low, 2), round(r.ci_high, 2), round(r.p_value, 3), r.significant
    (0.467, -0.07, 1.01, 0.069, False)
    """
    x, y = final_values(a, metric, labels[0], fix), final_values(b, metric, labels[1], fix)
    for name, v in zip(labels, (x, y)):
        if len(v) < 2:
            raise UserError(
                f"compare: {name} has {len(v)} finished trial(s) with a finite {metric}; "
                "a t-test over seeds needs at least 2 per side (add seeds to the sweep)"
            )
    w = welch(x, y, confidence)
    return CompareResult(
        metric,
        labels[0],
        labels[1],
        len(x),
        len(y),
        float(x.mean()),
        float(y.mean()),
        float(x.std(ddof=1)),
        float(y.std(ddof=1)),
        w["diff"],
        w["ci_low"],
        w["ci_high"],
        confidence,
        w["t"],
        w["dof"],
        w["p_value"],
    )


# ---------------------------------------------------------------- arms and cells
def compare_two_arms(
    df: pd.DataFrame,
    arm_a: Mapping[str, Any],
    arm_b: Mapping[str, Any],
    metric: str = DEFAULT_METRIC,
    *,
    confidence: float = 0.95,
    by: Sequence[str] | None = None,
) -> CompareResult | pd.DataFrame:
    """Two arms of one sweep, each given by config values, e.g.
    ``compare_two_arms(df, {"predictor.name": "directpred"}, {"predictor.name": "linear"})``; with
    ``by``, one test per cell of those keys (:func:`compare_by`). Arms that share trials compare
    something with itself and are refused."""
    a, b = select(df, arm_a, "--a"), select(df, arm_b, "--b")
    labels = (arm_label(arm_a), arm_label(arm_b))
    shared = sorted(set(a["trial_id"]) & set(b["trial_id"])) if "trial_id" in df.columns else []
    if shared:
        raise UserError(
            f"compare: --a {labels[0]} and --b {labels[1]} both pick {len(shared)} trial(s) "
            f"({', '.join(map(str, shared[:3]))}{' ...' * (len(shared) > 3)}); give values that tell the arms apart"
        )
    if by:
        return compare_by(a, b, by, metric, confidence=confidence, labels=labels)
    return compare(a, b, metric, confidence=confidence, labels=labels, fix=ARM_FIX)


def compare_by(
    df_a: pd.DataFrame,
    df_b: pd.DataFrame,
    by: Sequence[str],
    metric: str = DEFAULT_METRIC,
    *,
    confidence: float = 0.95,
    labels: tuple[str, str] = ("A", "B"),
) -> pd.DataFrame:
    """Two sweeps cell by cell: one Welch test per combination of ``by`` values present in both.

    Returns a DataFrame with the ``by`` columns and the :class:`CompareResult` fields; cells with
    fewer than 2 seeds on a side are left out."""
    by = list(by)
    key = lambda df: df[by].map(canon).apply(tuple, axis=1) if len(df) else pd.Series([], dtype=object)  # noqa: E731
    for name, df in zip(labels, (df_a, df_b)):
        missing = [k for k in by if k not in df.columns]
        if missing:
            raise UserError(f"compare --by {missing[0]!r}: not a column of {name}'s results")
    ka, kb = key(df_a), key(df_b)
    out = []
    for cell in dict.fromkeys([*ka.tolist(), *kb.tolist()]):
        where = ", ".join(f"{k}={v}" for k, v in zip(by, cell))
        xa = final_values(df_a[ka == cell], metric, f"{labels[0]} [{where}]", CELL_FIX)
        xb = final_values(df_b[kb == cell], metric, f"{labels[1]} [{where}]", CELL_FIX)
        if len(xa) < 2 or len(xb) < 2:
            continue
        r = compare(xa, xb, metric, confidence=confidence, labels=labels)
        out.append({**dict(zip(by, cell)), **r.to_dict()})
    return pd.DataFrame(out)


def summary_lines(result: CompareResult | pd.DataFrame, by: Sequence[str] | None, scale: float) -> list[str]:
    """One line per comparison: the result's summary, or per cell of a ``compare_by`` frame."""
    if not by:
        return [result.summary(scale)]
    if result.empty:
        raise UserError("compare --by: no cell has 2 or more finished seeds on both sides")
    fields = CompareResult.__dataclass_fields__
    return [
        f"[{', '.join(f'{k}={row[k]}' for k in by)}] {CompareResult(**{k: row[k] for k in fields}).summary(scale)}"
        for _, row in result.iterrows()
    ]
