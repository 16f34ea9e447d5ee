"""``ablate data check`` and the loaders' hints: where a dataset is looked for, and how to get it when it is not."""

import pytest

from ablate.cli import main
from ablate.config.trial import DataConfig
from ablate.datasets import dataset
from ablate.datasets.check import check_dataset
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError, UserError
from helpers.dataset_files import write_cifar


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(dataset.ROOT_ENV, raising=False)


def test_cli_data_check_prints_the_report_or_one_error_line(tmp_path, capsys):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"CIFAR-10 in {tmp_path}/cifar10/cifar-10-batches-py\n")
    assert main(["data", "check", "stl10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: data check stl10: no STL-10 in") and err.count("\n") == 1
    assert main(["data", "check", "stl10", "--mirror", "http://x/"]) == 2
    assert "--mirror is for data fetch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, root, command",
    [
        ("stl10", "stl10", "ablate data fetch stl10 --root {tmp}`"),  # data.root named after the dataset
        ("cifar10", "mine", "ablate data fetch cifar10 --root DIR` (it writes DIR/cifar10: point data.root there)"),
    ],
)
def test_the_loaders_point_to_data_fetch_and_check(tmp_path, name, root, command):
    (tmp_path / root).mkdir()
    with pytest.raises(DatasetError) as e:
        load_splits(DataConfig(name=name, root=str(tmp_path / root)), "cpu")
    msg = str(e.value)
    assert command.format(tmp=tmp_path) in msg and f"ablate data check {name}" in msg and "never" not in msg
    with pytest.raises(DatasetError, match=f"is not a directory .*ablate data fetch {name}"):
        load_splits(DataConfig(name=name, root=str(tmp_path / "absent" / name)), "cpu")


@pytest.mark.parametrize("name", ["digits", "fake"])
def test_a_dataset_without_files_has_nothing_to_check_or_fetch(name, tmp_path, capsys):
    with pytest.raises(
        UserError, match=rf"^data check {name}: the .* needs no files \(nothing: .*\): nothing to check$"
    ):
        check_dataset(name)
    assert main(["data", "fetch", name, "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith(": nothing to fetch\n") and list(tmp_path.iterdir()) == []


def test_an_unknown_dataset_lists_the_names_and_aliases(capsys):
    assert main(["data", "check", "stl"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ablate: error: data check 'stl': unknown dataset; choose one of digits, cifar10, stl10, imagefolder, "
        "imagenet, fake; did you mean 'stl10'?\n"
    )
    assert main(["data", "fetch"]) == 2
    assert "data fetch: name the dataset (`ablate data list` lists them)" in capsys.readouterr().err
