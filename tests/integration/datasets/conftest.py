"""A real HTTP server on the loopback, and tiny archives in the official formats, for ``ablate data fetch``.

The server serves bytes the test wrote, honours ``Range: bytes=N-`` (206) unless told not to, and
can stop a response half-way (it closes the connection after N bytes of the body), or answer with
a status line of the test's choosing. The dataset records point at it, with each tiny archive's own
md5 and size. Nothing reaches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import socket
import tarfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ablate.datasets import dataset, download
from ablate.datasets.records import DATASETS

STL_SPLITS = {"train": 3, "test": 2, "unlabeled": 2}


def stl_files() -> dict[str, bytes]:
    """STL-10's binary files: uint8 images stored channel by channel, column-major; labels 1..10."""
    rng = np.random.default_rng(0)
    files = {}
    for split, n in STL_SPLITS.items():
        files[f"{split}_X.bin"] = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8).tobytes()
    files["train_y.bin"] = bytes([1, 10, 4])
    files["test_y.bin"] = bytes([7, 1])
    files["class_names.txt"] = b"\n".join(b"c%d" % i for i in range(10))
    return files


def cifar_files() -> dict[str, bytes]:
    """CIFAR-10's python version: pickled dicts with 'data' (n, 3072) uint8 and 'labels'."""
    rng = np.random.default_rng(1)
    files = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        labels = [0, 1, 2] if name == "test_batch" else [k, k + 1]
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        files[name] = pickle.dumps({"batch_label": name, "data": data, "labels": labels})
    files["batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    return files


def targz(folder: str, files: dict[str, bytes]) -> bytes:
    """A .tar.gz of ``files`` under ``folder/``, the same bytes every time (gzip mtime 0)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        if folder:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}" if folder else name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE_BYTES = {"stl10": targz("stl10_binary", stl_files()), "cifar10": targz("cifar-10-batches-py", cifar_files())}


@dataclass
class Server:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # file -> close after N body bytes (once)
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    headers: list[dict[str, str]] = field(default_factory=list)  # every request's headers
    status: dict[str, tuple[int, str]] = field(default_factory=dict)  # file -> (code, reason phrase) to answer
    no_length: set[str] = field(default_factory=set)  # files sent without Content-Length, until the connection closes
    redirect: dict[str, str] = field(default_factory=dict)  # file -> URL it is moved to (302)
    hold_after: dict[str, int] = field(default_factory=dict)  # file -> stall after N body bytes until released (once)
    release: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv: Server = self.server.state
        name = self.path.lstrip("/")
        srv.requests.append((name, self.headers.get("Range")))
        srv.headers.append(dict(self.headers))
        if name in srv.redirect:
            self.send_response(302)
            self.send_header("Location", srv.redirect[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name in srv.status:
            code, reason = srv.status[name]
            self.wfile.write(f"HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n\r\n".encode("latin-1"))
            self.close_connection = True
            return
        body = srv.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start, ranged = 0, re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if ranged and srv.honour_range:
            start = int(ranged.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if name in srv.no_length:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        hold = srv.hold_after.pop(name, None)
        if hold is not None:  # a server that goes silent half-way (the client is interrupted meanwhile)
            self.wfile.write(body[start : start + hold])
            self.wfile.flush()
            srv.release.wait(60)
            return
        cut = srv.cut_after.pop(name, None)
        self.wfile.write(body[start:] if cut is None else body[start : start + cut])
        if cut is not None:  # stop half-way: the client sees the connection close before Content-Length
            self.close_connection = True

    def log_message(self, *args):
        pass


@contextmanager
def serving():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.state.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server():
    with serving() as state:
        yield state


@pytest.fixture
def other_server():
    """A second server: another origin, as a redirect to another host reaches."""
    with serving() as state:
        yield state


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def swap_archive(name: str, **changes) -> None:
    """Give dataset ``name``'s record an archive with ``changes`` (its own origin may replace its record)."""
    record = DATASETS[name]
    DATASETS.register(name, replace(record, archive=replace(record.archive, **changes)))


@pytest.fixture
def archives(server, monkeypatch):
    """The records pointed at the loopback server, serving the tiny archives with their own md5; name ->
    archive. The official records come back afterwards."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(dataset.ROOT_ENV, raising=False)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    official = {name: DATASETS[name] for name in ARCHIVE_BYTES}
    for name, data in ARCHIVE_BYTES.items():
        filename = official[name].archive.filename
        server.files[filename] = data
        swap_archive(
            name, url=f"{server.url}/{filename}", md5=hashlib.md5(data).hexdigest(), size=len(data), unpacked=1_000_000
        )
    yield {name: DATASETS[name].archive for name in ARCHIVE_BYTES}
    for name, record in official.items():
        DATASETS.register(name, record)
