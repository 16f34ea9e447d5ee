"""Every sweep file we ship passes ``ablate check`` (exit 0, no traceback) and expands to the number of
trials its source says: the paper's table for the paper sweeps (reference doc Sec. 4: STL-10 and
CIFAR-10 tables are mean +- std of 5 seeds; Table 9, ImageNet, is one run per cell), the grid written
in its header for the digits and theory sweeps. A new sweep file fails here until it has a line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablate.cli import main

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*(REPO / "sweeps").glob("*.yaml"), *(REPO / "examples").glob("*/sweep.yaml")])

TRIALS = {  # file stem (or example folder) -> (trials, where the count comes from)
    "smoke": (4 * 2, "4 predictors x EMA on/off, 1 seed"),
    "digits_ordering": ((4 + 1) * 3, "4 predictors + a random trunk, 3 seeds"),
    "plugin_predictor": (5 * 2, "2 low-rank ranks + linear + DirectPred + MLP, 2 seeds"),
    "stl10_plugin": (2 * 2 * 4 * 5, "Table 1: solve paper/reference x EMA on/off x N in 1, 2, 3, 5 x 5 seeds"),
    "stl10_predictor": (2 * 2 * 2 * 2 * 5, "Table 3: linear/2-layer x EMA on/off x bias x symmetric x 5 seeds"),
    "stl10_wd": (2 * 2 * 2 * 3 * 5, "Tables 2, 3, 5: EMA x bias x symmetric x 3 weight-decay settings x 5 seeds"),
    "stl10_directpred": (2 * 4 * 5, "Table 6: rho in 0.3, 0.5 x eps in 0, 0.01, 0.1, 0.5 x 5 seeds"),
    "stl10_eigen_offset": (2 * 4 * 5, "Table 7: freq 1, 2 x c in 0.1, 0.05, -0.05, -0.1 x 5 seeds"),
    "stl10_longer": (3 * 3 * 5, "Table 8, STL-10: DirectPred freq 1, 5, SGD linear x 100/300/500 epochs x 5 seeds"),
    "cifar10_longer": (3 * 3 * 5, "Table 8, CIFAR-10: the same 3 x 3 x 5 seeds"),
    "imagenet_60ep": (3, "Table 9, 60 epochs: MLP, linear, DirectPred, one run each"),
    "imagenet_300ep": (3, "Table 9, 300 epochs: MLP, linear, DirectPred, one run each"),
    "theory_collapse": (4 * 2 * 3, "predictor none/linear/symmetric/DirectPred x stop-gradient on/off x 3 seeds"),
    "theory_alignment": (2 * 2 * 4 * 2, "symmetric/linear W_p x tau 0.6, 1 x 4 weight decays x 2 seeds"),
    "theory_balance": ((2 * 4 * 3 + 2) * 2, "target x 4 eta x 3 alpha_p + 2 cases, 2 seeds"),
    "theory_ema": ((3 * 5 + 5) * 4, "3 beta x 5 alpha_p + 5 SimSiam cases, 4 seeds"),
    "theory_parabola": (2 * 3, "eta 0, 0.04 x 3 alpha_p"),
    "theory_threshold": (4 * 10, "4 tau x 10 eta around the bound tau^2 / 4"),
}


# sweeps whose trials differing only in train.epochs share one run (ablate.sweep.prefix): file stem ->
# (trials that run, the share of the compute of every trial run on its own, why)
SHARED = {
    "stl10_longer": (3 * 5, 500 / (100 + 300 + 500), "one 500-epoch run per predictor x seed; training and evaluation"),
    "cifar10_longer": (3 * 5, 500 / (100 + 300 + 500), "(every epoch) are both linear in the epochs: 500 of 900"),
}


def name_of(path: Path) -> str:
    return path.parent.name if path.name == "sweep.yaml" else path.stem


@pytest.mark.parametrize("path", SHIPPED, ids=name_of)
def test_every_shipped_sweep_passes_check_with_the_trial_count_of_its_source(path, capsys):
    assert main(["check", "--no-data", str(path)]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "error" not in out.err, out.err
    trials = int(re.search(r"^trials\s+(\d+)", out.out, re.M).group(1))
    expected, source = TRIALS[name_of(path)]
    assert trials == expected, f"{path.name}: {trials} trials, but {source} is {expected}"
    shared = re.search(r"estimated compute: \S+ FLOPs \((\d+) runs for \d+ trials, (\S+)x of", out.out)
    if name_of(path) in SHARED:
        runs, share, why = SHARED[name_of(path)]
        assert shared and (int(shared.group(1)), float(shared.group(2))) == (runs, pytest.approx(share, abs=5e-4)), why
    else:
        assert shared is None, f"{path.name}: trials share a run; add it to SHARED with its source"


def test_the_table_of_counts_names_exactly_the_shipped_sweeps():
    assert sorted(TRIALS) == sorted(name_of(p) for p in SHIPPED)
