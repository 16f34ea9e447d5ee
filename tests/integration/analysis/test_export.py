"""ablate export: the trunk of a trial -> a plain state_dict that torchvision loads strictly, same features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from ablate.analysis.export import read_trunk, select_trial, write_trunk
from ablate.cli import main
from ablate.config.trial import ModelConfig
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.models.trunks import build_trunk, export_state_dict
from ablate.results.layout import SweepDir
from helpers.sweeps import write_sweep


def _fake_trial(
    root: Path, model: dict, in_channels: int, seed: int, probe: float, save: bool = True, status: str = "ok"
) -> tuple[str, torch.nn.Module]:
    """One finished trial the way the runner leaves it: rows in <root>/<id>.parquet and the online
    trunk's export_state_dict in SweepDir.at(<root>).weights(<id>)/trunk_final.pt (random weights: the trunk)."""
    cfg = load_trial_config({"model": model, "seed": seed})
    torch.manual_seed(seed)
    trunk = build_trunk(cfg.model, in_channels)
    # non-trivial BN statistics, so a missing buffer would change the features
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    trunk.eval()
    base = {**SSL.columns(cfg, "cpu (test)"), "sweep": "exp"}
    tid = base["trial_id"]
    rows = [
        {**base, "epoch": 1, "is_final": False, "probe_top1_best": probe / 2},
        {**base, "epoch": 2, "is_final": True, "status": status, "probe_top1_best": probe, "z_std": 0.8},
    ]
    write_sweep(root, [rows])
    if save:
        SweepDir.at(root).weights(tid).local.mkdir(parents=True)
        torch.save(export_state_dict(trunk), SweepDir.at(root).weights(tid).local / "trunk_final.pt")
    return tid, trunk


@pytest.fixture
def resnet_results(tmp_path):
    root = tmp_path / "results" / "exp"
    a = _fake_trial(root, {"trunk": "resnet18"}, 3, seed=0, probe=0.70)
    b = _fake_trial(root, {"trunk": "resnet18"}, 3, seed=1, probe=0.75)
    return root, a, b


def test_exported_resnet18_loads_strictly_into_torchvision_with_same_features(resnet_results, tmp_path):
    root, _, (tid, trunk) = resnet_results
    out = write_trunk(root, best="probe_top1_best", to=tmp_path / "out" / "trunk.pt")  # the 0.75 seed
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load(out), strict=True)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), trunk(x))  # (2, 512): bit-identical features
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["trial_id"] == tid and meta["metrics"]["probe_top1_best"] == pytest.approx(0.75)
    assert meta["config"]["model"]["trunk"] == "resnet18" and meta["config"]["seed"] == 1
    assert meta["trunk"]["feature_dim"] == 512 and meta["trunk"]["in_channels"] == 3
    assert meta["provenance"]["device"] == "cpu (test)" and "torch" in meta["provenance"]["versions"]
    assert meta["epoch"] == 2 and meta["status"] == "ok"


def test_sidecar_recipe_runs(resnet_results, tmp_path, monkeypatch):
    """The load lines in the sidecar are real Python that rebuilds the trunk."""
    root, (tid, trunk), _ = resnet_results
    out = write_trunk(root, trial_id=tid[:6], to=tmp_path / "t.pt")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec("\n".join(json.loads(out.with_suffix(".json").read_text())["load"]), ns)
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(ns["model"].eval()(x), trunk(x))


def test_head_classes_load_into_unmodified_torchvision(resnet_results, tmp_path):
    root, (tid, _), _ = resnet_results
    out = write_trunk(root, trial_id=tid, to=tmp_path / "h.pt", head_classes=10)
    model = torchvision.models.resnet18(num_classes=10)
    model.load_state_dict(torch.load(out), strict=True)
    assert torch.count_nonzero(model.fc.weight) == 0


@pytest.mark.parametrize(
    "model, channels",
    [({"trunk": "resnet18", "stem": "cifar"}, 3), ({"trunk": "resnet18"}, 1), ({"trunk": "convnet", "width": 16}, 1)],
)
def test_other_stems_channels_and_convnet(tmp_path, monkeypatch, model, channels):
    root = tmp_path / "r"
    tid, trunk = _fake_trial(root, model, channels, seed=0, probe=0.5)
    out = write_trunk(root, trial_id=tid, to=tmp_path / "x.pt")
    x = torch.randn(2, channels, 32, 32)
    with torch.no_grad():
        assert torch.equal(read_trunk(out)(x), trunk(x))
        monkeypatch.chdir(tmp_path)
        ns: dict = {}
        exec("\n".join(json.loads(out.with_suffix(".json").read_text())["load"]), ns)
        assert torch.equal(ns["model"].eval()(x), trunk(x))


def test_selection_errors(resnet_results, tmp_path):
    root, (a, _), (b, _) = resnet_results
    with pytest.raises(UserError, match="exactly one"):
        select_trial(root)
    with pytest.raises(UserError, match="no trial with this id"):
        select_trial(root, trial_id="zzzz")
    common = next(i for i in range(len(a)) if a[i] != b[i])
    if common:
        with pytest.raises(UserError, match="ambiguous"):
            select_trial(root, trial_id=a[:common])
    with pytest.raises(UserError, match="ambiguous"):
        select_trial(root, trial_id="")
    assert select_trial(root, best="probe_top1_best", mode="min")["trial_id"] == a
    with pytest.raises(UserError, match="did you mean 'probe_top1_best'"):
        select_trial(root, best="probe_top1_bst")


def test_missing_weights_names_the_fix(tmp_path):
    root = tmp_path / "r"
    tid, _ = _fake_trial(root, {"trunk": "convnet"}, 1, seed=0, probe=0.5, save=False)
    with pytest.raises(UserError, match="save.weights=final"):
        write_trunk(root, trial_id=tid, to=tmp_path / "x.pt")


def test_cmd_export_prints_recipe(resnet_results, tmp_path, capsys):
    root, _, (tid, _) = resnet_results
    assert main(["export", str(root), "--best", "probe_top1_best", "--to", str(tmp_path / "c.pt")]) == 0
    text = capsys.readouterr().out
    assert tid in text and "torchvision.models.resnet18()" in text and "model.fc = torch.nn.Identity()" in text


def test_real_trial_weights_export(tmp_path):
    """A real 1-epoch digits trial through pretrain with the weights store the runner gives it."""
    import inspect

    from ablate.train.loop import pretrain

    if "artifacts" not in inspect.signature(pretrain).parameters:
        pytest.skip("pretrain does not save weights yet")
    from ablate.results.io import ArtifactStore
    from ablate.results.layout import SweepDir

    torch.set_num_threads(1)
    root = tmp_path / "results" / "real"
    cfg = load_trial_config(
        {
            "data": {"name": "digits"},
            "model": {"width": 16},
            "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 64, "device": "cpu"},
            "eval": {"probe_epochs": 2, "knn_k": 10},
        }
    )
    rows = []
    tid = SSL.columns(cfg, "cpu")["trial_id"]
    pretrain(cfg, rows.append, artifacts=ArtifactStore(SweepDir.at(root).weights(tid)))
    write_sweep(root, [[{**SSL.columns(cfg), **r, "sweep": "real"} for r in rows]])
    out = write_trunk(root, best="probe_top1_best", to=tmp_path / "real.pt")
    saved = torch.load(SweepDir.at(root).weights(tid).local / "trunk_final.pt")
    exported = torch.load(out)
    assert saved.keys() == exported.keys() and all(torch.equal(saved[k], exported[k]) for k in saved)
    trunk = read_trunk(out)
    ref = build_trunk(ModelConfig(width=16), 1)
    ref.load_state_dict(saved, strict=True)
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(trunk(x), ref.eval()(x))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["metrics"]["probe_top1_best"] == pytest.approx(rows[-1]["probe_top1_best"])


# ---------------------------------------------------------------- weights that are not the trial's
def _damage(root: Path, tid: str, how: str) -> None:
    """Replace a trial's trunk_final.pt the way a disk, a copy or a person can."""
    path = SweepDir.at(root).weights(tid).local / "trunk_final.pt"
    if how == "garbage":
        path.write_bytes(b"\x00not a torch file")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "foreign":  # another network's state_dict
        torch.save({"encoder.weight": torch.zeros(4, 4)}, path)
    elif how == "list":
        torch.save([torch.zeros(2)], path)
    elif how == "other width":  # a convnet of another width: every shape differs
        torch.save(export_state_dict(build_trunk(ModelConfig(width=8), 1)), path)


@pytest.mark.parametrize(
    "how, said",
    [
        ("garbage", "not a readable torch file"),
        ("truncated", "not a readable torch file"),
        ("foreign", "holds no convolution weights"),
        ("list", "holds a list, not a state_dict of a trunk"),
        ("other width", "the weights do not fit the trial's convnet (width 64) trunk (Error(s) in loading"),
    ],
)
def test_a_damaged_or_foreign_trunk_file_is_one_line_and_exit_2(tmp_path, capsys, how, said):
    root = tmp_path / "r"
    tid, _ = _fake_trial(root, {"trunk": "convnet", "width": 64}, 1, seed=0, probe=0.5)
    _damage(root, tid, how)
    with pytest.raises(UserError) as err:
        write_trunk(root, trial_id=tid, to=tmp_path / "x.pt")
    msg = str(err.value)
    assert said in msg and "trunk_final.pt" in msg and "\n" not in msg
    assert msg.endswith(
        f"damaged or replaced; write it anew by running the sweep again from the start: ablate run {root} --restart"
    )
    assert not (tmp_path / "x.pt").exists()
    assert main(["export", str(root), "--trial", tid, "--to", str(tmp_path / "x.pt")]) == 2
    out, errtext = capsys.readouterr()
    assert said in errtext and "Traceback" not in errtext and len(errtext.strip().splitlines()) == 1


def test_load_exported_refuses_a_changed_damaged_or_foreign_export(resnet_results, tmp_path):
    root, (tid, _), _ = resnet_results
    out = write_trunk(root, trial_id=tid, to=tmp_path / "t.pt")
    side = out.with_suffix(".json")
    good, meta = out.read_bytes(), side.read_text()
    fix = "export the trial again: ablate export RESULTS --trial ID --to t.pt"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in torch.load(out).items()}, out)  # fine-tuned
    with pytest.raises(UserError, match=r"t.pt: not the file its sidecar t.json describes \(its sha256 differs\)"):
        read_trunk(out)
    out.write_bytes(b"junk")
    side.write_text(meta.replace(json.loads(meta)["sha256"], __import__("hashlib").sha256(b"junk").hexdigest()))
    with pytest.raises(UserError, match=rf"t.pt: not a readable torch file \(.*\); {fix}$"):
        read_trunk(out)
    out.write_bytes(good)
    side.write_text("{not json")
    with pytest.raises(UserError, match=r"t.json: not the sidecar of an ablate-trunk/1 export"):
        read_trunk(out)
    side.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match=r"t.json: not the sidecar"):
        read_trunk(out)
    side.write_text(meta)
    assert read_trunk(out).feature_dim == 512  # the export as written still loads
    with pytest.raises(UserError, match=r"nothing.pt: no such file"):
        read_trunk(tmp_path / "nothing.pt")
