"""S3 settings a user gets wrong, against moto's S3 server on the loopback (no Ray): a bucket that does
not exist, an endpoint where nothing answers, a secret key in the URI, an endpoint variable that is
not a URL; and the endpoint taken from ``AWS_ENDPOINT_URL`` (``_S3`` first) into the URI, the
URI's own ``endpoint_override`` winning. The whole run on S3 is tests/system/test_s3.py."""

from __future__ import annotations

import socket

import pyarrow.fs as pafs
import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from helpers.tiny_sweeps import write_sweep

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'ablate[dev]')")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """HOST:PORT of a moto S3 server holding the bucket ``bkt``."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", str(empty)),
            ("AWS_SHARED_CREDENTIALS_FILE", str(empty)),
        ):
            mp.setenv(key, value)
        pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True).create_dir(
            "bkt"
        )
        yield f"{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def no_endpoint_variables(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ablate: error: "), err
    return err[0]


def test_a_bucket_that_does_not_exist_is_one_line_before_anything_runs(endpoint, tmp_path, capsys):
    sweep = write_sweep(tmp_path, "nob", "seeds: [0]\n")
    storage = f"s3://no-such-bucket/r?endpoint_override={endpoint}&scheme=http"
    for argv in (["run", str(sweep), "--storage", storage], ["check", str(sweep), "--set", f"storage={storage}"]):
        assert main(argv) == 2
        assert "bucket 'no-such-bucket' does not exist there; create it" in one_error(capsys)
    assert main(["status", f"s3://no-such-bucket/r/nob?endpoint_override={endpoint}&scheme=http"]) == 2
    assert "bucket 'no-such-bucket' does not exist" in one_error(capsys)


def test_an_endpoint_where_nothing_answers_is_one_line(endpoint, tmp_path, capsys):
    with socket.socket() as s:  # a port on the loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["status", f"s3://bkt/r/x?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"]) == 2
    line = one_error(capsys)
    assert (
        f"storage s3://bkt?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1: cannot reach it (" in line
    )
    assert "set AWS_ENDPOINT_URL=http://HOST:PORT" in line


def test_a_secret_key_in_the_uri_is_refused_and_never_printed(endpoint, tmp_path, capsys):
    sweep = write_sweep(tmp_path, "sec", "seeds: [0]\n")
    assert (
        main(["run", str(sweep), "--storage", f"s3://AKID:s3cr3t@bkt/r?endpoint_override={endpoint}&scheme=http"]) == 2
    )
    line = one_error(capsys)
    assert "s3cr3t" not in line and "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line
    assert "storage s3://bkt/r: a secret key in the URI" in line


def test_the_endpoint_variables_go_into_the_uri_and_the_query_wins(endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{endpoint}")  # the S3-specific one wins, as in the AWS SDKs
    folder = SweepDir.of("s", "s3://bkt/r")
    assert str(folder) == f"s3://bkt/r/s?endpoint_override={endpoint}&scheme=http"
    folder.sweep_file.write_text("x")  # reached through the endpoint of the variable
    assert Location.parse(f"s3://bkt/r/_s/sweep.yaml?endpoint_override={endpoint}&scheme=http").read_text() == "x"
    own = Location.parse(f"s3://bkt/r?endpoint_override={endpoint}&scheme=http")  # the URI's own endpoint
    assert str(own) == f"s3://bkt/r?endpoint_override={endpoint}&scheme=http"


@pytest.mark.parametrize("value", ["ftp://host:21", "http://"])
def test_an_endpoint_variable_that_is_not_a_url_is_refused(value, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", value)
    with pytest.raises(UserError, match=rf"AWS_ENDPOINT_URL='{value}': not an endpoint URL; give one such as"):
        Location.parse("s3://bkt/r")
