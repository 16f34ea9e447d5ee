"""``--storage s3://...`` end to end against a real S3-compatible server on the loopback (moto's
standalone server, started here): run, a rerun that skips, every command on the results URI,
``--restart`` (S3 has no folder rename: copy, then delete), the endpoint from the URI's query and from
``AWS_ENDPOINT_URL``, Ctrl-C mid-sweep resumed from a checkpoint that Ray Tune stored in the bucket,
the lock of a killed run taken over by the next, and a prefix of odd characters found by every reader.

Credentials are fake and set in the environment, as a user would; Ray is started after they are, so
its worker processes inherit them (as the local Ray of ``ablate run`` does)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from ablate.cli import main
from helpers.runs import every_command, interrupt, run_process, wait_for
from helpers.s3 import offline_aws
from helpers.tiny_sweeps import write_sweep

pytestmark = pytest.mark.system
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'ablate[dev]')")

BUCKET = "ablate-test"
SWEEP = """\
grid:
  predictor.name: [linear, directpred]
seeds: [0]
table: {rows: [predictor.name], metric: z_std}
"""


class S3:
    """The running server: its endpoint, a pyarrow filesystem on it, and the URIs of the bucket."""

    def __init__(self, host: str, port: int) -> None:
        self.endpoint = f"{host}:{port}"
        self.fs = pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http", allow_bucket_creation=True)

    @property
    def query(self) -> str:
        return f"endpoint_override={self.endpoint}&scheme=http"

    def uri(self, path: str) -> str:
        """``s3://<bucket>/<path>`` with the endpoint in the query."""
        return f"s3://{BUCKET}/{path}?{self.query}"

    def names(self, path: str) -> list[str]:
        """Every object and folder under ``<bucket>/<path>``, relative to it."""
        infos = self.fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{path}", recursive=True, allow_not_found=True))
        return sorted(i.path.removeprefix(f"{BUCKET}/{path}/") for i in infos)

    def rows(self, path: str, columns: list[str] | None = None):
        """The results folder ``<bucket>/<path>`` read with pyarrow.dataset straight from the bucket."""
        return ds.dataset(f"{BUCKET}/{path}", filesystem=self.fs, format="parquet").to_table(columns).to_pandas()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 (a free port), fake credentials in the environment (no ~/.aws
    file, no instance metadata: nothing outside the loopback is asked), one bucket, and a local Ray
    started afterwards so its workers carry the same environment."""
    import ray

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    empty = tmp_path_factory.mktemp("aws") / "none"
    had_ray = ray.is_initialized()
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_SESSION_TOKEN", "RAY_ADDRESS"):
            mp.delenv(key, raising=False)
        offline_aws(mp, empty)
        store = S3(*server.get_host_and_port())
        store.fs.create_dir(BUCKET)
        if had_ray:  # the session's Ray started before these variables existed: its workers lack them
            ray.shutdown()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield store
        finally:
            ray.shutdown()
    server.stop()
    if had_ray:  # give the session back the Ray the other modules expect (ray_local), in their environment
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


def test_a_sweep_on_s3_and_every_command_on_it_then_restart(s3, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, "s3sweep", SWEEP)
    storage, folder = s3.uri("store"), s3.uri("store/s3sweep")
    assert main(["run", str(path), "--storage", storage, "--set", "seeds=[0,1]"]) == 0
    out = capsys.readouterr().out
    assert "4 trials run" in out and "name=directpred" in out  # the table at the end, read back from S3
    first = s3.rows("store/s3sweep")
    assert first.trial_id.nunique() == 4 and first.is_final.sum() == 4
    assert all(n.endswith(".parquet") for n in s3.names("store/s3sweep"))  # the folder holds results only
    held = s3.names("store/_s3sweep")
    assert {"sweep.yaml", "overrides.json"} <= set(held) and sum(n.endswith("/trunk_final.pt") for n in held) == 4
    assert not [n for n in held if n.startswith("lock")] and not [n for n in s3.names("store") if ".tmp-" in n]
    assert main(["run", folder]) == 0 and "already in" in capsys.readouterr().out  # rerun: nothing runs
    every_command(main, folder, capsys, tmp_path / "t.pt", "_s3sweep/figures/z_std.png", "_s3sweep/report.html")
    assert "figures/z_std.png" in s3.names("store/_s3sweep") and "report.html" in s3.names("store/_s3sweep")

    assert main(["run", str(path), "--storage", storage, "--set", "seeds=[0]", "--restart"]) == 0
    out = capsys.readouterr().out
    assert "moved old results to s3://" in out and "2 trials run" in out
    top = [n for n in s3.names("store") if "/" not in n]
    old = [n for n in top if n.startswith("s3sweep.old-")]
    assert len(old) == 1 and f"_{old[0]}" in top  # both folders moved, under one time stamp
    kept = s3.rows(f"store/{old[0]}")
    assert sorted(kept.trial_id) == sorted(first.trial_id)  # the old results, whole
    assert "sweep.yaml" in s3.names(f"store/_{old[0]}")
    assert s3.rows("store/s3sweep").trial_id.nunique() == 2  # the new run, beside them


def test_the_endpoint_can_come_from_aws_endpoint_url(s3, tmp_path, capsys, monkeypatch):
    """AWS_ENDPOINT_URL in the driver's environment only (Ray's workers started without it): the
    results URI carries the endpoint to them, so their weights land in the same bucket."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3.endpoint}")
    path = write_sweep(tmp_path, "envsweep", "seeds: [0]\n")
    assert main(["run", str(path), "--storage", f"s3://{BUCKET}/env", "--no-table"]) == 0
    out = capsys.readouterr().out
    assert f"-> s3://{BUCKET}/env/envsweep?{s3.query}" in out  # the endpoint, from the environment
    assert s3.rows("env/envsweep").is_final.sum() == 1
    assert sum(n.endswith("/trunk_final.pt") for n in s3.names("env/_envsweep")) == 1  # written by the worker
    assert main(["status", f"s3://{BUCKET}/env/envsweep"]) == 0 and "1 done" in capsys.readouterr().out


def test_ctrl_c_on_s3_keeps_finished_trials_and_the_next_run_resumes_from_the_bucket(s3, tmp_path):
    """SIGINT while a trial runs: its checkpoint is in the bucket (Ray Tune wrote it through the
    storage URI's filesystem), the run exits 130, and a second run continues that trial from it."""
    sweep = write_sweep(
        tmp_path,
        "s3int",
        """\
        grid:
          optim.lr: [0.03, 0.05]
        seeds: [0]
        max_concurrent: 1
        checkpoint: {every: 1, keep: 2}
        """,
    )
    epochs = 20  # the first trial is still running when the signal lands
    sweep.write_text(sweep.read_text().replace("epochs: 2,", f"epochs: {epochs},"))
    storage = s3.uri("int")

    def ready() -> bool:  # a trial's rows and a checkpoint are in the bucket
        held = s3.names("int")
        rows = any(n.endswith(".parquet") for n in held)
        return rows and any("/checkpoint_" in n and n.endswith("/state.pt") for n in held)

    with run_process(str(sweep), "--storage", storage, "--no-table") as proc:
        wait_for(ready, proc, "a trial's rows and checkpoint in the bucket")
        code, out = interrupt(proc, signal.SIGINT)
    assert code == 130, out
    assert "interrupted: finished trials are saved" in out
    held = s3.names("int")
    assert not [n for n in held if n.startswith("_s3int/lock")] and not [n for n in held if ".tmp-" in n]
    before = s3.rows("int/s3int")
    checkpointed = {n.split("/")[3] for n in held if n.startswith("_s3int/ray/s3int/") and "/checkpoint_" in n}
    checkpointed -= set(before.loc[before.is_final, "trial_id"])
    assert checkpointed  # the cut-off trial left its checkpoint in the bucket

    assert main(["run", str(sweep), "--storage", storage, "--no-table"]) == 0
    df = s3.rows("int/s3int", ["trial_id", "epoch", "is_final", "resumed_from_epoch"])
    assert df.trial_id.nunique() == 2
    for tid, rows in df.groupby("trial_id"):
        assert sorted(rows.epoch) == list(range(1, epochs + 1)), tid  # every epoch once
        assert rows.is_final.sum() == 1
    for tid in checkpointed:  # continued from the bucket's checkpoint, not from epoch 0
        resumed = df[df.trial_id == tid].resumed_from_epoch.dropna()
        assert len(resumed) and resumed.min() >= 1


def test_a_run_killed_with_its_node_leaves_a_lock_the_next_run_takes_over(s3, tmp_path, capsys):
    """SIGKILL to the run and its Ray (a lost node, the OOM killer): nothing releases the lock object.
    The next run sees that its holder no longer runs on this host, takes it over with one line, and
    runs; it would otherwise wait until the dead run's heartbeat is older than the limit."""
    sweep = write_sweep(tmp_path, "killed", "seeds: [0]\n")
    storage = s3.uri("killed")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "run", str(sweep), "--storage", storage, "--no-table"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: the kill takes Ray's processes with it
    )
    try:
        wait_for(lambda: [n for n in s3.names("killed/_killed") if n.startswith("lock")], proc, "the run's lock")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    left = [n for n in s3.names("killed/_killed") if n.startswith("lock")]
    assert left  # the dead run's lock object is still there

    assert main(["run", str(sweep), "--storage", storage, "--no-table"]) == 0
    out = capsys.readouterr().out
    host = socket.gethostname()
    assert f"took over the run lock of pid {proc.pid} on {host} since " in out
    assert f"pid {proc.pid} no longer runs on {host}, so that run is gone" in out
    assert s3.rows("killed/killed").is_final.sum() == 1
    assert not [n for n in s3.names("killed/_killed") if n.startswith("lock")]  # released at the end


def test_a_prefix_of_every_character_a_uri_holds_as_it_is_round_trips(s3, tmp_path, capsys):
    """The issue's ``odd%20dir/a+b=c,d;e@f`` without its escape (refused: readers disagree on %20),
    and more such characters: the run writes keys that are the text as typed, and the commands,
    pandas and polars find its trials by the URI it prints."""
    prefix = "odd-dir/a+b=c,d;e@f~!$&'():x"
    sweep = write_sweep(tmp_path, "oddchars", "seeds: [0]\n")
    assert main(["run", str(sweep), "--storage", s3.uri(prefix), "--no-table"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1].rsplit(" -> ", 1)[1]
    assert printed == s3.uri(f"{prefix}/oddchars")
    assert s3.rows(f"{prefix}/oddchars").is_final.sum() == 1  # the keys are the text as typed
    assert main(["status", printed]) == 0 and "1 done" in capsys.readouterr().out
    assert pd.read_parquet(printed).is_final.sum() == 1
    polars = pytest.importorskip("polars")
    options = {
        "aws_endpoint_url": f"http://{s3.endpoint}",
        "aws_allow_http": "true",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
    }
    assert polars.read_parquet(f"s3://{BUCKET}/{prefix}/oddchars/", storage_options=options)["is_final"].sum() == 1
