"""Epochs never paid for twice, end to end on a real local Ray (issue #21, point 6): a sweep of 1-, 2- and
3-epoch trials runs the 3-epoch ones only, and every shorter cell it reads from them has the numbers
and the weights of the same trial run on its own.

Tolerance: none. On the CPU, with one thread per trial and the same seed, a trial's first epochs are
the same floating-point operations in the same order whether or not more epochs follow (constant lr
and EMA; evaluation draws from its own generator), so the numbers agree bit for bit. On a GPU cuDNN
picks kernels per run (``cudnn.benchmark``), so two runs of the very same trial may differ in the last
bits; there a shared cell can agree with a separate run only to that run-to-run noise (not measured:
no GPU was at hand when this was written).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablate.cli import main
from ablate.results.io import final_rows
from ablate.results.layout import FINAL_WEIGHTS, SweepDir
from ablate.sweep.load import read_sweep
from ablate.train.loop import pretrain
from helpers.tiny_sweeps import write_sweep

pytestmark = pytest.mark.system

LENGTHS = """\
grid:
  predictor: [{name: linear}, {name: directpred}]
  train.epochs: [1, 2, 3]
seeds: [0]
"""
METRICS = ["epoch", "step", "loss", "knn_top1", "probe_top1", "probe_top5", "probe_top1_best", "z_std", "lr"]


class Weights:
    """An in-memory ArtifactStore: what a trial saves, by name."""

    readouts = ()

    def __init__(self) -> None:
        self.saved: dict[str, dict] = {}

    def save(self, name: str, obj) -> str:
        self.saved[name] = obj
        return name


@pytest.fixture(scope="module")
def shared(ray_local, tmp_path_factory):
    """One run of the sweep with sharing on: (sweep file, results folder, stdout)."""
    tmp = tmp_path_factory.mktemp("prefix")
    path = write_sweep(tmp, "lengths", LENGTHS)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["run", str(path), "--storage", str(tmp / "res"), "--no-table"]) == 0
    return path, SweepDir.of("lengths", tmp / "res"), out.getvalue()


def test_only_the_longest_trials_run_and_the_shorter_cells_say_where_they_came_from(shared):
    path, folder, _ = shared
    sweep = read_sweep(path)
    rows = pd.read_parquet(folder.loc.local)
    final = final_rows(rows).set_index("trial_id")
    assert sorted(final.index) == sorted(t.trial_id for t in sweep.trials)  # every cell, its own trial
    for t in sweep.trials:
        mine = final.loc[t.trial_id]
        assert (mine["train.epochs"], mine["epoch"], mine["total_steps"]) == (t.config.train.epochs,) * 2 + (
            2 * t.config.train.epochs,
        )
        assert (mine["derived_from"] if t.derived_from else None) == t.derived_from
    ran = final[final["derived_from"].isna()]
    assert sorted(ran["epoch"]) == [3, 3]  # 6 epochs trained, not 1 + 2 + 3 = 6 per predictor: 12


def test_a_shorter_cell_has_the_numbers_and_weights_of_the_same_trial_run_on_its_own(shared):
    path, folder, _ = shared
    rows = pd.read_parquet(folder.loc.local)
    for t in read_sweep(path).trials:
        if t.derived_from is None:
            continue
        alone, weights = [], Weights()
        pretrain(t.config, alone.append, artifacts=weights)
        got = rows[rows.trial_id == t.trial_id].sort_values("epoch")[METRICS].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, pd.DataFrame(alone)[METRICS], check_exact=True, check_dtype=False)
        kept = torch.load(folder.weights(t.trial_id).local / FINAL_WEIGHTS, weights_only=True)
        assert kept.keys() == weights.saved[FINAL_WEIGHTS].keys()
        assert all(torch.equal(kept[k], weights.saved[FINAL_WEIGHTS][k]) for k in kept)


def test_resume_runs_nothing_and_a_lost_shorter_cell_is_read_again_from_its_long_trials_rows(shared, capsys):
    path, folder, _ = shared
    storage = str(Path(folder.loc.local).parent)
    assert main(["run", str(path), "--storage", storage, "--no-table"]) == 0
    assert "all 6 trials of lengths are already in" in capsys.readouterr().out
    short = next(t for t in read_sweep(path).trials if t.derived_from is not None)
    file = Path(folder.trial_file(short.trial_id).local)
    before = pd.read_parquet(file)
    file.unlink()
    assert main(["run", str(path), "--storage", storage, "--no-table"]) == 0
    out = capsys.readouterr().out
    assert "read trials from the rows of finished longer trials (derived_from)" in out
    assert "0 trials run" not in out and "1 trials run, 5 already done, 0 failed" in out
    keep = ["epoch", "loss", "probe_top1_best", "derived_from", "wall_s"]
    pd.testing.assert_frame_equal(pd.read_parquet(file)[keep], before[keep])
