"""Every sweep file we ship runs, shrunk by ``--set`` overrides to its first trial (first grid point,
first case when it has no grid, first seed; one epoch of one step on small crops on the CPU; a
theory trial of 20 steps), against tiny datasets in the official formats that the test writes where
the sweep's own ``${ABLATE_DATA:-data}`` points: each file's trial in this process (its loader, its
network, its optimizer, its evaluation: everything a worker runs), and one file of each kind through
``ablate run`` on real Ray, whose results ``ablate table`` then reads. A sweep that crashes on its own
settings fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from ablate.cli import main
from ablate.config.tree import parse_set
from ablate.kinds.single import run_single
from ablate.sweep.load import read_sweep
from helpers.tiny_data import write_data_root

pytestmark = pytest.mark.system
REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))

SHRINK = {  # per kind: the trial config keys that make one trial a few seconds on a CPU
    "ssl": {
        "train.epochs": 1,
        "train.steps_per_epoch": 1,
        "train.batch_size": 8,
        "train.device": "cpu",
        "train.precision": "fp32",
        "train.channels_last": False,
        "train.compile": False,
        "train.threads": 1,
        "data.image_size": 32,
        "data.workers": 0,
        "eval.every": 1,
        "eval.probe_epochs": 1,
        "eval.knn_k": 4,
    },
    "linear_dynamics": {"steps": 20, "report_every": 5},
}


def flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


def shrink(path: Path) -> list[str]:
    """The ``--set`` arguments that shrink the sweep at ``path`` to its first trial."""
    sweep = read_sweep(path, validate_paths=False)
    keys = SHRINK[sweep.kind]

    def small(key: str, value: Any) -> Any:
        return keys.get(key, value)

    sets: dict[str, Any] = {k: v for k, v in keys.items()}
    sets.update({"seeds": [sweep.seeds[0]], "resources": {"cpu": 1}, "cases": [], "grid": {}})
    if sweep.grid:
        sets["grid"] = {a.key: [small(a.key, a.values[0])] for a in sweep.grid}
    elif sweep.cases:
        sets["cases"] = [{k: small(k, v) for k, v in sweep.cases[0].overrides.items()}]
    return [arg for k, v in sets.items() for arg in ("--set", f"{k}={flow(v)}")]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_data_root(tmp_path_factory.mktemp("data"))


def shrunk(path: Path) -> Any:
    """The sweep at ``path`` loaded with the overrides that shrink it (the first of its trials is kept)."""
    argv = shrink(path)
    return read_sweep(path, dict(parse_set(argv[1::2])))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_shipped_sweep_runs_its_first_trial_shrunk(path, data_root, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(data_root))
    sweep = shrunk(path)
    assert len(sweep.trials) == 1, [t.label for t in sweep.trials]
    df = run_single(sweep.trials[0].config, {})
    final = df[df.is_final]
    assert final.status.tolist() == ["ok"] and final.trial_id.tolist() == [sweep.trials[0].trial_id]


@pytest.mark.parametrize("name", ["smoke", "theory_collapse"])  # one of each built-in kind
def test_a_shipped_sweep_of_each_kind_runs_through_ablate_run(name, data_root, ray_local, tmp_path, capsys):
    path = REPO / "sweeps" / f"{name}.yaml"
    storage = tmp_path / "results"
    assert main(["run", str(path), "--storage", str(storage), *shrink(path)]) == 0, capsys.readouterr().err
    rows = pd.read_parquet(storage / name)
    final = rows[rows.is_final.fillna(False).astype(bool)]
    assert len(final) == 1 and final.status.tolist() == ["ok"], final[["status", "error"]].to_dict("records")
    capsys.readouterr()
    assert main(["table", str(storage / name)]) == 0, capsys.readouterr().err
