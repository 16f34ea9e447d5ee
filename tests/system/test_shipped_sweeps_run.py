"""Every sweep file we ship runs: ``ablate run <file> --set ...`` with overrides that shrink it to its first
trial (first grid point, first case when it has no grid, first seed; one epoch of one step on small
crops on the CPU; a theory trial of 20 steps), on real Ray, against tiny datasets in the official
formats that the test writes where the sweep's own ``${ABLATE_DATA:-data}`` points. Then ``ablate
table`` reads the results. A sweep that crashes on its own settings fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from ablate.cli import main
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


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_shipped_sweep_runs_shrunk_to_one_trial(path, data_root, ray_local, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ABLATE_DATA", str(data_root))
    storage = tmp_path / "results"
    assert main(["run", str(path), "--storage", str(storage), *shrink(path)]) == 0, capsys.readouterr().err
    folder = storage / read_sweep(path, validate_paths=False).name
    rows = pd.read_parquet(folder)
    final = rows[rows.is_final.fillna(False).astype(bool)]
    assert len(final) == 1 and final.status.tolist() == ["ok"], final[["status", "error"]].to_dict("records")
    capsys.readouterr()
    assert main(["table", str(folder)]) == 0, capsys.readouterr().err
