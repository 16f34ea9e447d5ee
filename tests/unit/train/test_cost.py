"""The cost of a sweep: FLOPs counted on the meta device, hours from a benchmark measured here (or a
stated assumption), and the measured device-hours of ``ablate table --cost``."""

import math

import pandas as pd
import pyarrow as pa
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import ablate
from ablate.errors import UserError
from ablate.kinds.ssl import load_trial_config
from ablate.models.pair import BYOLPair
from ablate.results.io import write_table
from ablate.results.location import Location
from ablate.sweep.load import read_sweep
from ablate.train.cost import THROUGHPUT, cost_line, step_flops, trial_flops
from helpers.tiny_sweeps import write_sweep

TINY = {"model": {"width": 8}, "projector": {"hidden_dim": 16, "out_dim": 8}, "train": {"batch_size": 64}}


def test_a_steps_flops_are_linear_in_the_batch_and_count_the_target():
    a = step_flops(load_trial_config(TINY))[0]
    b = step_flops(load_trial_config({**TINY, "train": {"batch_size": 128}}))[0]
    simsiam = step_flops(load_trial_config({**TINY, "ema": {"tau": 0.0}}))[0]  # no target network to run
    assert b == pytest.approx(2 * a) and simsiam < a
    # a whole step: both views' online forward + backward (~2x forward) and the target forward
    pair = BYOLPair(load_trial_config(TINY), 1)
    with FlopCounterMode(display=False) as fwd:
        pair.online(torch.rand(2 * 64, 1, 16, 16))  # both views' online forward
    assert 3.0 < a / fwd.get_total_flops() < 5.0


def test_a_trials_flops_are_epochs_x_steps_x_step_plus_its_evaluations():
    cfg = load_trial_config({**TINY, "train": {"batch_size": 64, "epochs": 3}, "eval": {"every": 3}})
    per_step, per_image = step_flops(cfg)
    steps = 1347 // 64  # digits' pretraining split
    assert trial_flops(cfg) == pytest.approx(3 * steps * per_step + 1 * (1347 + 450) * per_image)


def test_check_estimates_hours_from_a_benchmark_measured_here_else_says_what_it_assumes(tmp_path):
    sweep = read_sweep(write_sweep(tmp_path, "c", "seeds: [0, 1]\n"))
    assert "run `ablate bench --quick` here for a CPU time estimate" in cost_line(sweep, tmp_path / "none")
    rows = pd.DataFrame(
        [
            {
                "section": "step",
                "what": THROUGHPUT,
                "ours": 2e9,
                "unit": "FLOP/s",
                "started_at": "2026-11-30T06:00:00+00:00",
            }
        ]
    )
    write_table(Location.parse(tmp_path / "bench" / "bench-20261130T060000Z-cpu.parquet"), pa.Table.from_pandas(rows))
    line = cost_line(sweep, tmp_path / "bench")
    flops = 2 * trial_flops(sweep.trials[0].config)
    hours = flops / 2e9 / 3600
    assert f"{flops:.3g} FLOPs (2 trials)" in line and f"{hours:.3g} CPU-hours at 2 GFLOP/s" in line
    assert "measured by ablate bench here, 2026-11-30 (bench-20261130T060000Z-cpu.parquet)" in line
    gpu = read_sweep(write_sweep(tmp_path, "g", "seeds: [0]\nresources: {gpu: 0.25}\n"), {"train.device": "cuda"})
    assert "assumed: an H100 SXM at 35% of its 67 TFLOP/s fp32" in cost_line(gpu, tmp_path / "none")
    assert "4 trials packed per GPU share it" in cost_line(gpu, tmp_path / "none")


def test_table_cost_shows_measured_device_hours_and_the_sweeps_total():
    df = pd.DataFrame(
        {
            "trial_id": list("abcd"),
            "seed": [0, 1, 0, 1],
            "epoch": 3,
            "is_final": True,
            "status": "ok",
            "predictor.name": ["linear"] * 2 + ["mlp"] * 2,
            "device_s": [3600.0, 7200.0, 1800.0, 1800.0],
        }
    )
    t = ablate.table(df, rows=["predictor.name"], cost=True)
    cells = dict(zip(t.to_frame()["row"], t.to_frame()["mean"]))
    assert cells == {"name=linear": pytest.approx(1.5), "name=mlp": pytest.approx(0.5)}  # CPU core-hours, 1 core
    assert "measured CPU core-hours per trial" in t.table.caption and "sweep total 4 CPU core-hours" in t.table.caption
    short = ablate.table(df.assign(device_s=df.device_s / 100), rows=["predictor.name"], cost=True)
    cells = dict(zip(short.to_frame()["row"], short.to_frame()["mean"]))  # trials of 18-72 s read in seconds
    assert cells == {"name=linear": pytest.approx(54.0), "name=mlp": pytest.approx(18.0)}
    assert (
        "measured CPU core-seconds per trial" in short.table.caption
        and "total 144 CPU core-seconds" in short.table.caption
    )
    with pytest.raises(UserError, match="no device_s column"):
        ablate.table(df.drop(columns="device_s"), rows=["predictor.name"], cost=True)
    assert math.isclose(df.device_s.sum() / 3600, 4.0)
