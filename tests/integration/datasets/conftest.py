"""A real HTTP server on the loopback, and tiny archives in the official formats, for ``ablate data fetch``.

The server serves bytes the test wrote, honours ``Range: bytes=N-`` (206) unless told not to, and
can stop a response half-way (it closes the connection after N bytes of the body). The registry of
archives points at it, with each tiny archive's own md5. Nothing reaches the internet.
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
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ablate.datasets import registry

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


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv: Server = self.server.state
        name = self.path.lstrip("/")
        srv.requests.append((name, self.headers.get("Range")))
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
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = srv.cut_after.pop(name, None)
        self.wfile.write(body[start:] if cut is None else body[start : start + cut])
        if cut is not None:  # stop half-way: the client sees the connection close before Content-Length
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def archives(server, monkeypatch):
    """The registry pointed at the loopback server, serving the tiny archives with their own md5."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(registry.ROOT_ENV, raising=False)
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    for name, data in ARCHIVE_BYTES.items():
        official = registry.ARCHIVES[name]
        server.files[official.filename] = data
        tiny = replace(
            official,
            url=f"{server.url}/{official.filename}",
            md5=hashlib.md5(data).hexdigest(),
            size=len(data),
            unpacked=1_000_000,
        )
        monkeypatch.setitem(registry.ARCHIVES, name, tiny)
    return registry.ARCHIVES
