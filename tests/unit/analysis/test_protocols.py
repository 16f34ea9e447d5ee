"""``--protocol``: which probe number stands for a trial (best / final probe epoch of the final
pretraining epoch, or the max over pretraining epochs), checked against frames computed by hand."""

import pandas as pd
import pytest

import ablate
from ablate.analysis.protocols import PROTOCOL_SPECS, metric_under, protocol_rows, with_protocol
from ablate.errors import UserError
from ablate.sweep.table_block import TableSpec


def frame() -> pd.DataFrame:
    """Two arms x 2 seeds, evaluated at epochs 5 and 10; one trial peaks at epoch 5, one diverges at 10."""
    rows = []
    values = {  # trial -> (arm, seed, (best@5, final@5), (best@10, final@10), status at 10)
        "a0": ("linear", 0, (0.80, 0.78), (0.70, 0.69), "ok"),
        "a1": ("linear", 1, (0.60, 0.59), (0.90, 0.88), "ok"),
        "b0": ("directpred", 0, (0.50, 0.49), (0.55, 0.54), "ok"),
        "b1": ("directpred", 1, (0.95, 0.94), (None, None), "diverged"),
        "b2": ("directpred", 2, (0.65, 0.64), (0.60, 0.59), "ok"),
    }
    for tid, (arm, seed, at5, at10, status) in values.items():
        for epoch, (best, final), st in ((5, at5, "ok"), (10, at10, status)):
            rows.append(
                {
                    "trial_id": tid,
                    "seed": seed,
                    "predictor.name": arm,
                    "epoch": epoch,
                    "status": st,
                    "is_final": epoch == 10,
                    "probe_top1_best": best,
                    "probe_top1": final,
                    "sweep": "p",
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "protocol, linear, directpred",
    [
        ("best", (0.70 + 0.90) / 2, (0.55 + 0.60) / 2),
        ("final", (0.69 + 0.88) / 2, (0.54 + 0.59) / 2),
        ("max", (0.80 + 0.90) / 2, (0.55 + 0.65) / 2),
        ("top1", (0.80 + 0.90) / 2, (0.55 + 0.65) / 2),  # the best one epoch: max
        ("top5", (0.75 + 0.75) / 2, (0.525 + 0.625) / 2),  # 2 evaluated epochs < 5: the mean of both
    ],
)
def test_each_protocol_fills_cells_with_its_number(protocol, linear, directpred):
    t = ablate.table(frame(), rows=["predictor.name"], protocol=protocol, scale=1.0, digits=4)
    cells = {r: (m, n) for r, m, n in t.to_frame()[["row", "mean", "n"]].values.tolist()}
    assert cells["name=linear"] == (pytest.approx(linear), 2)
    assert cells["name=directpred"] == (pytest.approx(directpred), 2)  # the diverged seed stays out
    assert "diverged" in t.to_frame().set_index("row").loc["name=directpred", "flags"]


def test_the_caption_says_which_protocol_it_shows():
    captions = {p: ablate.table(frame(), rows=["predictor.name"], protocol=p).table.caption for p in PROTOCOL_SPECS}
    assert "best of probe epochs (paper)" in captions["best"] and "at the final epoch" in captions["best"]
    assert "final probe epoch" in captions["final"]
    assert (
        "best of probe epochs (paper)" in captions["max"] and "max over evaluated pretraining epochs" in captions["max"]
    )


def test_protocol_rows_keep_the_final_status_and_take_the_best_epochs_metric():
    rows = protocol_rows(frame(), "probe_top1_best", "max").set_index("trial_id")
    assert rows.loc["a0", "probe_top1_best"] == 0.80 and rows.loc["a0", "epoch"] == 10
    assert rows.loc["b1", "status"] == "diverged"
    assert protocol_rows(frame(), "probe_top1_best", "final").equals(frame())  # final: the rows as they are


def test_compare_under_max_uses_each_trials_best_epoch():
    arms = {"predictor.name": "linear"}, {"predictor.name": "directpred"}
    r = ablate.compare_arms(frame(), *arms, protocol="max")
    assert (r.mean_a, r.mean_b, r.n_a, r.n_b) == (pytest.approx(0.85), pytest.approx(0.60), 2, 2)
    best = ablate.compare_arms(frame(), *arms, protocol="best")
    assert (best.mean_a, best.mean_b) == (pytest.approx(0.80), pytest.approx(0.575))


def test_protocols_apply_to_probe_metrics_only():
    for bad in ("mean", "top0", "top", "top5x"):
        with pytest.raises(UserError, match=r"choose best .* final .* max .* or top<k>, e.g. top5"):
            with_protocol(TableSpec(), bad)
    with pytest.raises(UserError, match="applies to probe metrics"):
        metric_under("z_std", "max")
    assert metric_under("z_std", None) == ("z_std", "final")


def test_max_takes_the_probes_numbers_of_the_best_epoch_and_every_other_metric_of_the_final_one():
    df = frame()
    df["knn_top1"] = df["epoch"].map({5: 0.99, 10: 0.40})  # kNN peaks at 5 with the probe: max must not take it
    df["probe_top5"] = df["probe_top1_best"] + 0.05
    df["z_std"] = df["epoch"].map({5: 0.9, 10: 0.3})
    t = ablate.table(df, rows=["predictor.name"], top5="knn_top1", protocol="max", scale=1.0, digits=4)
    cell = t.cell("name=linear")
    assert cell.mean == pytest.approx((0.80 + 0.90) / 2) and cell.top5 == pytest.approx(0.40)  # kNN: final epoch
    rows = protocol_rows(df, "probe_top1_best", "max").set_index("trial_id")
    assert rows.loc["a0", ["probe_top1_best", "probe_top1", "probe_top5"]].tolist() == pytest.approx([0.80, 0.78, 0.85])
    assert rows.loc["a0", ["knn_top1", "z_std", "epoch"]].tolist() == pytest.approx([0.40, 0.3, 10])
    with pytest.raises(UserError, match="applies to probe metrics"):
        ablate.compare_arms(
            df, {"predictor.name": "linear"}, {"predictor.name": "directpred"}, "knn_top1", protocol="max"
        )


def test_top_k_is_the_mean_of_a_trials_k_best_evaluated_epochs():
    """The authors' tools2 (utils_stats.process_func, stats.py --topk_mean, default 5): a run's values
    sorted best first (``--descending`` for accuracy), the mean of the first k, or of all of them
    when there are fewer than k."""
    best = [0.61, 0.74, 0.70, 0.77, 0.72, 0.75, 0.73]  # epochs 1..7; the final epoch's is 0.73
    df = pd.DataFrame(
        {
            "trial_id": "t",
            "seed": 0,
            "epoch": range(1, 8),
            "status": "ok",
            "is_final": [False] * 6 + [True],
            "probe_top1_best": best,
            "sweep": "p",
        }
    )
    top5 = sorted(best, reverse=True)[:5]  # 0.77, 0.75, 0.74, 0.73, 0.72
    for protocol, want in (("best", 0.73), ("max", 0.77), ("top5", sum(top5) / 5), ("top3", (0.77 + 0.75 + 0.74) / 3)):
        t = ablate.table(df, protocol=protocol, scale=1.0, digits=6)
        assert t.to_frame()["mean"].item() == pytest.approx(want), protocol
    assert "mean of the 5 best evaluated pretraining epochs" in ablate.table(df, protocol="top5").table.caption
    rows = protocol_rows(df, "probe_top1_best", "top5")
    assert rows["probe_top1_best"].item() == pytest.approx(sum(top5) / 5) and rows["epoch"].item() == 7


def test_the_report_shows_every_cell_under_the_four_protocols(tmp_path):
    """best / final / max / top5 side by side, each as the table would show it (the numbers of
    test_each_protocol_fills_cells_with_its_number); a table of another metric has no such section."""
    from ablate.analysis.protocol_grid import protocol_grid
    from ablate.analysis.report import write_report

    spec = TableSpec(rows=("predictor.name",), scale=1.0, digits=3)
    grid = protocol_grid(frame(), spec, "p")
    assert grid.header == ("cell", "best", "final", "max", "top5")
    by_cell = {r[0]: r[1:] for r in grid.rows}
    assert by_cell["name=linear"] == (
        "0.800 ± 0.141 (n=2)",
        "0.785 ± 0.134 (n=2)",
        "0.850 ± 0.071 (n=2)",
        "0.750 ± 0.000 (n=2)",
    )
    assert protocol_grid(frame(), TableSpec(rows=("predictor.name",), metric="z_std"), "p") is None
    out = write_report(frame(), spec, tmp_path / "r.md", fmt="markdown", paper=False)
    text = (tmp_path / "r.md").read_text()
    assert "## Probe protocols" in text and "| cell | best | final | max | top5 |" in text, out
