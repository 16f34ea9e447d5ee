"""``ablate bench``: timing protocol, targets and verdicts, the table, the CLI, and the baselines' honesty."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ablate.benchmark.core import Measurement, Target, interleave, judge_noise
from ablate.benchmark.sizes import BenchSizes, sizes_for
from ablate.benchmark.suite import SECTIONS, fmt_number, parse_sections, render_bench, run_bench
from ablate.cli import build_parser
from ablate.errors import UserError
from ablate.train.cost import THROUGHPUT


class FakeClock:
    """A clock that advances only when a timed function says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_interleave_warms_up_then_alternates_the_order():
    calls: list[str] = []
    clock = FakeClock()

    def fn(name: str, cost: float):
        def run():
            calls.append(name)
            clock.now += cost

        return run

    runs = interleave({"a": fn("a", 1.0), "b": fn("b", 3.0)}, repeats=4, warmup=2, clock=clock)
    assert calls == ["a", "b"] * 2 + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert runs == {"a": [1.0] * 4, "b": [3.0] * 4}


def test_interleave_syncs_around_every_timed_call():
    events: list[str] = []
    interleave({"a": lambda: events.append("a")}, repeats=2, warmup=1, sync=lambda: events.append("sync"))
    assert events == ["a", "sync", "a", "sync", "sync", "a", "sync"]


@pytest.mark.parametrize(
    "target,ours,baseline,verdict",
    [
        (Target("ratio", ">=", 3.0, ""), 900.0, 300.0, "met"),
        (Target("ratio", ">=", 3.0, ""), 899.0, 300.0, "missed"),
        (Target("ratio", "<=", 1.10, ""), 1.05, 1.0, "met"),
        (Target("ratio", "<=", 1.10, ""), 1.2, 1.0, "missed"),
        (Target("overhead", "<=", 2.0, ""), 2.5, 0.4, "missed"),  # 2.1 s of overhead
        (Target("overhead", "<=", 2.0, ""), 2.3, 0.4, "met"),
        (Target("ours", ">=", 10_000, ""), 12_000.0, math.nan, "met"),
        (Target("ratio", ">=", 3.0, ""), 1.0, 0.0, "n/a"),
    ],
)
def test_verdicts(target, ours, baseline, verdict):
    assert Measurement("s", "w", ours, baseline, "u", target).verdict == verdict


def test_figure_without_target_or_measured_has_no_verdict():
    assert Measurement("s", "w", 1.0, 2.0, "s").verdict == ""
    assert Measurement("s", "w", 1.0, 2.0, "s").ratio == 0.5
    assert Measurement("gpu", "w", math.nan, math.nan, "", status="skipped").verdict == "skipped"


AUG = Target("ratio", ">=", 3.0, "ratio >= 3")


def test_repeats_far_apart_make_a_figure_noisy_not_met_or_missed():
    """A loaded machine: one repeat of ours 4x slower than another; the median's ratio would read
    'missed' (0.8x) and is not to be trusted either way."""
    calm = Measurement("augment", "a", 2400.0, 600.0, "img/s", AUG, ours_runs=[2350.0, 2400.0, 2450.0])
    busy = Measurement("augment", "b", 480.0, 600.0, "img/s", AUG, ours_runs=[2400.0, 480.0, 300.0])
    judge_noise([calm, busy])
    assert (calm.verdict, calm.noise) == ("met", "")
    assert busy.verdict == "noisy" and "repeats of ours 300 to 2.4e+03 img/s (8.0x apart)" in busy.noise


def test_a_part_larger_than_its_whole_makes_both_noisy():
    whole = "evaluation (extract + probe + kNN) vs 1 epoch"
    figures = [
        Measurement("eval", whole, 0.26, 0.41, "s"),
        Measurement("eval", "linear probe alone vs 1 epoch", 0.31, 0.41, "s", part_of=whole),
        Measurement("eval", "kNN alone vs 1 epoch", 0.01, 0.41, "s", part_of=whole),
    ]
    judge_noise(figures)
    assert [f.verdict for f in figures] == ["noisy", "noisy", ""]
    assert figures[1].noise == f"larger than its whole, {whole!r} (0.31 > 0.26)"
    assert figures[0].noise == "smaller than its part 'linear probe alone vs 1 epoch'"


def test_a_negative_time_is_noise_and_skipped_figures_stay_skipped():
    further = Measurement("orchestration", "each further trial", -0.02, 0.1, "s/trial", ours_runs=[-0.02])
    skipped = Measurement("gpu", "packing", math.nan, math.nan, "", status="skipped", ours_runs=[1.0, 9.0])
    judge_noise([further, skipped])
    assert further.verdict == "noisy" and "a time of -0.02 s/trial" in further.noise
    assert skipped.verdict == "skipped" and skipped.noise == ""


def test_the_table_warns_under_noisy_figures_and_says_nothing_when_none_are():
    calm = Measurement("step", "s", 0.042, 0.041, "s/step", ours_runs=[0.041, 0.042], baseline_runs=[0.04, 0.041])
    busy = Measurement("step", "t", 0.09, 0.041, "s/step", ours_runs=[0.04, 0.09, 0.2])
    judge_noise([calm, busy])
    text = render_bench(_frame([calm, busy]))
    assert text.splitlines()[3].rstrip().endswith("noisy")
    assert "warning: 1 of 2 figures are too noisy to trust" in text and "step / t: repeats of ours" in text
    assert "warning" not in render_bench(_frame([calm]))


def test_fmt_number():
    assert [fmt_number(x) for x in (12345.6, 653.2, 1.4567, 0.0608123, 0, math.nan, None)] == [
        "12,346",
        "653",
        "1.46",
        "0.0608",
        "0",
        "-",
        "-",
    ]


def _frame(figures: list[Measurement]) -> pd.DataFrame:
    import datetime as dt

    from ablate.benchmark.core import BenchContext
    from ablate.benchmark.suite import to_frame

    ctx = BenchContext("cpu", 2, BenchSizes(), quick=True)
    return to_frame(figures, ctx, dt.datetime(2026, 11, 24, tzinfo=dt.UTC))


def test_frame_carries_provenance_and_the_table_aligns():
    df = _frame(
        [
            Measurement(
                "augment",
                "STL-10 recipe",
                653.0,
                441.0,
                "img/s",
                Target("ratio", ">=", 3, "ratio >= 3"),
                note="baseline: torchvision",
                ours_runs=[650.0, 656.0],
                baseline_runs=[440.0, 442.0],
            ),
            Measurement("gpu", "packing", math.nan, math.nan, "", status="skipped", note="needs CUDA"),
        ]
    )
    for col in ("device", "git_sha", "git_dirty", "versions", "threads", "quick", "started_at", "ours_runs"):
        assert col in df.columns
    assert df["ratio"].iloc[0] == pytest.approx(653 / 441) and math.isnan(df["ratio"].iloc[1])
    assert list(df["verdict"]) == ["missed", "skipped"]
    text = render_bench(df)
    lines = text.splitlines()
    assert lines[0].split() == ["section", "what", "ours", "baseline", "unit", "ratio", "target", "verdict"]
    row = lines[2]
    assert row.startswith("augment") and "1.48x" in row and row.rstrip().endswith("missed")
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule are equally wide
    assert "gpu / packing: needs CUDA" in text and "2 threads" in text


def test_parse_sections_orders_and_rejects_unknown_names():
    assert parse_sections(None) == list(SECTIONS)
    assert parse_sections("eval, step") == ["step", "eval"]
    with pytest.raises(UserError, match="--only stpe: unknown section; did you mean 'step'"):
        parse_sections("stpe")


def test_cli_parser_flags():
    parser = build_parser()
    args = parser.parse_args(["bench", "--quick", "--device", "cpu", "--only", "step", "--out", "x", "--threads", "1"])
    assert (args.quick, args.device, args.only, args.out, args.threads) == (True, "cpu", "step", "x", 1)
    assert parser.parse_args(["bench"]).out == "results/bench"


def test_presets_quick_is_smaller_and_directpred_steps_cover_freq_5():
    for device in ("cpu", "cuda"):
        quick, full = sizes_for(True, device), sizes_for(False, device)
        assert quick.repeats <= full.repeats and quick.orch_trials <= full.orch_trials
        assert quick.directpred_k % 5 == 0 and full.directpred_k % 5 == 0
    assert sizes_for(False, "cuda").step_config["train"]["precision"] == "bf16"


def test_plain_step_computes_the_same_loss_as_the_trial_pair():
    """The baseline must do the same work: on the same views its loss equals BYOLPair's."""
    from ablate.benchmark.sections import PlainStep
    from ablate.kinds.ssl import load_trial_config
    from ablate.train.loop import build_loop

    loop = build_loop(
        load_trial_config(
            {
                "train": {"device": "cpu", "threads": 1, "batch_size": 32},
                "projector": {"hidden_dim": 32, "out_dim": 16},
                "model": {"width": 16},
            }
        )
    )
    plain = PlainStep(loop)
    x1, x2 = torch.rand(2, 32, 1, 16, 16).unbind(0)
    ours, _ = loop.pair(x1, x2)
    assert plain.loss(x1, x2).item() == pytest.approx(ours.item(), rel=1e-6)
    before = [p.clone() for p in plain.target.parameters()]
    plain(1)  # one step moves the online weights, and the EMA the target's
    assert any(not torch.equal(a, b) for a, b in zip(before, plain.target.parameters()))


TINY = BenchSizes(
    repeats=1,
    warmup=0,
    aug_images=8,
    aug_batch=4,
    aug_size=24,
    aug_workers=0,
    step_config={
        "data": {"name": "digits"},
        "model": {"trunk": "convnet", "width": 16},
        "projector": {"hidden_dim": 32, "out_dim": 16},
        "train": {"batch_size": 64},
        "eval": {"probe_epochs": 1},
    },
    step_k=1,
    directpred_k=5,
    directpred_repeats=1,
    eval_config={
        "data": {"name": "digits"},
        "model": {"trunk": "convnet", "width": 16},
        "projector": {"hidden_dim": 32, "out_dim": 16},
        "train": {"batch_size": 256},
        "eval": {"probe_epochs": 1},
    },
    eval_repeats=1,
)


def test_run_bench_end_to_end_with_tiny_sizes(tmp_path):
    """Every CPU section except orchestration (Ray: seconds to start) on tiny sizes: one row per
    figure, numbers positive, the Parquet written, GPU skipped with a note."""
    df = run_bench(
        device="cpu",
        out_dir=tmp_path,
        sections=["augment", "step", "directpred", "eval", "gpu"],
        threads=1,
        sizes=TINY,
        log=lambda msg: None,
    )
    assert list(df["section"]) == ["augment"] + ["step"] * 2 + ["directpred"] * 3 + ["eval"] * 3 + ["gpu"]
    flops = df[df["what"] == THROUGHPUT]  # what `ablate check` turns FLOPs into hours with
    assert len(flops) == 1 and flops["unit"].item() == "FLOP/s" and flops["ours"].item() > 1e6
    measured = df[df["section"] != "gpu"]
    assert (measured["ours"] > 0).all() and (measured["baseline"] > 0).all()
    assert set(measured["verdict"]) <= {"met", "missed", "noisy", ""}
    assert df[df["section"] == "gpu"]["verdict"].item() == "skipped"
    files = list(tmp_path.glob("bench-*-cpu.parquet"))
    assert len(files) == 1 and len(pd.read_parquet(files[0])) == len(df)
    assert torch.get_num_threads() == 1


def test_a_failing_section_is_recorded_and_the_others_still_run(monkeypatch):
    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(SECTIONS, "step", broken)
    df = run_bench(device="cpu", sections=["step", "gpu"], threads=1, sizes=TINY, log=lambda msg: None)
    assert list(df["verdict"]) == ["failed", "skipped"] and "RuntimeError: boom" in df["note"].iloc[0]


def test_peak_table_prefers_the_specific_name():
    from ablate.benchmark.gpu import peak_bf16_flops

    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_bf16_flops("NVIDIA H200") == 989e12
    assert peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_bf16_flops("Tesla V100") is None


def test_pack_throughput_uses_the_common_window():
    from ablate.benchmark.gpu import pack_throughput

    results = [{"windows": [(0.0, 2.0)], "images": 100}, {"windows": [(1.0, 4.0)], "images": 300}]
    agg, per_trial = pack_throughput(results)
    assert agg == [400 / 4.0] and per_trial == pytest.approx((50 + 100) / 2)


def test_gpu_figures_assembly_with_simulated_packing(monkeypatch):
    """The GPU section's arithmetic, with packed runs simulated (k trials share 20,000 img/s;
    2 trials: 16,000; 4: 18,000): aggregate vs 1 trial, GPU-minutes, memory vs estimate, MFU."""
    from ablate.benchmark import gpu as bench_gpu
    from ablate.benchmark.core import BenchContext
    from ablate.benchmark.sizes import stl10_like

    gib = 2**30
    agg = {1: 10_000.0, 2: 16_000.0, 4: 18_000.0}

    def fake_pack_run(k, spec, timeout=0):
        per = agg[k] / k
        steps_images = spec.steps * 128
        return [
            {
                "rank": r,
                "windows": [(0.0, steps_images / per)] * spec.repeats,
                "images": steps_images,
                "fraction": 0.9 / k,
                "peak_allocated": 3 * gib,
                "peak_reserved": int(0.5 * gib),
                "total_memory": 80 * gib,
                "device_name": "NVIDIA H100 80GB HBM3",
            }
            for r in range(k)
        ]

    monkeypatch.setattr(bench_gpu, "pack_run", fake_pack_run)
    monkeypatch.setattr(bench_gpu, "step_flops", lambda *a, **k: (5e12, 0.0))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    sizes = BenchSizes(step_config=stl10_like(128, 256, "bf16", True), gpu_steps=10, gpu_repeats=2)
    figs = {f.what: f for f in bench_gpu.gpu_figures(BenchContext("cuda", 1, sizes, quick=False, log=lambda m: None))}
    four = figs["pretraining images/s, 4 trial(s) packed (aggregate)"]
    assert four.ours == pytest.approx(18_000) and four.ratio == pytest.approx(1.8) and four.verdict == "met"
    assert "respected" in four.note
    minutes = figs["GPU-minutes per 100-epoch STL-10 trial (4 packed)"]
    assert minutes.ours == pytest.approx(100 * 105_000 / 18_000 / 60) and minutes.verdict == "met"
    mfu = figs["model FLOP utilisation, 1 trial"]
    assert mfu.ours == pytest.approx(5e12 * 10_000 / 128 / 1e12) and mfu.baseline == 989.0
    mem = figs["peak memory per trial (1 packed) vs estimate"]
    assert mem.ours == pytest.approx(3.0) and 2.0 < mem.baseline < 6.0


def test_orchestration_splits_a_sweep_into_fixed_and_marginal_cost(monkeypatch):
    """The orchestration section's arithmetic on canned timings (Ray is started by the CI's
    ``ablate bench --quick``, not here): a sweep of N = 4 takes 10 s, of 4N 16 s, the loop 0.8 s,
    Ray start + stop 3 s -> 2.5 s/trial, each further trial 0.5 s, fixed cost 8 s."""
    from ablate.benchmark import orchestration as bench_orchestration_module
    from ablate.benchmark.core import BenchContext

    called = {}
    times = {"ours": [10.0], "baseline": [0.8], "more": [16.0], "ray": [3.0]}

    def canned(fns, repeats, warmup):
        called.update(fns)
        return {name: times[name] for name in fns}

    monkeypatch.setattr(bench_orchestration_module, "interleave", canned)
    monkeypatch.setattr(bench_orchestration_module, "pretrain", lambda cfg, report: None)
    sizes = BenchSizes(orch_trials=4, orch_repeats=1)
    figs = {
        f.what: f for f in bench_orchestration_module.bench_orchestration(BenchContext("cpu", 1, sizes, quick=False))
    }
    assert set(called) == {"ours", "baseline", "more", "ray"}
    per_trial = figs["sweep of 4 trivial trials, per trial"]
    assert (per_trial.ours, per_trial.baseline) == (2.5, 0.2) and per_trial.verdict == "missed"
    marginal = figs["each further trial (16 vs 4 trials)"]
    assert marginal.ours == pytest.approx(0.5) and marginal.verdict == "met"
    assert figs["fixed cost per sweep"].ours == pytest.approx(8.0)
    assert figs["of which Ray start + stop"].ours == 3.0
    quick = bench_orchestration_module.bench_orchestration(BenchContext("cpu", 1, sizes, quick=True))
    assert [f.what for f in quick] == ["sweep of 4 trivial trials, per trial"]


def _arms(epochs, status, z_std, device_s):
    names = ["none", "linear", "mlp", "directpred"]
    return pd.DataFrame(
        {
            "epoch": epochs,
            "status": status,
            "collapsed": [True, True, False, False],
            "z_std": z_std,
            "probe_top1_best": [0.3, 0.3, 0.9, 0.9],
            "device_s": device_s,
        },
        index=pd.Index(names, name="predictor.name"),
    )


def test_collapse_section_reports_the_compute_saved_and_where_each_collapsed_arm_stopped():
    from ablate.benchmark.collapse import collapse_figures

    base = _arms([30] * 4, ["ok"] * 4, [0.01, 0.02, 0.8, 0.7], [30.0, 30.0, 60.0, 60.0])
    ours = _arms([5, 7, 30, 30], ["collapsed_stopped"] * 2 + ["ok"] * 2, [0.01, 0.02, 0.8, 0.7], [5.0, 7.0, 60.0, 60.0])
    figures = {m.what.split(",")[0]: m for m in collapse_figures({"ours": (20.0, ours), "baseline": (25.0, base)}, 30)}
    assert (figures["epochs trained"].ours, figures["epochs trained"].baseline) == (72.0, 120.0)
    assert (figures["device time of all trials"].ours, figures["device time of all trials"].baseline) == (132.0, 180.0)
    assert figures["largest change to a healthy arm (final z_std"].verdict == "met"
    assert (
        figures["predictor=linear stopped at epoch"].ours == 7.0
        and "predictor=none at epoch 5" in figures["epochs trained"].note
    )

    drifted = ours.assign(z_std=[0.01, 0.02, 0.75, 0.7])  # stopping changed a healthy arm: the target is missed
    figures = {m.what: m for m in collapse_figures({"ours": (20.0, drifted), "baseline": (25.0, base)}, 30)}
    assert figures["largest change to a healthy arm (final z_std, probe)"].verdict == "missed"


def test_prefix_section_reports_the_epochs_saved_and_that_no_cell_changed():
    """Per predictor, lengths 2 / 4 / 6: each trial on its own trains 2 + 4 + 6 = 12 epochs, sharing trains 6
    (the 6-epoch run; the others read from it); the cells' numbers must not move."""
    from ablate.benchmark.prefix import prefix_figures

    ids = pd.Index(["a2", "a4", "a6", "b2", "b4", "b6"], name="trial_id")
    numbers = {
        m: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] for m in ("loss", "probe_top1_best", "probe_top1", "knn_top1", "z_std")
    }
    base = pd.DataFrame({"epoch": [2, 4, 6] * 2, "device_s": [2.0, 4.0, 6.0] * 2, **numbers}, index=ids)
    derived = ["a6", "a6", None, "b6", "b6", None]
    ours = base.assign(derived_from=derived)
    figures = {
        m.what.split(",")[0]: m for m in prefix_figures({"ours": (5.0, ours), "baseline": (9.0, base)}, [2, 4, 6])
    }
    assert (figures["epochs trained"].ours, figures["epochs trained"].baseline) == (12.0, 24.0)
    assert "2 runs for 6 trials" in figures["epochs trained"].note
    assert figures["device time of the trials that ran"].ours == 12.0
    assert figures["largest change to a cell's final numbers (same trial ids"].verdict == "met"
    moved = ours.assign(z_std=[0.1, 0.2, 0.3, 0.4, 0.55, 0.6])
    figures = {m.what: m for m in prefix_figures({"ours": (5.0, moved), "baseline": (9.0, base)}, [2, 4, 6])}
    assert figures["largest change to a cell's final numbers (same trial ids, same seeds)"].verdict == "missed"
