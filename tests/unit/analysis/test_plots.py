"""Figures of a sweep: which files, that they are real non-empty PNG/PDF images, readable layout."""

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ablate.analysis.plots import LEADING, Arm, _lines_figure, arms, plot_sweep, spectra_names, sweep_figures
from ablate.errors import UserError
from ablate.sweep.table_block import TableSpec
from helpers.sweeps import STL, T3_BASE, config, expansion_rows, flat, trial_rows, write_sweep

SPEC = TableSpec(rows=("predictor.rho",), cols=("predictor.eps",), labels={"predictor.eps=0.5": "large eps"})


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """2 DirectPred arms x 2 seeds with spectra; one seed of the second arm diverges."""
    trials, expected = [], []
    for eps in (0.1, 0.5):
        for s in (0, 1):
            cfg = config(STL, {"predictor.rho": 0.3, "predictor.eps": eps}, s)
            expected.append(flat(cfg))
            status = "diverged" if (eps, s) == (0.5, 1) else "ok"
            trials.append(trial_rows(cfg, "dp_small", 0.75 + 0.01 * s, epochs=(2, 4, 6), spectra=True, status=status))
    return write_sweep(tmp_path_factory.mktemp("p") / "dp_small", trials), expected


def is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_plot_sweep_writes_every_figure_as_png_and_pdf(small, tmp_path):
    df, expected = small
    paths = plot_sweep(df, SPEC, tmp_path / "fig", expected=expected)
    names = {p.name for p in paths}
    stems = ["accuracy", "loss", "z_std", "eigen", "spectra_rho-0.3_eps-0.1", "spectra_rho-0.3_large_eps"]
    assert names == {f"{s}.{e}" for s in stems for e in ("png", "pdf")}
    assert not any("=" in n for n in names)  # file names a shell or a URL takes as they are
    for p in paths:
        assert p.is_file() and p.parent == tmp_path / "fig"
        assert is_png(p) if p.suffix == ".png" else p.read_bytes()[:5] == b"%PDF-"


def test_arms_follow_the_table_order_and_labels(small):
    df, expected = small
    got = arms(df, SPEC, expected)
    assert [a.label for a in got] == ["rho=0.3, eps=0.1", "rho=0.3, large eps"]
    assert [a.rows.trial_id.nunique() for a in got] == [2, 2]
    rev = arms(df, SPEC, list(reversed(expected)))
    assert [a.label for a in rev] == ["rho=0.3, large eps", "rho=0.3, eps=0.1"]


def test_accuracy_figure_is_readable(small):
    """Units on the axes, one legend entry per arm (with seeds and diverged counts), legend outside the data."""
    df, expected = small
    fig = _lines_figure(
        arms(df, SPEC, expected),
        [("probe_top1_best", "probe top-1 (%)", 100.0, False), ("z_std", "z_std", 1.0, True)],
        "t",
    )
    ax_acc, ax_z = fig.axes[:2]
    assert ax_acc.get_xlabel() == "pretraining epoch" and "%" in ax_acc.get_ylabel()
    assert ax_z.get_yscale() == "log"
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["rho=0.3, eps=0.1 (2 seeds)", "rho=0.3, large eps (2 seeds, 1 diverged)"]
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    assert legend.get_window_extent(renderer).x0 >= max(ax.get_window_extent(renderer).x1 for ax in fig.axes[:2])
    # the mean line is the mean over seeds; the diverged seed's missing last epoch leaves only one seed there
    line = ax_acc.get_lines()[1]
    assert list(line.get_xdata()) == [2, 4, 6]
    assert line.get_ydata()[-1] == pytest.approx(75.0)


def test_arms_without_spectra_get_no_eigen_figures(tmp_path):
    trials = [
        trial_rows(config(T3_BASE, {"predictor": {"name": "mlp"}, "ema.tau": tau}, 0), "mlp", 0.7, z_std=z)
        for tau, z in ((0.996, 0.8), (0.0, 0.02))
    ]
    df = write_sweep(tmp_path / "mlp", trials)
    paths = plot_sweep(df, TableSpec(rows=("ema.tau",)), tmp_path / "fig", formats=("png",))
    assert sorted(p.name for p in paths) == ["accuracy.png", "loss.png", "z_std.png"]
    assert all(is_png(p) for p in paths)


def test_no_results_no_figures(tmp_path):
    assert plot_sweep(pd.DataFrame(), SPEC, tmp_path / "x") == []


def test_plot_results_of_a_loaded_sweep(small, tmp_path):
    import ablate
    from ablate.sweep.load import read_sweep

    sweep = read_sweep(Path(__file__).resolve().parents[3] / "sweeps" / "stl10_directpred.yaml", validate_paths=False)
    root = tmp_path / "stl10_directpred"
    write_sweep(root, expansion_rows(sweep, lambda t: 0.75 + 0.01 * t.axes["seed"], spectra=True))
    paths = ablate.plot(sweep, formats=("png",), storage=tmp_path)
    assert {p.parent for p in paths} == {tmp_path / "_stl10_directpred" / "figures"}
    assert "accuracy.png" in {p.name for p in paths} and all(is_png(p) for p in paths)
    with pytest.raises(UserError, match="no results of this sweep yet"):
        ablate.plot(sweep, storage=tmp_path / "none")


def test_accuracy_figure_shows_the_probe_beside_knn_in_percent_whatever_the_table_shows(small):
    """A table of z_std (scale 1) still gets the linear-probe curve, and both accuracies are plotted in %."""
    df, expected = small
    figs = dict(sweep_figures(df, TableSpec(rows=("predictor.eps",), metric="z_std", scale=1.0), expected=expected))
    probe, knn = figs["accuracy"].axes[:2]
    assert "linear probe" in probe.get_ylabel() and "kNN" in knn.get_ylabel()
    assert all("%" in ax.get_ylabel() for ax in (probe, knn))
    # stored as fractions (kNN ends at 0.9 x 0.75 = 0.675 for seed 0): plotted as 67.5, not 0.675
    assert max(max(line.get_ydata()) for line in knn.get_lines()) > 1
    assert max(max(line.get_ydata()) for line in probe.get_lines()) == pytest.approx(75.5)


def test_spectra_figure_draws_the_leading_eigenvalues_as_labelled_lines_and_the_rest_as_a_band(tmp_path):
    d = 20
    rows = trial_rows(config(STL, {}, 0), "dp", 0.7, epochs=(1, 2, 3), spectra=True)
    for i, row in enumerate(rows):
        row["f_eigs"] = [(1.0 + i) * 0.7**j for j in range(d)]
        row["wp_eigs"] = [0.9**j for j in range(d)]
    df = write_sweep(tmp_path / "dp", [rows])
    fig = dict(sweep_figures(df, TableSpec(rows=("predictor.eps",))))["spectra_eps-0.1"]
    f_ax, wp_ax = fig.axes[:2]
    assert len(f_ax.get_lines()) == LEADING == len(wp_ax.get_lines())  # not one line per direction
    assert len(f_ax.collections) == 1  # the other d - LEADING directions share one band
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == f"j = {LEADING}..{d - 1} (min-max)"
    assert labels[1:] == ["j = 0 (largest $s_j$)"] + [f"j = {j}" for j in range(1, LEADING)]
    assert list(f_ax.get_lines()[0].get_ydata()) == pytest.approx([1.0, 2.0, 3.0])  # the largest s_j, as stored


def test_spectra_names_have_no_equals_sign_and_stay_distinct():
    empty = pd.DataFrame()
    groups = [
        Arm(label, "", "", empty) for label in ("predictor=directpred, tau=0.996", "predictor-directpred tau-0.996")
    ]
    assert spectra_names(groups) == [
        "spectra_predictor-directpred_tau-0.996",
        "spectra_predictor-directpred_tau-0.996_2",
    ]
