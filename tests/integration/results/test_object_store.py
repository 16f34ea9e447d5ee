"""S3 settings a user gets wrong, against moto's S3 server on the loopback (no Ray): a bucket that does
not exist, an endpoint where nothing answers, a secret key in the URI, an endpoint variable that is
not a URL, a URI that names no folder or another one than it seems to, credentials the store
refuses; the endpoint taken from ``AWS_ENDPOINT_URL`` (``_S3`` first) into the URI, the URI's own
``endpoint_override`` winning; a prefix of every character a URI holds as it is, found again by
every reader. The whole run on S3 is tests/system/test_s3.py."""

from __future__ import annotations

import socket

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import Expect, ResultsStore, read_rows
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from ablate.results.remote import StoreError
from helpers.s3 import offline_aws
from helpers.tiny_sweeps import write_sweep

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'ablate[dev]')")
EXPECT = Expect("s", SSL.schema)


def row(seed: int) -> dict:
    cfg = load_trial_config({"seed": seed})
    return {**SSL.columns(cfg, "cpu"), "epoch": 1, "is_final": True, "status": "ok"}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """HOST:PORT of a moto S3 server holding the bucket ``bkt``."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        offline_aws(mp, empty)
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


@pytest.mark.parametrize("userinfo", ["AKID:s3cr3t@", "s3cr3t@", "AKID:s3/cr3t+x@", "AKID:s3#cr3t@"])
def test_a_secret_key_in_the_uri_is_refused_and_never_printed(endpoint, tmp_path, capsys, userinfo):
    sweep = write_sweep(tmp_path, "sec", "seeds: [0]\n")
    storage = f"s3://{userinfo}bkt/r?endpoint_override={endpoint}&scheme=http"
    assert main(["run", str(sweep), "--storage", storage]) == 2
    line = one_error(capsys)
    assert "cr3t" not in line and "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line
    assert "storage s3://bkt/r: a key or a secret key in the URI" in line


@pytest.mark.parametrize(
    "storage",
    [
        "s3://bkt/r?secret_key=s3cr3t",
        "s3://AKID:s3cr3t@bkt/r#x",
        "s3://AKID:s3cr3t@bkt:99999/r",
        "s3://AKID:s3cr3t@[::1/r",
    ],
)
def test_a_secret_anywhere_in_a_refused_uri_is_never_printed(storage, tmp_path, capsys):
    sweep = write_sweep(tmp_path, "sec", "seeds: [0]\n")
    assert main(["run", str(sweep), "--storage", storage]) == 2
    line = one_error(capsys)
    assert "cr3t" not in line, line


def test_the_endpoint_variables_go_into_the_uri_and_the_query_wins(endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{endpoint}")  # the S3-specific one wins, as in the AWS SDKs
    folder = SweepDir.of("s", "s3://bkt/r")
    assert str(folder) == f"s3://bkt/r/s?endpoint_override={endpoint}&scheme=http"
    folder.sweep_file.write_text("x")  # reached through the endpoint of the variable
    assert Location.parse(f"s3://bkt/r/_s/sweep.yaml?endpoint_override={endpoint}&scheme=http").read_text() == "x"
    own = Location.parse(f"s3://bkt/r?endpoint_override={endpoint}&scheme=http")  # the URI's own endpoint
    assert str(own) == f"s3://bkt/r?endpoint_override={endpoint}&scheme=http"


@pytest.mark.parametrize("value", ["ftp://host:21", "http://", "http://localhost:9000/minio"])
def test_an_endpoint_variable_that_is_not_a_url_is_refused(value, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", value)
    with pytest.raises(UserError, match=rf"AWS_ENDPOINT_URL='{value}': not an endpoint URL; give one such as"):
        Location.parse("s3://bkt/r")


# ---------------------------------------------------------------- URIs that name no folder, or another one
@pytest.fixture
def no_compute(monkeypatch):
    """``ablate run`` may not get as far as starting Ray: every refusal here comes before compute."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started: the mistake was not caught before compute")

    monkeypatch.setattr("ablate.runner.driver.init_ray", refuse)


BAD_URIS = {  # storage (ENDPOINT: the server's query) -> what the one line must say
    "no bucket": ("s3://", "no bucket; give s3://BUCKET/PREFIX"),
    "no bucket, options only": ("s3://?ENDPOINT", "no bucket; give s3://BUCKET/PREFIX"),
    "empty folder name": ("s3://bkt//x?ENDPOINT", "an empty folder name (//) in the path"),
    "dot-dot": ("s3://bkt/a/../b?ENDPOINT", "a .. folder in the path"),
    "percent escape": (
        "s3://bkt/odd%20dir/a+b=c,d;e@f?ENDPOINT",
        "%20 in the path is ' ' to pyarrow but three characters to other readers",
    ),
    "raw space": ("s3://bkt/odd dir/x?ENDPOINT", "the character ' ' cannot be in a URI"),
    "wildcard": ("s3://bkt/a*b?ENDPOINT", "* in the path is a wildcard"),
    "fragment": ("s3://bkt/x#y?ENDPOINT", "a # starts a URI fragment"),
    "port after the bucket": ("s3://bkt:9000/x?ENDPOINT", "a port after the bucket 'bkt'"),
    "unknown option": ("s3://bkt/x?ENDPOINT&connect_timeout=5", "connect_timeout is not an option of the URI"),
    "option twice": ("s3://bkt/x?ENDPOINT&scheme=https", "the option scheme is given twice"),
    "empty option": ("s3://bkt/x?endpoint_override=&scheme=http", "the option endpoint_override has no value"),
    "bad scheme option": ("s3://bkt/x?endpoint_override=h:1&scheme=ftp", "the scheme option is http or https"),
}
FIXES = {  # each line names the fix too
    "no bucket": "give s3://BUCKET/PREFIX",
    "empty folder name": "write the prefix without it",
    "percent escape": "e.g. s3://bkt/odd-dir/a+b=c,d;e@f",
    "option twice": "keep one",
    "unknown option": "s3:// URIs take endpoint_override, scheme, region",
}


@pytest.mark.parametrize("case", BAD_URIS, ids=list(BAD_URIS))
def test_a_uri_that_names_no_folder_or_another_one_is_one_line_before_compute(
    case, endpoint, tmp_path, capsys, no_compute
):
    storage, said = BAD_URIS[case]
    storage = storage.replace("ENDPOINT", f"endpoint_override={endpoint}&scheme=http")
    sweep = write_sweep(tmp_path, "odd", "seeds: [0]\n")
    assert main(["run", str(sweep), "--storage", storage]) == 2
    line = one_error(capsys)
    assert said in line and FIXES.get(case, "") in line, line
    bucket = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    written = bucket.get_file_info(pafs.FileSelector("bkt", recursive=True))
    assert not [i.path for i in written if "_odd" in i.path or "/odd" in i.path]  # nothing was written anywhere


def test_characters_a_uri_holds_as_they_are_round_trip_to_every_reader(endpoint):
    """The issue's prefix without its %20: what the writer puts in the bucket is found by ablate's
    reader, by pandas and pyarrow.dataset on the printed URI, and by polars on the same text."""
    prefix = "odd-dir/a+b=c,d;e@f~!$&'():x"
    store = ResultsStore(SweepDir.of("s", f"s3://bkt/{prefix}?endpoint_override={endpoint}&scheme=http"), EXPECT)
    for seed in (0, 1):
        store.add({**row(seed), "sweep": "s"})
    printed = str(store.dir)
    assert printed == f"s3://bkt/{prefix}/s?endpoint_override={endpoint}&scheme=http"
    bucket = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    keys = [i.path for i in bucket.get_file_info(pafs.FileSelector(f"bkt/{prefix}/s"))]
    assert len(keys) == 2 and all(k.startswith(f"bkt/{prefix}/s/") for k in keys)  # the key is the text as typed
    assert len(read_rows(printed)) == 2
    assert len(pd.read_parquet(printed)) == 2
    assert ds.dataset(printed, format="parquet").count_rows() == 2
    polars = pytest.importorskip("polars")
    options = {
        "aws_endpoint_url": f"http://{endpoint}",
        "aws_allow_http": "true",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
    }
    assert polars.read_parquet(f"s3://bkt/{prefix}/s/", storage_options=options).height == 2


# ---------------------------------------------------------------- credentials the store refuses
@pytest.fixture
def refusing_store(monkeypatch):
    """moto checks every request's key from now on: the test's fake key is one it does not know (403)."""
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


def test_credentials_the_store_refuses_are_one_line_before_compute(
    endpoint, tmp_path, capsys, no_compute, refusing_store
):
    sweep = write_sweep(tmp_path, "denied", "seeds: [0]\n")
    for argv in (
        ["run", str(sweep), "--storage", f"s3://bkt/new-prefix?endpoint_override={endpoint}&scheme=http"],
        ["status", f"s3://bkt/r/x?endpoint_override={endpoint}&scheme=http"],
        ["table", f"s3://bkt/r/x?endpoint_override={endpoint}&scheme=http"],
    ):
        assert main(argv) == 2, argv
        line = one_error(capsys)
        assert "access denied (" in line and "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in line, line


def test_a_store_that_refuses_once_the_bucket_was_reached_is_one_line_too(endpoint, monkeypatch):
    """The bucket answered earlier in this process (the check is once per bucket); a refusal of a
    later read or write (a key revoked mid-run, a read-only key) is the same one line, and an OSError
    for the writers that stop a run cleanly on one."""
    from moto import settings

    loc = Location.parse(f"s3://bkt/later/x.txt?endpoint_override={endpoint}&scheme=http")
    loc.write_text("x")
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    for op in (loc.read_text, lambda: loc.write_text("y"), loc.exists, loc.parent.children):
        with pytest.raises(StoreError, match=r"access denied \(.*set AWS_ACCESS_KEY_ID") as e:
            op()
        assert isinstance(e.value, OSError) and isinstance(e.value, UserError)


def test_submit_refuses_a_uri_the_job_could_never_open_before_it_queues(tmp_path, capsys):
    """``ablate submit`` opens nothing on the storage (the job does, hours later in the queue): the
    URI's text is checked now."""
    sweep = write_sweep(tmp_path, "queued", "seeds: [0]\n")
    assert main(["submit", str(sweep), "--storage", "s3://bkt//x", "--dry-run"]) == 2
    assert "an empty folder name (//) in the path" in one_error(capsys)
    assert main(["submit", str(sweep), "--storage", "file:///tmp/a b", "--dry-run"]) == 2
    assert "the character ' ' cannot be in a URI; give it as a plain path instead" in one_error(capsys)
    assert main(["submit", str(sweep), "--storage", f"file://{tmp_path}/r", "--nodes", "2", "--dry-run"]) == 2
    assert "--nodes 2 needs storage that every node sees" in one_error(capsys)  # /tmp, as a file:// URI
    assert main(["submit", str(sweep), "--storage", "s3://bkt/x?endpoint_override=h:1", "--dry-run"]) == 0
    assert "--storage 's3://bkt/x?endpoint_override=h:1'" in capsys.readouterr().out  # a good one goes on
