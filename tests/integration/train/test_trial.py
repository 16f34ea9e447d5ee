"""A real pretraining trial on digits: rows, repeatability, divergence, the CLI, and the science."""

import math

import pandas as pd

from ablate.cli import main
from ablate.kinds.registry import SSL
from ablate.kinds.single import run_single
from ablate.kinds.ssl import load_trial_config
from ablate.train.loop import pretrain

FAST = {
    "train": {"epochs": 2, "steps_per_epoch": 4, "threads": 1},
    "eval": {"every": 1, "probe_epochs": 3},
    "projector": {"hidden_dim": 64, "out_dim": 32},
    "model": {"width": 32},
}


def fast(**over):
    cfg = {**FAST, **over}
    return load_trial_config(cfg)


def test_trial_reports_one_row_per_evaluated_epoch():
    """The loop reports its rows (metrics, epoch, step, status); run as a trial of its kind, every row
    also carries the identity, config and provenance columns."""
    rows = []
    out = pretrain(fast(predictor={"name": "directpred"}), rows.append)
    assert rows == out and [r["epoch"] for r in rows] == [1, 2]
    assert [r["is_final"] for r in rows] == [False, True] and {r["status"] for r in rows} == {"ok"}
    df = run_single(fast(predictor={"name": "directpred"}), {})
    assert df.epoch.tolist() == [1, 2] and set(df.status) == {"ok"}
    last = df.iloc[-1]
    for name, _, _ in SSL.metrics:
        assert name in df.columns, name
    assert 0 <= last["probe_top1"] <= 1 and last["probe_top1_best"] >= last["probe_top1"]
    assert last["predictor.name"] == "directpred" and last["predictor.rho"] == 0.3
    assert last["trial_id"] == SSL.trial_id(fast(predictor={"name": "directpred"})) and last["kind"] == "ssl"
    assert last["step"] == 8 and last["total_steps"] == 8
    assert len(last["f_eigs"]) == 32 and -1 <= last["eig_align"] <= 1


def test_eval_every_skips_epochs_but_always_evaluates_the_last():
    cfg = load_trial_config(
        {**FAST, "train": {"epochs": 3, "steps_per_epoch": 2}, "eval": {"every": 2, "probe_epochs": 2}}
    )
    assert [r["epoch"] for r in pretrain(cfg, lambda r: None)] == [2, 3]


def test_cpu_trial_is_bit_for_bit_repeatable():
    a = pretrain(fast(predictor={"name": "directpred"}), lambda r: None)
    b = pretrain(fast(predictor={"name": "directpred"}), lambda r: None)
    keys = ["loss", "probe_top1", "knn_top1", "z_std", "eig_align"]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    c = pretrain(fast(predictor={"name": "directpred"}, seed=1), lambda r: None)
    assert [r["loss"] for r in c] != [r["loss"] for r in a]


def test_non_finite_loss_ends_the_trial_as_diverged(monkeypatch):
    import ablate.models.pair as pair

    calls = {"n": 0}
    real = pair.byol_loss

    def poisoned(p, t):
        calls["n"] += 1
        return real(p, t) * (float("nan") if calls["n"] > 10 else 1.0)

    monkeypatch.setattr(pair, "byol_loss", poisoned)
    rows = pretrain(fast(train={"epochs": 3, "steps_per_epoch": 4, "threads": 1}), lambda r: None)
    assert [r["status"] for r in rows] == ["ok", "diverged"]  # epoch 1 kept, epoch 2 diverged
    assert rows[-1]["is_final"] and "non-finite loss" in rows[-1]["error"] and math.isnan(rows[-1]["loss"])


def test_cli_trial_writes_parquet(tmp_path, capsys):
    out = tmp_path / "t.parquet"
    code = main(
        [
            "trial",
            "--set",
            "predictor.name=mlp",
            "--set",
            "train.epochs=1",
            "--set",
            "train.steps_per_epoch=2",
            "--set",
            "eval.probe_epochs=2",
            "--set",
            "projector.out_dim=16",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    df = pd.read_parquet(out)
    assert len(df) == 1 and df["predictor.name"].iloc[0] == "mlp" and df["predictor.hidden_dim"].iloc[0] == 512
    assert "epoch   1" in capsys.readouterr().out


def test_cli_trial_bad_key_is_exit_2(tmp_path, capsys):
    assert main(["trial", "--set", "optim.lrr=1", "--out", str(tmp_path / "t.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "ablate: error: --set: optim.lrr: unknown key; did you mean 'lr'?"
    assert not (tmp_path / "t.parquet").exists()


def test_cli_trial_accepts_a_yaml_file_of_overrides(tmp_path):
    f = tmp_path / "o.yaml"
    f.write_text("train: {epochs: 1, steps_per_epoch: 2}\neval: {probe_epochs: 2}\npredictor: {name: none}\n")
    assert main(["trial", str(f), "--out", str(tmp_path / "t.parquet")]) == 0
    assert pd.read_parquet(tmp_path / "t.parquet")["predictor.name"].iloc[0] == "none"


def test_cli_trial_keeps_its_weights_beside_the_output_not_in_the_working_directory(tmp_path, monkeypatch, capsys):
    """``--out <dir>/<name>.parquet`` -> the trunk weights in ``<dir>/_<name>/weights/`` (the companion,
    skipped by a Parquet reader of ``<dir>``); the working directory gets nothing."""
    cwd, outdir = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    sets = ["train.epochs=1", "train.steps_per_epoch=2", "eval.probe_epochs=2", "save.weights=final"]
    assert main(["trial", *[a for s in sets for a in ("--set", s)], "--out", "../out/t.parquet"]) == 0
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in outdir.iterdir()) == ["_t", "t.parquet"]
    assert (outdir / "_t" / "weights" / "trunk_final.pt").is_file()
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "wrote 1 rows to ../out/t.parquet; the trunk weights to ../out/_t/weights/"
    )
    assert len(pd.read_parquet(outdir)) == 1  # the folder still reads as a dataset of rows
