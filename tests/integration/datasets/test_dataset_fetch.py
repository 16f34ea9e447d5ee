"""``ablate data fetch`` against a real HTTP server on the loopback serving tiny archives in the official formats.

Each failure (refused connection, a server that stops half-way, a checksum mismatch, a full disk, a
root that cannot be written) is one line with the fix, exit code 2, and leaves no half-unpacked
dataset a loader would accept.
"""

import errno
import fcntl
import hashlib
import io
import os
import tarfile

import numpy as np
import pytest
from conftest import ARCHIVE_BYTES, closed_port, stl_files, swap_archive, targz

from ablate.cli import main
from ablate.config.trial import DataConfig
from ablate.datasets import download, fetch
from ablate.datasets.check import check_dataset
from ablate.datasets.fetch import fetch as fetch_dataset
from ablate.datasets.loaders import load_splits
from ablate.errors import DatasetError, UserError
from ablate.results import location

STL = "stl10_binary.tar.gz"


def leftovers(folder):
    """What a fetch left in the dataset folder besides its lock file (None: no folder at all)."""
    return sorted(p.name for p in folder.iterdir() if p.name != fetch.LOCK) if folder.exists() else None


def test_fetch_stl10_unpacks_what_the_loader_reads_and_deletes_the_archive(archives, server, tmp_path):
    log = io.StringIO()
    folder = fetch_dataset("stl10", tmp_path, stream=log)
    assert folder == tmp_path / "stl10" and leftovers(folder) == ["stl10_binary"]
    s = load_splits(DataConfig(name="stl10", root=str(folder)), "cpu")
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (5, 3, 2)
    raw = np.frombuffer(stl_files()["train_X.bin"], np.uint8).reshape(3, 3, 96, 96)
    assert np.array_equal(s.probe_train.images.numpy(), raw.transpose(0, 1, 3, 2))  # stored column-major
    assert s.probe_train.labels.tolist() == [0, 9, 3]
    text = log.getvalue()
    assert f"{STL}: 194" in text and "(100%)" in text and "checksum ok" in text and "deleted the archive" in text
    assert server.requests == [(STL, None)]


def test_cli_fetch_cifar10_then_prints_the_check_and_a_second_fetch_downloads_nothing(
    archives, server, tmp_path, capsys
):
    assert main(["data", "fetch", "cifar10", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"CIFAR-10 in {tmp_path}/cifar10/cifar-10-batches-py\n")
    assert out.endswith(f"ok: use it with data.name: cifar10, data.root: {tmp_path}/cifar10\n")
    s = load_splits(DataConfig(name="cifar10", root=str(tmp_path / "cifar10")), "cpu")
    assert (len(s.pretrain), len(s.probe_test)) == (10, 3) and s.probe_test.labels.tolist() == [0, 1, 2]
    assert main(["data", "fetch", "cifar10", "--root", str(tmp_path)]) == 0
    assert (
        f"CIFAR-10 is already in {tmp_path}/cifar10 and passes the check: nothing to fetch" in capsys.readouterr().err
    )
    assert len(server.requests) == 1


def test_root_defaults_to_ablate_data(archives, tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "shared"))
    assert fetch_dataset("cifar10", stream=io.StringIO()) == tmp_path / "shared" / "cifar10"


def test_a_download_that_stops_half_way_keeps_its_part_and_the_next_run_resumes(archives, server, tmp_path):
    server.cut_after[STL] = 1000
    with pytest.raises(DatasetError) as e:
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    part = tmp_path / "stl10" / f"{STL}.part"
    assert str(e.value) == (
        f"download of {server.url}/{STL} stopped at 1.0 kB of 194.2 kB (the connection closed early); {part} is kept: "
        "run the same command again to resume"
    )
    assert leftovers(tmp_path / "stl10") == [f"{STL}.part"] and part.stat().st_size == 1000
    log = io.StringIO()
    fetch_dataset("stl10", tmp_path, stream=log)
    assert server.requests[-1] == (STL, "bytes=1000-") and "resuming at 1.0 kB of 194.2 kB" in log.getvalue()
    assert leftovers(tmp_path / "stl10") == ["stl10_binary"]
    assert len(load_splits(DataConfig(name="stl10", root=str(tmp_path / "stl10")), "cpu").pretrain) == 5


def test_a_server_that_ignores_range_is_read_again_from_zero(archives, server, tmp_path):
    server.cut_after[STL] = 1000
    with pytest.raises(DatasetError, match="stopped at"):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    server.honour_range = False
    log = io.StringIO()
    fetch_dataset("stl10", tmp_path, stream=log)
    assert "the server does not resume downloads: starting again from zero (1.0 kB discarded)" in log.getvalue()
    assert leftovers(tmp_path / "stl10") == ["stl10_binary"]


def test_a_whole_part_the_server_has_nothing_after_is_taken_and_verified(archives, server, tmp_path):
    (tmp_path / "stl10").mkdir()
    (tmp_path / "stl10" / f"{STL}.part").write_bytes(ARCHIVE_BYTES["stl10"])
    log = io.StringIO()
    fetch_dataset("stl10", tmp_path, stream=log)
    assert "taking stl10_binary.tar.gz.part as complete" in log.getvalue() and "checksum ok" in log.getvalue()
    assert leftovers(tmp_path / "stl10") == ["stl10_binary"]


def test_a_checksum_mismatch_deletes_the_archive_and_unpacks_nothing(archives, server, tmp_path, capsys):
    swap_archive("stl10", md5="0" * 32)
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"ablate: error: {STL} from {server.url}/{STL} does not match its checksum (md5 ")
    assert err.endswith(
        f", expected {'0' * 32}): the download is corrupt or the server sent another file; deleted it: run the same command again (or use another --mirror)"
    )
    assert leftovers(tmp_path / "stl10") is None  # not even an empty folder


def test_connection_refused_is_one_line_with_the_fix(archives, tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/data/"
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path), "--mirror", url]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"ablate: error: cannot download {url}{STL}: Connection refused; check the network (and https_proxy), or fetch "
        "from a mirror with --mirror URL (or ABLATE_DATA_MIRROR)"
    )
    assert leftovers(tmp_path / "stl10") is None  # not even an empty folder


def test_a_mirror_from_the_flag_or_the_environment_serves_the_archive_by_name(archives, server, tmp_path, monkeypatch):
    server.files[f"mirror/{STL}"] = server.files.pop(STL)
    with pytest.raises(DatasetError, match=r"answered 404 Not Found; check the URL \(a mirror must serve"):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    fetch_dataset("stl10", tmp_path / "a", mirror=f"{server.url}/mirror/", stream=io.StringIO())
    monkeypatch.setenv("ABLATE_DATA_MIRROR", f"{server.url}/mirror")
    fetch_dataset("stl10", tmp_path / "b", stream=io.StringIO())
    assert server.requests[-2:] == [(f"mirror/{STL}", None)] * 2
    with pytest.raises(UserError, match="--mirror 'ftp.example': not a URL"):
        fetch_dataset("stl10", tmp_path, mirror="ftp.example", stream=io.StringIO())


def test_a_file_url_mirror_on_a_shared_filesystem(archives, tmp_path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / STL).write_bytes(ARCHIVE_BYTES["stl10"])
    (tmp_path / "data" / "stl10").mkdir(parents=True)
    (tmp_path / "data" / "stl10" / f"{STL}.part").write_bytes(b"stale")  # file:// cannot resume: read from zero
    log = io.StringIO()
    fetch_dataset("stl10", tmp_path / "data", mirror=f"file://{tmp_path}/mirror", stream=log)
    assert "starting again from zero (5 B discarded)" in log.getvalue()
    assert leftovers(tmp_path / "data" / "stl10") == ["stl10_binary"]


class FullDisk(io.BufferedWriter):
    def write(self, b):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_downloading_keeps_the_part_and_says_so(archives, server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_open_part", lambda path, mode: FullDisk(io.FileIO(path, mode.replace("b", ""))))
    with pytest.raises(DatasetError) as e:
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    part = tmp_path / "stl10" / f"{STL}.part"
    assert str(e.value) == (
        f"disk full writing {part} (0 B written); free space on that disk (or use --root DIR on another) and run the "
        "same command again: the download resumes from the kept part"
    )
    assert leftovers(tmp_path / "stl10") == [f"{STL}.part"]


def test_a_full_disk_while_unpacking_leaves_nothing_half_unpacked_and_keeps_the_archive(
    archives, server, tmp_path, monkeypatch
):
    copies = []
    real = tarfile.copyfileobj

    def fill_up(*args, **kwargs):  # the first file unpacks, the second finds the disk full
        copies.append(1)
        if len(copies) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(tarfile, "copyfileobj", fill_up)
    with pytest.raises(
        DatasetError,
        match=r"^disk full unpacking .*stl10_binary\.tar\.gz .*nothing was put in place and the verified archive is kept",
    ):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    assert leftovers(tmp_path / "stl10") == [STL]
    with pytest.raises(DatasetError, match="no STL-10"):  # nothing a loader or a check would accept
        check_dataset("stl10", tmp_path)
    monkeypatch.setattr(tarfile, "copyfileobj", real)
    log = io.StringIO()
    fetch_dataset("stl10", tmp_path, stream=log)
    assert "using the archive already in" in log.getvalue() and len(server.requests) == 1  # not downloaded again
    assert leftovers(tmp_path / "stl10") == ["stl10_binary"]


def test_too_little_free_space_is_refused_before_downloading(archives, server, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(
        DatasetError,
        match=r"stl10 has 1.0 kB free; STL-10 needs 1.2 MB \(the 194.2 kB archive, then 1.0 MB unpacked\); free space there or use --root DIR on a larger disk",
    ):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    assert server.requests == []


def test_a_root_that_is_a_file_or_cannot_be_created_is_one_line(archives, tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    for root in (tmp_path / "afile", tmp_path / "afile" / "below"):
        assert main(["data", "fetch", "stl10", "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"ablate: error: data fetch: cannot create {root}/stl10: {tmp_path}/afile is a file, not a folder; give "
            "--root (or ABLATE_DATA) a folder you can write (it is created if missing)\n"
        )

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fetch.Path, "mkdir", refuse)
    with pytest.raises(DatasetError, match=r"cannot create .*/ro/stl10: Permission denied; give --root"):
        fetch_dataset("stl10", tmp_path / "ro", stream=io.StringIO())


def test_a_folder_without_write_permission_is_refused(archives, tmp_path, monkeypatch):
    (tmp_path / "stl10").mkdir()

    def refuse(*args, **kwargs):  # as on a chmod 555 folder for a non-root user, or a read-only mount for anyone
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(location.tempfile, "TemporaryFile", refuse)
    with pytest.raises(DatasetError, match=rf"^data fetch: {tmp_path}/stl10 is not writable; give --root"):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())


def test_a_second_fetch_of_the_same_folder_at_the_same_time_refuses(archives, server, tmp_path):
    (tmp_path / "stl10").mkdir()
    fd = os.open(tmp_path / "stl10" / fetch.LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a fetch running in another process holds it
        os.write(fd, b"pid 1 on node7")
        with pytest.raises(DatasetError) as e:
            fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    finally:
        os.close(fd)
    assert str(e.value) == (
        f"data fetch stl10: another `ablate data fetch` is writing {tmp_path}/stl10 (pid 1 on node7); wait for it to "
        "finish, then run again"
    )
    assert server.requests == []
    fetch_dataset("stl10", tmp_path, stream=io.StringIO())  # once it is gone
    assert leftovers(tmp_path / "stl10") == ["stl10_binary"]


def test_a_broken_dataset_in_place_is_never_overwritten(archives, server, tmp_path):
    (tmp_path / "stl10" / "stl10_binary").mkdir(parents=True)
    (tmp_path / "stl10" / "stl10_binary" / "train_X.bin").write_bytes(b"mine")
    with pytest.raises(
        DatasetError,
        match=r"stl10_binary is there but is not a complete STL-10 \(STL-10 not found in .*: missing train_y.bin.*\); move it aside",
    ):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    assert (tmp_path / "stl10" / "stl10_binary" / "train_X.bin").read_bytes() == b"mine" and server.requests == []


def test_an_archive_with_files_outside_its_folder_is_refused(archives, server, tmp_path):
    bad = targz("", {"stl10_binary/train_y.bin": b"1", "elsewhere/evil.bin": b"1"})
    server.files[STL] = bad
    swap_archive("stl10", md5=hashlib.md5(bad).hexdigest(), size=len(bad))
    with pytest.raises(
        DatasetError, match=r"cannot unpack .*: it holds 'elsewhere/evil.bin', outside its one folder stl10_binary/"
    ):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    assert not (tmp_path / "elsewhere").exists() and leftovers(tmp_path / "stl10") == [STL]


def test_imagenet_explains_how_to_prepare_it_and_exits_2(tmp_path, capsys):
    assert main(["data", "fetch", "imagenet", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "need an account at\nhttps://image-net.org" in err and f"{tmp_path}/imagenet/val/n01440764/" in err
    assert "ImageNet as I; I('" in err and "valprep.sh" in err
    assert err.splitlines()[-1] == (
        f"ablate: error: data fetch imagenet: there is no archive to download for the image folder (imagefolder); "
        f"prepare {tmp_path}/imagenet as explained above, then run: ablate data check imagefolder --root {tmp_path}"
    )
    assert not (tmp_path / "imagenet").exists()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_progress_bar(archives, tmp_path):
    out = Terminal()
    fetch_dataset("cifar10", tmp_path, stream=out)
    assert "cifar-10-python.tar.gz: 100%|" in out.getvalue()
