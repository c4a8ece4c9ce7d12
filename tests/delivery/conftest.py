"""S3 for the delivery tests: moto's server on a free loopback port, reached over HTTP only.

boto3 talks to it through `endpoint_url`, the code path real S3 and S3-compatible stores take.
Each test gets a bucket of its own.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer

from audience.definitions.destination import Destination
from audience.delivery.naming import NameValues

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
# Credentials and settings the tests give boto3, so nothing is read from ~/.aws or the
# instance metadata service.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def start_moto(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start a moto server on 127.0.0.1 (a free port unless given); return it and its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """Fake AWS credentials for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENVIRONMENT.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_environment: None) -> Iterator[str]:
    """The URL of a moto S3 (and STS) server running for the whole session."""
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture
def moto_server(aws_environment: None) -> Callable[[int], tuple[ThreadedMotoServer, str]]:
    """Start a moto server of a test's own (on the given port, or a free one if 0), for tests
    that stop it; the caller stops it."""
    return start_moto


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """A boto3 S3 client on the moto server, for tests to look at what was delivered."""
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def env_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`S3_ENDPOINT_URL` set to the moto server, as a destination's `${S3_ENDPOINT_URL}`."""
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def s3_destination(bucket: str, env_endpoint: str) -> Callable[..., Destination]:
    """Make an s3 destination on the test bucket, reached through `${S3_ENDPOINT_URL}`."""

    def make(file: dict[str, Any] | None = None, **settings: Any) -> Destination:
        document = {
            "kind": "destination",
            "name": "marketing-s3",
            "type": "s3",
            "settings": {
                "bucket": bucket,
                "prefix": "audiences/",
                "region": "us-east-1",
                "endpoint_url": "${S3_ENDPOINT_URL}",
                "credentials": "default",
                **settings,
            },
            "file": file or {},
        }
        return Destination.model_validate(document)

    return make


@pytest.fixture
def folder_destination(tmp_path: Path) -> Callable[..., Destination]:
    """Make a filesystem destination writing into `tmp_path / "out"`."""

    def make(file: dict[str, Any] | None = None) -> Destination:
        return Destination.model_validate(
            {
                "name": "local",
                "type": "filesystem",
                "settings": {"path": str(tmp_path / "out")},
                "file": file or {},
            }
        )

    return make


@pytest.fixture
def names() -> Callable[..., NameValues]:
    """Make the name values of a campaign's treatment group at the tests' fixed time."""

    def make(activation: str = "Spring Churn Prevention", group: str = "Offer A") -> NameValues:
        return NameValues(activation_name=activation, group_name=group, now=NOW)

    return make


@pytest.fixture
def sample() -> pa.Table:
    """Six customers with the awkward values files must survive: delimiters, quotes, line
    breaks, nulls, formulas, non-ASCII text and numbers."""
    return pa.table(
        {
            "amperity_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "email": ["a@x.com", "b,c@x.com", 'say "hi"', None, "=1+2", "line\nbreak"],
            "given_name": ["Zoë", "O'Brien", "", "-5", "+call", "@me"],
            "lifetime_revenue": pa.array([10.5, None, 0.0, 3.25, 100.0, 7.0], pa.float64()),
            "orders": pa.array([1, 2, None, 4, 5, 6], pa.int64()),
        }
    )


def _unpack(data: bytes, compression: str) -> bytes:
    if compression in {"gzip"}:
        return gzip.decompress(data)
    if compression == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            (member,) = archive.namelist()
            return archive.read(member)
    if compression in {"tar", "tgz"}:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            (member,) = archive.getmembers()
            extracted = archive.extractfile(member)
            assert extracted is not None
            return extracted.read()
    return data


@pytest.fixture
def unpack() -> Callable[[bytes, str], bytes]:
    """Undo a file's compression (gzip, zip, tar, tgz): the bytes of the one file inside."""
    return _unpack
