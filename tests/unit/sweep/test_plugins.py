"""Plugins: a predictor, dataset or kind of one's own, named by a sweep (or an entry point), validated
exactly like the built-ins, refused in one line when broken, and part of the trial id of the trials
that use it (an edited plugin reruns those and nothing else).

The registries are process-wide, so every test here registers names of its own."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.config.registry import PREDICTORS
from ablate.errors import UserError
from ablate.kinds.registry import KINDS, SSL
from ablate.kinds.single import run_single
from ablate.sweep.load import read_sweep
from ablate.sweep.plugins import load_entry_points
from helpers.plugins import lowrank, walk


def plugin(tmp_path: Path, name: str, text: str | None = None, file: str | None = None) -> Path:
    """A plugin file (the example low-rank predictor by default) registering ``name``."""
    path = tmp_path / (file or f"{name}.py")
    path.write_text(lowrank(name) if text is None else text.replace("{name}", name))
    return path


def sweep(tmp_path: Path, plugins: str, grid: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: s
        plugins: {plugins}
        base:
          data: {{name: digits}}
          train: {{epochs: 1, device: cpu}}
        grid:
          {grid}
        {extra}""")
    )
    return path


def check_error(path: Path, capsys) -> str:
    """``ablate check``'s one line (exit 2, no traceback) for ``path``."""
    assert main(["check", "--no-data", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def test_a_plugin_predictor_sits_beside_the_built_ins_with_strict_keys(tmp_path):
    plugin(tmp_path, "rank_a")
    s = read_sweep(sweep(tmp_path, "[rank_a.py]", "predictor: [{name: rank_a, rank: 2}, {name: directpred}]"))
    (ours, builtin) = s.trials
    assert ours.config.predictor.rank == 2 and type(ours.config.predictor).__name__ == "LowRankConfig"
    assert PREDICTORS.origin("rank_a").plugin == "rank_a.py" and PREDICTORS.origin("directpred").builtin
    assert [p.name for p in s.plugins][:1] == ["rank_a.py"]
    # the trial that uses the plugin carries its hash; the built-in one is the id it always had
    assert SSL.plugins(ours.config) == [s.plugins[0].origin] and SSL.plugins(builtin.config) == []
    assert builtin.trial_id == SSL.trial_id(builtin.config) and len(ours.trial_id) == 12
    cols = SSL.columns(ours.config)
    assert cols["plugin"] == "rank_a.py" and cols["plugin_sha256"] == s.plugins[0].sha256


def test_a_typo_in_a_plugin_predictors_key_is_one_line_with_did_you_mean(tmp_path, capsys):
    plugin(tmp_path, "rank_b")
    path = sweep(tmp_path, "[rank_b.py]", "predictor: [{name: rank_b, rnak: 2}]")
    assert "predictor.rnak: unknown key for predictor 'rank_b'; did you mean 'rank'?" in check_error(path, capsys)
    path = sweep(tmp_path, "[rank_b.py]", "predictor: [{name: rank_b, rank: two}]")
    assert "predictor.rank: expected int, got 'two'" in check_error(path, capsys)


def test_a_plugin_that_takes_a_built_in_name_is_refused(tmp_path, capsys):
    plugin(tmp_path, "directpred", file="clash.py")
    line = check_error(sweep(tmp_path, "[clash.py]", "seed: []"), capsys)
    assert "s.yaml:2: plugins[0]: plugin clash.py: " in line
    assert "predictor 'directpred' is already registered by ablate (built in); give yours another name" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import numpy\nx = (\n", "failed to import: SyntaxError: "),
        ("import no_such_module_anywhere\n", "failed to import: ModuleNotFoundError: No module named "),
        ("\n\nraise RuntimeError('boom')\n", "failed to import: RuntimeError: boom (line 3)"),
        ("x = 1\n", "registers nothing; call register_predictor, register_dataset or register_kind"),
        (
            "from ablate.models.predictors import register_predictor\n@register_predictor\nclass P: pass\n",
            "register_predictor: P is not a subclass of ablate.models.predictors.Predictor",
        ),
        (
            lowrank("broken_one").replace("@dataclass(frozen=True)", "@dataclass"),
            "TypeError: cannot inherit non-frozen dataclass from a frozen one (line 13)",
        ),
        (
            lowrank("broken_one").replace("    Config = LowRankConfig\n", ""),
            "LowRankPredictor.Config must be a dataclass subclassing",
        ),
    ],
    ids=["syntax", "missing import", "raises", "registers nothing", "not a predictor", "not frozen", "no Config"],
)
def test_a_broken_plugin_is_one_line_at_check(tmp_path, capsys, text, expected):
    plugin(tmp_path, "broken_one", text)
    line = check_error(sweep(tmp_path, "[broken_one.py]", "seed: []"), capsys)
    assert "plugins[0]: " in line and expected in line, line


def test_a_missing_plugin_file_or_module_is_one_line(tmp_path, capsys):
    assert "plugin file nowhere.py not found" in check_error(sweep(tmp_path, "[nowhere.py]", "seed: []"), capsys)
    assert "no module 'no_such_pkg.preds' importable here" in check_error(
        sweep(tmp_path, "[no_such_pkg.preds]", "seed: []"), capsys
    )


def test_editing_a_plugin_changes_the_ids_of_its_trials_only(tmp_path):
    path = plugin(tmp_path, "rank_c")
    s = sweep(tmp_path, "[rank_c.py]", "predictor: [{name: rank_c}, {name: linear}]")
    before = [t.trial_id for t in read_sweep(s).trials]
    path.write_text(path.read_text() + "\n# an edit\n")
    after = [t.trial_id for t in read_sweep(s).trials]
    assert after[0] != before[0] and after[1] == before[1]
    # the same source moved elsewhere is the same plugin: ids follow the source, not the path
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rank_c.py").write_text(path.read_text())
    moved = sweep(tmp_path, "[sub/rank_c.py]", "predictor: [{name: rank_c}, {name: linear}]")
    assert [t.trial_id for t in read_sweep(moved).trials] == after


def test_a_plugin_kind_is_checked_like_a_built_in(tmp_path, capsys):
    plugin(tmp_path, "walk_a", walk("{name}"))
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nplugins: [walk_a.py]\nbase: {kind: walk_a}\ngrid: {steps: [2, 5]}\nseeds: [0, 1]\n")
    s = read_sweep(path)
    assert s.kind == "walk_a" and len(s.trials) == 4 and s.metric.name == "position"
    assert KINDS["walk_a"].schema.field("position").type == "double"
    assert main(["check", "--no-data", str(path)]) == 0
    assert "plugin       walk_a.py (sha256 " in capsys.readouterr().out
    path.write_text("name: w\nplugins: [walk_a.py]\nbase: {kind: walk_a, stpes: 2}\n")
    assert "w.yaml:3: stpes: unknown key; did you mean 'steps'?" in check_error(path, capsys)


def test_a_kind_with_a_broken_interface_is_refused(tmp_path, capsys):
    bad = walk("{name}").replace('("position", "max")', '("nowhere", "max")')
    plugin(tmp_path, "walk_b", bad)
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nplugins: [walk_b.py]\nbase: {kind: walk_b}\n")
    assert "default_metric ('nowhere', 'max') must be (one of its metric columns" in check_error(path, capsys)


def test_an_installed_packages_entry_point_is_a_plugin(tmp_path, monkeypatch):
    """A distribution on sys.path whose entry_points.txt names a module in group ablate.predictors."""
    plugin(tmp_path, "rank_ep", file="ep_preds.py")
    info = tmp_path / "ep_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ablate.predictors]\nrank_ep = ep_preds\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (loaded,) = [p for p in load_entry_points() if p.module == "ep_preds"]
    assert loaded.name == "ep-dist:rank_ep" and PREDICTORS.origin("rank_ep") == loaded.origin
    monkeypatch.delitem(sys.modules, "ep_preds")


def test_the_registry_refuses_a_name_that_is_not_an_identifier():
    with pytest.raises(UserError, match="predictor name 'two words' must be an identifier"):
        PREDICTORS.register("two words", object())


DATASET = """
import torch

from ablate.datasets.images import Splits, TensorImageSet
from ablate.datasets.records import Dataset, Sizes, register_dataset


def load(cfg, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=gen).to(device)
    y = (torch.arange(64) % 4).to(device)
    train, test = TensorImageSet(x[:48], y[:48]), TensorImageSet(x[48:], y[48:])
    return Splits(train, train, test, 4, 1, 8, "none")


register_dataset(Dataset("{name}", "noise", "64 noise images", load, lambda cfg: Sizes(48, 48, 16, 64, 8), 1, 8, 4, "none"))
"""


def test_a_plugin_dataset_trains_and_its_hash_joins_the_trial_id(tmp_path):
    plugin(tmp_path, "noise_a", DATASET)
    path = tmp_path / "d.yaml"
    path.write_text(
        "name: d\nplugins: [noise_a.py]\nbase: {data: {name: noise_a}, model: {width: 8}, "
        "projector: {hidden_dim: 16, out_dim: 8}, train: {epochs: 1, batch_size: 16, device: cpu, threads: 1}, "
        "eval: {probe_epochs: 1, knn_k: 4}}\n"
    )
    (trial,) = read_sweep(path).trials
    assert [p.plugin for p in SSL.plugins(trial.config)] == ["noise_a.py"]
    df = run_single(trial.config, {})
    assert df.plugin.tolist() == ["noise_a.py"] and df.status.tolist() == ["ok"] and 0 <= df.knn_top1[0] <= 1
