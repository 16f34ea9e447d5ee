"""``ablate data fetch`` against what it cannot trust: a server's answers, links planted in the data root,
a mirror's FIFO, a server that never stops, credentials in a mirror URL, and Ctrl-C.

Each is one escaped line and exit code 2 (130 for Ctrl-C), nothing outside the data root is written,
and nothing already there is lost.
"""

import base64
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ARCHIVE_BYTES, swap_archive

from ablate.cli import main
from ablate.datasets import fetch, progress
from ablate.datasets.fetch import fetch as fetch_dataset
from ablate.errors import DatasetError

STL, CIFAR = "stl10_binary.tar.gz", "cifar-10-python.tar.gz"
ROOT = Path(__file__).resolve().parents[3]


def one_error_line(capsys) -> str:
    """stderr's error line, checked to be the only line that is not a note, with no control characters."""
    err = capsys.readouterr().err
    assert not any(c in err for c in "\x1b\r\x07\x08"), repr(err)
    last = err.splitlines()[-1]
    assert last.startswith("ablate: error: ") and err.count("ablate: error") == 1
    return last


def test_a_reason_phrase_cannot_rewrite_the_terminal(archives, server, tmp_path, capsys):
    forged = "Not Found\r\x1b[2K\x1b[1A\x1b[32mok: checksum verified\x1b[0m\x07"
    server.status[STL] = (404, forged)
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert "answered 404 Not Found\\r\\x1b[2K\\x1b[1A\\x1b[32mok: checksum verified\\x1b[0m\\x07; check the URL" in line


def test_a_mirror_password_is_sent_to_its_host_and_shown_nowhere(archives, server, tmp_path, capsys, monkeypatch):
    mirror = server.url.replace("http://", "http://ann:s3cr%3At@") + "/"
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path / "a"), "--mirror", mirror]) == 0
    assert server.headers[-1]["Authorization"] == "Basic " + base64.b64encode(b"ann:s3cr:t").decode()
    out, err = capsys.readouterr()
    assert "s3cr" not in out + err and f"downloading {server.url.replace('//', '//***@')}/{STL}" in err
    server.cut_after[STL] = 1000  # a failure names the URL too
    monkeypatch.setenv("ABLATE_DATA_MIRROR", mirror)
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path / "b")]) == 2
    line = one_error_line(capsys)
    assert "s3cr" not in line and "download of http://***@127.0.0.1:" in line
    assert main(["data", "fetch", "stl10", "--mirror", "ann:s3cret@mirror.local/x"]) == 2
    assert "s3cret" not in capsys.readouterr().err


def test_credentials_do_not_follow_a_redirect_to_another_host(archives, server, other_server, tmp_path):
    other_server.files[STL] = server.files[STL]
    server.redirect[STL] = f"{other_server.url}/{STL}"
    mirror = server.url.replace("http://", "http://ann:s3cret@")
    fetch_dataset("stl10", tmp_path, mirror=mirror, stream=io.StringIO())
    assert "Authorization" in server.headers[-1] and "Authorization" not in other_server.headers[-1]
    assert (tmp_path / "stl10" / "stl10_binary").is_dir()


@pytest.mark.parametrize("planted", [".part", ".fetch.lock"])
@pytest.mark.parametrize("link", ["symlink", "dangling symlink", "hard link"])
def test_a_link_planted_in_the_data_root_is_refused_not_followed(archives, server, tmp_path, capsys, planted, link):
    outside = tmp_path / "outside" / "victim"
    outside.parent.mkdir()
    if link != "dangling symlink":
        outside.write_bytes(b"precious")
    folder = tmp_path / "root" / "stl10"
    folder.mkdir(parents=True)
    at = folder / (STL + ".part" if planted == ".part" else fetch.LOCK)
    (os.link if link == "hard link" else os.symlink)(outside, at)
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path / "root")]) == 2
    assert f"{at} is a {link.split()[-2] if link == 'hard link' else 'symbolic'} link" in one_error_line(capsys)
    if link == "dangling symlink":
        assert not outside.exists()  # not created through the link
    else:
        assert outside.read_bytes() == b"precious"
    assert server.requests == []


def test_a_part_that_is_a_directory_is_one_line(archives, server, tmp_path, capsys):
    (tmp_path / "stl10" / f"{STL}.part").mkdir(parents=True)
    (tmp_path / "stl10" / f"{STL}.part" / "mine").write_text("kept")
    assert main(["data", "fetch", "stl10", "--root", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert line.endswith(
        f"{STL}.part is a directory, not a file ablate wrote; move it aside (or delete it) and run the same command again"
    )
    assert (tmp_path / "stl10" / f"{STL}.part" / "mine").read_text() == "kept"


def unless_blocked_on(fifo, fn):
    """``fn()``'s outcome (its value, or the exception it raised); a failed test, not a hung one, when it
    still waits on ``fifo`` after 30 s."""
    done = {}

    def run():
        try:
            done["value"] = fn()
        except Exception as e:
            done["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # a writer unblocks the reader, so that the test process can end
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail(f"blocked on the FIFO {fifo}")
    return done.get("value", done.get("error"))


def test_a_file_mirror_whose_archive_is_a_fifo_does_not_hang(archives, tmp_path, capsys):
    fifo = tmp_path / "mirror" / STL
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    argv = ["data", "fetch", "stl10", "--root", str(tmp_path / "d"), "--mirror", f"file://{tmp_path}/mirror"]
    assert unless_blocked_on(fifo, lambda: main(argv)) == 2
    line = one_error_line(capsys)
    assert f"{STL} is a FIFO, not a regular file; a file:// mirror must serve the archive as a regular file" in line


def test_an_archive_in_the_root_that_is_a_fifo_does_not_hang(archives, tmp_path):
    fifo = tmp_path / "stl10" / STL
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    error = unless_blocked_on(fifo, lambda: fetch_dataset("stl10", tmp_path, stream=io.StringIO()))
    assert isinstance(error, DatasetError) and str(error).startswith(f"{fifo} is a FIFO, not a regular file; move it")


def test_a_server_that_sends_more_than_the_archive_cannot_fill_the_disk(archives, server, tmp_path):
    server.files[STL] = ARCHIVE_BYTES["stl10"] * 3
    server.no_length.add(STL)  # no length to stop at: it sends until it closes
    with pytest.raises(DatasetError, match=r"the server sent more than the 194.2 kB archive into .*: not the archive"):
        fetch_dataset("stl10", tmp_path, stream=io.StringIO())
    assert (tmp_path / "stl10" / f"{STL}.part").stat().st_size == 0
    server.files[STL] = ARCHIVE_BYTES["stl10"] * 2  # one that says so up front is refused before a byte is written
    server.no_length.clear()
    with pytest.raises(DatasetError, match=r"is 388.5 kB, larger than the 194.2 kB archive: not the archive"):
        fetch_dataset("stl10", tmp_path / "b", stream=io.StringIO())


class InterruptAfter:
    """A progress bar that is Ctrl-C'd once ``n`` bytes have been written."""

    def __init__(self, n):
        self.n, self.done = n, 0

    def __call__(self, stream, label):
        return lambda total, start: self

    def update(self, k):
        self.done += k
        if self.done >= self.n:
            raise KeyboardInterrupt

    def close(self):
        pass


def test_ctrl_c_mid_download_exits_130_and_the_next_run_resumes_and_verifies(
    archives, server, tmp_path, capsys, monkeypatch
):
    server.hold_after[CIFAR] = 5000  # the first answer stops half-way: its bytes arrive, then Ctrl-C
    monkeypatch.setattr(fetch, "progress_bar", InterruptAfter(1))
    assert main(["data", "fetch", "cifar10", "--root", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    part = tmp_path / "cifar10" / f"{CIFAR}.part"
    assert f"interrupted: {part} is kept" in err and err.endswith("ablate: interrupted\n")
    kept = part.stat().st_size
    assert kept == 5000
    assert main(["data", "check", "cifar10", "--root", str(tmp_path)]) == 2  # no success on a half-fetched state
    assert "no CIFAR-10 in" in capsys.readouterr().err
    monkeypatch.setattr(fetch, "progress_bar", progress.progress_bar)
    assert main(["data", "fetch", "cifar10", "--root", str(tmp_path)]) == 0
    assert server.requests[-1] == (CIFAR, f"bytes={kept}-") and "checksum ok" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == [fetch.LOCK, "cifar-10-batches-py"]


def test_a_real_sigint_mid_download_exits_130_and_keeps_the_part(archives, server, tmp_path):
    server.hold_after[CIFAR] = 5000
    swap_archive("cifar10", size=len(ARCHIVE_BYTES["cifar10"]) * 10, unpacked=1000)  # the child uses the official md5
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ABLATE_DATA_MIRROR": server.url}
    child = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "data", "fetch", "cifar10", "--root", str(tmp_path)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    part = tmp_path / "cifar10" / f"{CIFAR}.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size == 5000) and time.monotonic() < deadline:  # all that came
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.endswith("ablate: interrupted\n") and part.stat().st_size == 5000
