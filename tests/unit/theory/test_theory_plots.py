"""The theory figures: each writes a PNG and a PDF from a results-shaped DataFrame (built in-process)."""

import pandas as pd
import pytest

from ablate.config.dynamics import load_dynamics_config
from ablate.kinds.single import run_many
from ablate.theory.plots import collapse_map, commutator_decay, final_summary, phase_portrait, plot_theory

SHORT = {"n1": 4, "n2": 4, "dt": 0.1, "steps": 60, "report_every": 10}


def frame(*overrides, seeds=(0,)):
    return run_many([load_dynamics_config({**SHORT, **o, "seed": s}) for o in overrides for s in seeds], "t")


def written(paths, *names):
    assert sorted(p.name for p in paths) == sorted(f"{n}.{ext}" for n in names for ext in ("png", "pdf"))
    for p in paths:
        head = p.read_bytes()[:4]
        assert head == (b"\x89PNG" if p.suffix == ".png" else b"%PDF")


def test_phase_portrait(tmp_path):
    modes = {"init": "modes", "s0": [0.2, 1.0], "p0": [0.9, 0.2]}
    df = frame({**modes, "eta": 0.0}, {**modes, "eta": 0.1})
    written(phase_portrait(df, tmp_path / "pp"), "pp")


def test_commutator_decay_and_summary(tmp_path):
    df = frame({"predictor": "symmetric", "eta": 0.0}, {"predictor": "linear", "eta": 0.05}, seeds=(0, 1))
    written(commutator_decay(df, tmp_path / "comm.png"), "comm")
    written(final_summary(df, tmp_path / "summary", "n_alive", x="eta"), "summary")


def test_collapse_map(tmp_path):
    modes = {"init": "modes", "s0": [1.0], "p0": [1.0]}
    df = frame(*({**modes, "eta": e, "tau": t} for e in (0.05, 0.4) for t in (0.5, 1.0)))
    written(collapse_map(df, tmp_path / "map"), "map")


def test_plot_theory_picks_figures_by_metric_and_skips_what_does_not_apply(tmp_path):
    df = frame({"predictor": "none"}, {"predictor": "linear"})  # random init, nothing numeric varies
    written(plot_theory(df, tmp_path / "a", metric="w_norm"), "w_norm")
    written(plot_theory(df, tmp_path / "b", metric="parabola_gap"), "parabola_gap")  # no init: modes -> no portrait
    assert plot_theory(df, tmp_path / "c", metric="n_alive") == []  # no modes, no (eta, tau) grid, no numeric axis
    assert phase_portrait(df, tmp_path / "d") != [] and phase_portrait(df.iloc[:0], tmp_path / "e") == []
    assert plot_theory(pd.DataFrame({"status": pd.Series([], dtype=str)}), tmp_path / "f") == []


@pytest.mark.parametrize("status", ["diverged"])
def test_figures_skip_rows_that_are_not_ok(tmp_path, status):
    df = frame({"predictor": "linear", "eta": 0.01}, {"predictor": "symmetric", "eta": 0.02})
    df.loc[df["predictor"] == "symmetric", "status"] = status
    paths = commutator_decay(df, tmp_path / "ok")
    written(paths, "ok")
