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
    with pytest.raises(UserError, match="choose best .* final .* or max"):
        with_protocol(TableSpec(), "mean")
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
