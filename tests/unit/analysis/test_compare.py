"""ablate.compare: Welch's t-test over seeds, checked against a hand computation and a known difference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ablate
from ablate.analysis.compare import compare, compare_by, compare_two_arms, final_values, select, welch
from ablate.errors import UserError

# Five seeds per arm; B is A shifted down by exactly 0.3 points plus its own small noise.
A = [72.10, 71.80, 72.40, 71.95, 72.25]
B = [71.70, 71.60, 71.95, 71.75, 71.90]


def hand_welch(a, b):
    """Welch's t, Welch-Satterthwaite dof and the 95% CI, written out from the textbook formulas."""
    n, m = len(a), len(b)
    ma, mb = sum(a) / n, sum(b) / m
    sa2 = sum((x - ma) ** 2 for x in a) / (n - 1)
    sb2 = sum((x - mb) ** 2 for x in b) / (m - 1)
    va, vb = sa2 / n, sb2 / m
    t = (ma - mb) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (m - 1))
    return ma - mb, t, dof, math.sqrt(va + vb)


def test_welch_matches_hand_computation_and_scipy():
    r = compare(A, B, metric="probe_top1_best")
    diff, t, dof, se = hand_welch(A, B)
    assert r.diff == pytest.approx(diff, rel=1e-12)
    assert r.t == pytest.approx(t, rel=1e-12)
    assert r.dof == pytest.approx(dof, rel=1e-12)
    q = stats.t.ppf(0.975, dof)
    assert (r.ci_low, r.ci_high) == pytest.approx((diff - q * se, diff + q * se), rel=1e-12)
    ref = stats.ttest_ind(A, B, equal_var=False)  # scipy's own Welch test, independent of ours
    assert r.t == pytest.approx(ref.statistic, rel=1e-10)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (r.n_a, r.n_b) == (5, 5)
    assert r.std_a == pytest.approx(np.std(A, ddof=1))


def test_known_difference_is_covered_and_significant():
    r = compare(A, B)
    assert r.ci_low < 0.3 < r.ci_high  # the true shift
    assert r.ci_low > 0 and r.significant and r.p_value < 0.05
    swapped = compare(B, A)
    assert swapped.diff == pytest.approx(-r.diff) and swapped.p_value == pytest.approx(r.p_value)


def test_no_difference_is_not_significant():
    r = compare([1.0, 1.2, 0.9, 1.1], [1.05, 0.95, 1.15, 1.0])
    assert not r.significant and r.ci_low < 0 < r.ci_high


def test_ci_coverage_over_repeated_synthetic_seeds():
    """95% intervals cover the true difference about 95% of the time (Welch's CI is near-exact)."""
    rng = np.random.default_rng(0)
    reps, hits = 400, 0
    for _ in range(reps):
        a = rng.normal(70.3, 0.4, size=5)
        b = rng.normal(70.0, 0.1, size=4)  # unequal spreads and sizes: where Welch matters
        w = welch(a, b)
        hits += w["ci_low"] <= 0.3 <= w["ci_high"]
    assert 0.90 <= hits / reps <= 0.99


def test_confidence_widens_interval():
    r90, r99 = compare(A, B, confidence=0.90), compare(A, B, confidence=0.99)
    assert r99.ci_low < r90.ci_low and r99.ci_high > r90.ci_high


def _results(values: dict[str, list[float]], tau: float = 0.996) -> pd.DataFrame:
    """A results frame: per arm and seed two rows (epoch 1 not final, epoch 2 final), EMA rate ``tau``."""
    rows = []
    for name, vals in values.items():
        for seed, v in enumerate(vals):
            tid = f"{name}-{seed}-{tau}"
            rows.append(
                {
                    "trial_id": tid,
                    "seed": seed,
                    "epoch": 1,
                    "is_final": False,
                    "status": "ok",
                    "predictor.name": name,
                    "ema.tau": tau,
                    "probe_top1_best": 0.0,
                }
            )
            rows.append(
                {
                    "trial_id": tid,
                    "seed": seed,
                    "epoch": 2,
                    "is_final": True,
                    "status": "ok",
                    "predictor.name": name,
                    "ema.tau": tau,
                    "probe_top1_best": v,
                }
            )
    return pd.DataFrame(rows)


def test_final_values_use_final_ok_rows_once():
    df = _results({"directpred": A})
    df.loc[len(df)] = {**df.iloc[-1].to_dict(), "status": "diverged", "trial_id": "x", "probe_top1_best": float("nan")}
    vals = final_values(df, "probe_top1_best")
    assert sorted(vals) == sorted(A)  # epoch-1 zeros and the diverged trial are left out


def test_compare_arms_within_one_sweep():
    df = _results({"directpred": A, "linear": B})
    r = compare_two_arms(df, {"predictor.name": "directpred"}, {"predictor.name": "linear"})
    assert r.diff == pytest.approx(np.mean(A) - np.mean(B))
    assert r.label_a == "predictor.name=directpred" and r.label_b == "predictor.name=linear"
    assert "significant" in str(r)


def test_select_compares_values_canonically():
    df = _results({"linear": B})
    assert len(select(df, {"ema.tau": "0.996"})) == len(df)
    with pytest.raises(UserError, match="ema.tau=0.99: no trial has this value; ema.tau values here: 0.996"):
        select(df, {"ema.tau": 0.99})  # an empty arm would read as "too few seeds"


def test_compare_by_cells():
    a = _results({"directpred": A, "linear": B})
    b = _results({"directpred": B, "linear": B})
    table = compare_by(a, b, ["predictor.name"], labels=("run1", "run2"))
    got = dict(zip(table["predictor.name"], table["diff"]))
    assert got["directpred"] == pytest.approx(np.mean(A) - np.mean(B))
    assert got["linear"] == pytest.approx(0.0, abs=1e-12)


def test_too_few_seeds_and_unknown_metric_are_user_errors():
    with pytest.raises(UserError, match="at least 2"):
        compare([1.0], [1.0, 2.0])
    with pytest.raises(UserError, match="did you mean 'probe_top1_best'"):
        compare(_results({"a": A}), _results({"a": B}), metric="probe_top1_bst")
    with pytest.raises(UserError, match="did you mean"):
        select(_results({"a": A}), {"predictor.nam": "x"})


def test_identical_seeds_give_exact_difference():
    r = compare([1.0, 1.0], [0.5, 0.5])
    assert r.diff == 0.5 and r.ci_low == r.ci_high == 0.5 and r.p_value == 0.0


def test_cmd_compare(tmp_path, capsys):
    from ablate.cli import main

    for name, vals in (("one", {"directpred": A, "linear": B}), ("two", {"directpred": B, "linear": B})):
        (tmp_path / name).mkdir()
        _results(vals).to_parquet(tmp_path / name / "t.parquet")
    run = lambda *argv: main(["compare", *argv])  # noqa: E731
    assert run(str(tmp_path / "one"), "--a", "predictor.name=directpred", "--b", "predictor.name=linear") == 0
    out = capsys.readouterr().out
    assert out.startswith("predictor.name=directpred - predictor.name=linear: probe_top1_best +")
    assert "significant at 5%" in out and "not significant" not in out
    assert run(str(tmp_path / "one"), str(tmp_path / "two"), "--by", "predictor.name") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("]")[0] for ln in lines] == ["[predictor.name=directpred", "[predictor.name=linear"]
    assert run(str(tmp_path / "one")) == 2
    assert "two arms of one folder" in capsys.readouterr().err


# ---------------------------------------------------------------- a side is the seeds of one config
def _two_taus() -> pd.DataFrame:
    """The smoke sweep's shape: each predictor with BYOL's EMA (0.996) and without (0), 2 seeds each."""
    return pd.concat([_results({"directpred": A, "linear": B}), _results({"directpred": B, "linear": A}, tau=0.0)])


def test_an_arm_that_pools_configs_is_refused_naming_what_varies_and_the_where_that_fixes_it():
    df = _two_taus()
    arms = {"predictor.name": "directpred"}, {"predictor.name": "linear"}
    with pytest.raises(UserError) as err:
        compare_two_arms(df, *arms)
    assert str(err.value) == (
        "compare: predictor.name=directpred pools trials of different configs, not the seeds of one: "
        "ema.tau varies (0, 0.996); keep one with --where ema.tau=0 (it applies to both sides)"
    )
    r = compare_two_arms(select(df, {"ema.tau": 0.996}), *arms)  # the fix the message names
    assert (r.n_a, r.n_b) == (5, 5) and r.diff == pytest.approx(np.mean(A) - np.mean(B))
    assert ablate.compare_arms(df, *arms, where={"ema.tau": 0}).diff == pytest.approx(np.mean(B) - np.mean(A))


def test_two_sweeps_and_their_cells_must_each_hold_one_config():
    df = _two_taus()
    with pytest.raises(
        UserError,
        match=r"^compare: A pools trials of different configs, not the seeds of one: "
        r"ema.tau varies \(0, 0.996\); predictor.name varies \(directpred, linear\); keep one with "
        r"--where ema.tau=0 --where predictor.name=directpred, or compare cell by cell with "
        r"--by ema.tau,predictor.name$",
    ):
        compare(df, df)
    with pytest.raises(
        UserError,
        match=r"^compare: A \[predictor.name=directpred\] pools .*: ema.tau varies "
        r"\(0, 0.996\); add ema.tau to --by, or keep one with --where ema.tau=0$",
    ):
        compare_by(df, df, ["predictor.name"])
    cells = compare_by(df, df, ["predictor.name", "ema.tau"])
    assert len(cells) == 4 and np.allclose(cells["diff"], 0.0)


def test_cmd_compare_refuses_pooled_arms_a_bad_scale_and_a_config_column_in_one_line(tmp_path, capsys):
    from ablate.cli import main

    (tmp_path / "r").mkdir()
    _two_taus().to_parquet(tmp_path / "r" / "t.parquet")
    arms = ["--a", "predictor.name=directpred", "--b", "predictor.name=linear"]
    run = lambda *argv: main(["compare", str(tmp_path / "r"), *arms, *argv])  # noqa: E731
    for argv, said in [
        ((), "ema.tau varies (0, 0.996); keep one with --where ema.tau=0"),
        (("--where", "ema.tau=0", "--scale", "nan"), "compare --scale nan: the display factor must be a positive"),
        (("--where", "ema.tau=0", "--scale", "0"), "compare --scale 0: the display factor must be a positive"),
        (("--where", "ema.tau=0", "--scale", "-100"), "compare --scale -100:"),
        (("--where", "ema.tau=0", "--metric", "ema.tau"), "compare --metric ema.tau: a config key, not a measure"),
        (("--where", "ema.tau=0", "--metric", "seed"), "compare --metric seed: a config key, not a measure"),
        (("--where", "ema.tau=0", "--metric", "epoch"), "compare --metric epoch: an identity column, not a measure"),
    ]:
        assert run(*argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and said in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert run("--where", "ema.tau=0", "--scale", "1") == 0
    assert "probe_top1_best" in capsys.readouterr().out


def test_compare_under_a_protocol_of_trials_without_probes_is_one_line(tmp_path, capsys):
    """A theory sweep's trials (kind linear_dynamics) have no probe: --protocol has nothing to pick."""
    from ablate.cli import main

    rows = [
        {
            "trial_id": f"{p}{s}",
            "kind": "linear_dynamics",
            "seed": s,
            "epoch": 1,
            "is_final": True,
            "status": "ok",
            "predictor": p,
            "stop_gradient": True,
            "w_norm": w + 0.01 * s,
        }
        for p, w in (("linear", 2.0), ("none", 0.1))
        for s in (0, 1)
    ]
    (tmp_path / "th").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "th" / "t.parquet")
    arms = ["--a", "predictor=linear", "--b", "predictor=none"]
    assert main(["compare", str(tmp_path / "th"), *arms, "--protocol", "max"]) == 2
    err = capsys.readouterr().err
    assert (
        "compare --protocol max: it picks a linear-probe number (probe_top1_best), which these linear_dynamics "
        "trials do not have; leave --protocol out and give --metric (one of w_norm)" in err
    )
    assert len(err.strip().splitlines()) == 1
    assert main(["compare", str(tmp_path / "th"), *arms, "--metric", "w_norm"]) == 0
    assert "w_norm +1.90" in capsys.readouterr().out
