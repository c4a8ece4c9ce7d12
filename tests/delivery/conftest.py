"""Delivery test helpers: destinations on a fresh bucket or folder, sample rows, unpacking.

The S3 server itself (moto on a loopback port, reached over HTTP only) is in tests/conftest.py.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from audience.definitions.destination import Destination
from audience.delivery.naming import NameValues

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


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
