"""The helpers of the data path: :func:`redact` for every URL shown, and the data root's no-follow opens."""

import os

import pytest

from ablate.datasets.download import redact
from ablate.datasets.safefiles import file_size, md5_of, open_to_write
from ablate.errors import DatasetError


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:pass@host/x.tar.gz", "https://***@host/x.tar.gz"),
        ("http://token@host:8080/d/", "http://***@host:8080/d/"),
        ("http://u:p%40ss@[::1]:80/a@b", "http://***@[::1]:80/a@b"),  # an @ after the host is the path's
        ("user:pass@host/x", "***@host/x"),  # no scheme: as a mistyped --mirror
        ("https://host/a@b", "https://host/a@b"),
        ("file:///shared/data/x.tgz", "file:///shared/data/x.tgz"),
    ],
)
def test_redact_hides_the_credentials_of_a_url(url, shown):
    assert redact(url) == shown


def test_open_to_write_refuses_links_and_special_files(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    os.symlink(target, tmp_path / "sym")
    os.link(target, tmp_path / "hard")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name, why in (("sym", "a symbolic link"), ("hard", "a hard link"), ("fifo", "a FIFO"), ("dir", "a directory")):
        with pytest.raises(DatasetError, match=rf"/{name} is {why}"):
            open_to_write(tmp_path / name, truncate=True)
        with pytest.raises(DatasetError, match=rf"/{name} is {why}"):
            file_size(tmp_path / name)
    assert target.read_bytes() == b"keep"
    os.close(open_to_write(tmp_path / "new", truncate=True))
    assert file_size(tmp_path / "new") == 0 and file_size(tmp_path / "absent") is None


def test_md5_reads_through_a_link_to_a_regular_file_only(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    os.symlink(tmp_path / "a", tmp_path / "link")
    assert md5_of(tmp_path / "link") == "900150983cd24fb0d6963f7d28e17f72"  # md5("abc"), RFC 1321
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(DatasetError, match="is a FIFO, not a regular file"):
        md5_of(tmp_path / "fifo")
