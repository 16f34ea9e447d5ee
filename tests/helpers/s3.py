"""The environment every S3 test runs in: moto's test credentials, no AWS profile, endpoint or
metadata service of this machine reached (nothing leaves the loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def offline_aws(mp: pytest.MonkeyPatch, scratch: Path) -> None:
    """Set the test credentials and point AWS's config and credential files at a file that does not exist."""
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        mp.delenv(key, raising=False)
    for key, value in {
        **TEST_CREDENTIALS,
        "AWS_CONFIG_FILE": str(scratch),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch),
    }.items():
        mp.setenv(key, value)
