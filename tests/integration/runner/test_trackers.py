"""Trackers: Ray Tune's TensorBoard / MLflow / W&B callbacks, fed the runner's real rows.

One ``ablate run --log ...`` of a tiny digits sweep (2 seeds, 2 epochs of 2 steps) from the command
line, naming every installed tracker; then each tracker's output is read back with that tracker's own
reader: tensorboard's EventAccumulator, MlflowClient, W&B's offline run folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.runner.tracker_callbacks import row_metrics, trial_info
from ablate.runner.trackers import REQUIRES, mlflow_uri, parse_log, require
from ablate.sweep.load import read_sweep

SWEEP = """
name: trk
base:
  data: {name: digits}
  train: {epochs: 2, steps_per_epoch: 2, batch_size: 64, device: cpu, threads: 1}
  eval: {every: 1, probe_epochs: 2, knn_k: 20}
  predictor: {name: directpred}
seeds: [0, 1]
resources: {cpu: 1}
logging: [tensorboard, mlflow, wandb]
"""

# MLflow's own SQLAlchemy store warns about SQLAlchemy internals; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


needs_tb = pytest.mark.skipif(
    not (_installed("tensorboardX") and _installed("tensorboard")),
    reason="tensorboardX / tensorboard not installed (pip install 'ablate[tensorboard]')",
)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """``ablate run trk.yaml --log <every installed tracker>`` in its own process, as a user types it
    (standard output a pipe, no W&B credentials, as on CI: the W&B callback must choose offline mode
    by itself); return (sweep, results folder, trial ids, what the command printed)."""
    tmp = tmp_path_factory.mktemp("trk")
    (tmp / "trk.yaml").write_text(SWEEP)
    names = [n for n, m in (("tensorboard", "tensorboardX"), ("mlflow", "mlflow"), ("wandb", "wandb")) if _installed(m)]
    sweep = read_sweep(tmp / "trk.yaml", {"logging": names})
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_API_KEY", "RAY_ADDRESS")}
    env.update(NETRC=str(tmp / "no-netrc"), WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    argv = ["run", "trk.yaml", "--storage", "results", "--no-table", "--log", ",".join(names)]
    proc = subprocess.run(
        [sys.executable, "-m", "ablate.cli", *argv], cwd=tmp, env=env, capture_output=True, text=True, timeout=600
    )
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed
    assert "Traceback" not in printed, printed
    return sweep, tmp / "results" / sweep.name, sorted(t.trial_id for t in sweep.trials), printed


def test_every_tracker_callback_pickles_without_its_stream(tmp_path):
    """Tune pickles the run's callbacks before any trial runs: one that keeps the CLI's standard
    output (which cannot be pickled) stops the run with a PicklingError."""
    from ray import cloudpickle

    from ablate.runner.trackers import TRACKERS, tracker_callbacks

    (tmp_path / "trk.yaml").write_text(SWEEP)
    sweep = read_sweep(tmp_path / "trk.yaml")
    names = [n for n in TRACKERS if all(_installed(m) for m in REQUIRES[n][0])]
    with open(os.devnull, "w") as stream:  # a real file descriptor, as the CLI's stdout
        callbacks = tracker_callbacks(names, sweep, SweepDir.at(tmp_path / "results" / "trk"), stream=stream)
        for name, callback in zip(names, callbacks):
            assert cloudpickle.loads(cloudpickle.dumps(callback)) is not None, name


@pytest.mark.slow  # starts Ray: ~15 s on an idle 2-core machine
@needs_tb
def test_tensorboard_event_files_read_by_tensorboard(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, root, ids, _ = tracked
    assert (
        sorted(p.name for p in SweepDir.at(root).tracker_dir("tensorboard").iterdir()) == ids
    )  # one folder per trial_id
    for tid in ids:
        acc = EventAccumulator(str(SweepDir.at(root).tracker_dir("tensorboard") / tid))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        for metric in ("loss", "probe_top1_best", "knn_top1", "z_std", "eig_align", "commutator", "wall_s"):
            assert f"ray/tune/{metric}" in tags
        events = acc.Scalars("ray/tune/probe_top1_best")
        assert [e.step for e in events] == [1, 2]  # step = epoch
        assert all(0.0 <= e.value <= 1.0 for e in events)
        # hparams written at trial end: the plugin's session-start summary holds our dotted keys
        plugin = acc.PluginTagToContent("hparams")
        assert plugin, "no hparams summary"
        from tensorboard.plugins.hparams import plugin_data_pb2

        starts = [plugin_data_pb2.HParamsPluginData.FromString(c).session_start_info for c in plugin.values()]
        hp = next(s.hparams for s in starts if s.hparams)
        assert hp["predictor.name"].string_value == "directpred"
        assert hp["predictor.rho"].number_value == pytest.approx(0.3)
        assert hp["train.epochs"].number_value == 2


@pytest.mark.slow  # starts Ray: ~15 s on an idle 2-core machine
@pytest.mark.skipif(not _installed("mlflow"), reason="mlflow not installed (pip install 'ablate[mlflow]')")
def test_mlflow_run_readable_through_client(tracked):
    from mlflow.tracking import MlflowClient

    sweep, root, ids, _ = tracked
    client = MlflowClient(mlflow_uri(SweepDir.at(root)))
    exp = client.get_experiment_by_name(sweep.name)  # one experiment per sweep
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ids  # one run per trial, named by trial_id
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["predictor.name"] == "directpred"
        assert run.data.params["seed"] in ("0", "1")
        assert run.data.tags["sweep"] == sweep.name and run.data.tags["status"] == "ok"
        hist = client.get_metric_history(run.info.run_id, "probe_top1_best")
        assert sorted(m.step for m in hist) == [1, 2]
        assert {"loss", "knn_top1", "z_std", "probe_top5", "collapsed"} <= set(run.data.metrics)


@pytest.mark.slow  # starts Ray: ~15 s on an idle 2-core machine
@pytest.mark.skipif(not _installed("wandb"), reason="wandb not installed (pip install 'ablate[wandb]')")
def test_wandb_offline_writes_run_folders(tracked):
    _, root, ids, printed = tracked
    runs = sorted((SweepDir.at(root).tracker_dir("wandb") / "wandb").glob("offline-run-*"))
    assert len(runs) == len(ids)
    files = []
    for run in runs:
        found = list(run.glob("*.wandb"))
        assert len(found) == 1, f"no run file in {run}"
        files += found
    # W&B's service process writes the run file through a buffer of its own and may still be
    # flushing it after the command has ended (seen under load: a file with system metrics only), so
    # everything asserted is waited for, as `wandb sync` later would find it.
    deadline = time.monotonic() + 120
    while (missing := _wandb_missing(files, ids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not missing, missing
    assert f"wandb sync {SweepDir.at(root).tracker_dir('wandb') / 'wandb'}" in printed


def _wandb_missing(files: list, ids: list[str]) -> list[str]:
    """What the offline run files lack of what the tracker writes: each trial_id (the run name) in
    exactly one file; in every file the group (the sweep), config keys and values, metric names.
    The files are protobuf records read by `wandb sync` (no Python reader ships with wandb >= 0.2x)."""
    blobs = [f.read_bytes() for f in files]
    missing = [f"run {tid} in {n} files" for tid in ids if (n := sum(tid.encode() in b for b in blobs)) != 1]
    tokens = (b"trk", b"predictor.name", b"directpred", b"probe_top1_best", b"z_std", b"epoch")
    return missing + [f"{t.decode()} in {f.parent.name}" for f, b in zip(files, blobs) for t in tokens if t not in b]


# ---------------------------------------------------------------- fast checks (no Tune)
def test_parse_log_and_missing_package(monkeypatch):
    assert parse_log("tensorboard, mlflow") == ("tensorboard", "mlflow")
    assert parse_log(None) == ()
    with pytest.raises(UserError, match="did you mean 'mlflow'"):
        parse_log("mlflo")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError) as e:
        require("mlflow")
    assert str(e.value) == "logging: mlflow needs the mlflow package; pip install 'ablate[mlflow]'"


def test_row_metrics_and_trial_info():
    row = {
        "kind": "ssl",
        "loss": 1.5,
        "probe_top1_best": 0.9,
        "collapsed": False,
        "z_std": float("nan"),
        "f_eigs": [1.0, 0.5],
        "wall_s": 3.0,
        "predictor.name": "linear",
    }
    assert row_metrics(row) == {"loss": 1.5, "probe_top1_best": 0.9, "collapsed": 0.0, "wall_s": 3.0}
    info = trial_info(
        {
            "kind": "ssl",
            "sweep": "s",
            "metric": "probe_top1_best",
            "search": "grid",
            "config": {"seed": 3, "predictor": {"name": "directpred", "rho": 0.5}},
        }
    )
    assert info.params["predictor.rho"] == 0.5 and info.params["seed"] == 3
    assert info.tags == {"sweep": "s", "trial_id": info.trial_id, "kind": "ssl", "search": "grid"}
    assert all(v is not None for v in info.params.values())


def test_mlflow_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = SweepDir.at(tmp_path)
    assert (
        mlflow_uri(folder) == f"sqlite:///{(tmp_path.parent / f'_{tmp_path.name}' / 'mlruns' / 'mlflow.db').resolve()}"
    )
    assert mlflow_uri(folder, "http://host:5000") == "http://host:5000"
    assert mlflow_uri(folder, str(tmp_path / "store")).endswith("store/mlflow.db")


def test_wandb_mode_offline_without_credentials(tmp_path, monkeypatch):
    from ablate.runner.trackers import wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


@pytest.mark.skipif(not _installed("wandb"), reason="wandb not installed (pip install 'ablate[wandb]')")
def test_wandb_offline_mode_is_set_for_rays_key_check_only(tmp_path, monkeypatch):
    from ablate.runner.tracker_callbacks import wandb_callback

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    callback = wandb_callback("ablate", "trk", tmp_path / "wandb", "offline", None)
    callback.setup()  # Ray's setup refuses to go on without an API key unless WANDB_MODE says offline
    assert "WANDB_MODE" not in os.environ  # a notebook's own W&B use afterwards keeps its environment
