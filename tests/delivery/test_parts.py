"""Parts cut by size, and parts bundled into one tar archive: every row once, in order, within
the size, cut at the same rows on every attempt."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from audience.definitions.destination import Destination, size_in_bytes
from audience.delivery.destinations.base import EarlierFile, PublishedObject
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver, final_names, open_destination
from audience.errors import TransientDeliveryError

MakeDestination = Callable[..., Destination]


def _customers(count: int) -> pa.Table:
    # Rows of different widths, so a part's size depends on which rows it holds.
    return pa.table(
        {
            "amperity_id": [f"c{i:05d}" for i in range(count)],
            "email": [f"{'x' * (i % 37)}{i}@example.com" for i in range(count)],
            "note": [None if i % 5 == 0 else 'é, "quoted"' * (i % 4) for i in range(count)],
        }
    )


def _file(delivery: Any) -> bytes:
    return Path(delivery.uri.removeprefix("file://")).read_bytes()


def _csv_ids(data: bytes) -> list[str]:
    return [row["amperity_id"] for row in csv.DictReader(io.StringIO(data.decode(), newline=""))]


def _send(destination: Destination, table: pa.Table, names: Callable[..., NameValues], **kw: Any):  # type: ignore[no-untyped-def]
    return deliver(
        destination, table.to_batches(max_chunksize=700), names=names(), run_id="run-1", **kw
    )


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_split_by_size_keeps_each_part_within_the_size(
    compression: str, folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = _customers(5000)
    destination = folder_destination({"split_size": "20KB", "compression": compression})
    parts = _send(destination, table, names)
    assert len(parts) > 5
    ids: list[str] = []
    for number, part in enumerate(parts, start=1):
        assert part.name.endswith(f"_{number}.csv" + (".gz" if compression == "gzip" else ""))
        data = _file(part)
        text = gzip.decompress(data) if compression == "gzip" else data
        assert len(text) <= 20_000  # measured before compression
        if number < len(parts):
            assert len(text) > 20_000 * 0.8  # filled, not cut early
        assert text.startswith(b"amperity_id,email,note\n")  # each part has its header
        assert part.rows == len(_csv_ids(text))
        ids += _csv_ids(text)
    assert ids == table["amperity_id"].to_pylist()


@pytest.mark.parametrize("file_format", ["json", "ndjson"])
def test_split_by_size_json_parts_each_parse(
    file_format: str, folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = _customers(2000)
    parts = _send(folder_destination({"format": file_format, "split_size": 16_384}), table, names)
    assert len(parts) > 3
    rows: list[dict[str, Any]] = []
    for part in parts:
        data = _file(part)
        assert len(data) <= 16_384
        found = (
            json.loads(data)
            if file_format == "json"
            else [json.loads(line) for line in data.decode().splitlines()]
        )
        assert len(found) == part.rows
        rows += found
    assert rows == table.to_pylist()


def test_split_by_rows_and_size_keeps_both(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = _customers(3000)
    parts = _send(folder_destination({"split_size": "30KB", "split_rows": 500}), table, names)
    assert all(part.rows <= 500 and part.bytes <= 30_000 for part in parts)
    assert sum(part.rows for part in parts) == 3000
    assert any(part.rows == 500 for part in parts)  # the row limit cut some parts
    assert any(part.rows < 500 for part in parts[:-1])  # and the size others


def test_a_row_bigger_than_the_size_goes_alone(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = pa.table({"amperity_id": ["a", "b", "c"], "note": ["y" * 500, "short", "short"]})
    parts = _send(folder_destination({"split_size": 100}), table, names)
    assert [_csv_ids(_file(p)) for p in parts] == [["a"], ["b"], ["c"]]
    assert [p.bytes > 100 for p in parts] == [True, False, False]


class _FailingAt:
    """A folder that fails (transiently) when asked to publish its `fail_at`-th file."""

    def __init__(self, destination: Destination, fail_at: int) -> None:
        self.inner = open_destination(destination)
        self.fail_at = fail_at
        self.published = 0

    def publish(self, name: str, chunks: Iterable[bytes], *, run_id: str) -> PublishedObject:
        self.published += 1
        if self.published == self.fail_at:
            for _ in zip(range(2), chunks, strict=False):  # half-way through the file
                pass
            raise TransientDeliveryError("the connection dropped")
        return self.inner.publish(name, chunks, run_id=run_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("known", ["at the destination", "in the run log"])
def test_a_retry_cuts_the_same_parts(
    known: str, folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = _customers(4000)
    destination = folder_destination({"split_size": "16KB", "manifest": True})
    failing = _FailingAt(destination, fail_at=4)
    with pytest.raises(TransientDeliveryError):
        _send(destination, table, names, client=failing)
    published = sorted(path for path in failing.inner.folder.iterdir() if path.is_file())
    assert len(published) == 3
    earlier = {}
    if known == "in the run log":
        for path in published:
            data = path.read_bytes()
            uri = path.resolve().as_uri()
            digest = hashlib.sha256(data).hexdigest()
            earlier[uri] = EarlierFile(uri, len(_csv_ids(data)), len(data), digest)
    # The retry reads the rows in other batches: the parts are cut by rows and bytes alone.
    *parts, manifest = deliver(
        destination,
        table.to_batches(max_chunksize=333),
        names=names(),
        run_id="run-1",
        earlier=earlier,
    )
    assert [p.earlier for p in parts[:3]] == [known == "in the run log"] * 3
    ids = [i for part in parts for i in _csv_ids(_file(part))]
    assert ids == table["amperity_id"].to_pylist()
    listed = json.loads(_file(manifest))
    assert listed["rows"] == 4000 and len(listed["files"]) == len(parts)


@pytest.mark.parametrize("compression", ["tar", "tgz"])
def test_parts_bundled_in_one_archive(
    compression: str, folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    table = _customers(1000)
    destination = folder_destination(
        {"split_rows": 300, "compression": compression, "manifest": True, "success_file": True}
    )
    deliveries = _send(destination, table, names)
    archive, manifest, _ = deliveries
    suffix = ".tar.gz" if compression == "tgz" else ".tar"
    stem = "Spring_Churn_Prevention_Offer_A_20261201"
    assert [d.name for d in deliveries] == [
        f"{stem}{suffix}",
        f"{stem}.manifest.json",
        f"{stem}.DONE",
    ]
    assert archive.rows == 1000
    with tarfile.open(fileobj=io.BytesIO(_file(archive)), mode="r:*") as bundle:
        members = bundle.getmembers()
        assert [m.name for m in members] == [f"{stem}_{n}.csv" for n in (1, 2, 3, 4)]
        contents = [bundle.extractfile(m).read() for m in members]  # type: ignore[union-attr]
    assert [len(_csv_ids(c)) for c in contents] == [300, 300, 300, 100]
    assert [i for c in contents for i in _csv_ids(c)] == table["amperity_id"].to_pylist()
    assert json.loads(_file(manifest))["files"][0]["rows"] == 1000
    assert final_names(destination, names(), run_id="run-1", rows=1000) == [
        d.name for d in deliveries
    ]
    # Sent again under the same run, the archive is recognised: nothing is written twice.
    again = _send(destination, table, names)
    assert [(d.name, d.sha256, d.rows) for d in again] == [
        (d.name, d.sha256, d.rows) for d in deliveries
    ]


def test_sizes_as_users_write_them() -> None:
    assert size_in_bytes("250MB") == 250_000_000
    assert size_in_bytes("1.5 GB") == 1_500_000_000
    assert size_in_bytes("512KiB") == 524_288
    assert size_in_bytes("1gib") == 1024**3
    assert size_in_bytes(4096) == 4096
    assert size_in_bytes("100") == 100


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ({"split_size": "lots"}, "is not a size"),
        ({"split_size": "10 parsecs"}, "is not a size"),
        ({"split_size": 0}, "at least one byte"),
        ({"split_size": True}, "valid"),
        ({"split_size": "0.1B"}, "at least one byte"),
        ({"format": "parquet", "split_size": "1GB"}, "use split_rows"),
    ],
)
def test_bad_sizes_name_the_field(file: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Destination.model_validate(
            {"name": "out", "type": "filesystem", "settings": {"path": str(tmp_path)}, "file": file}
        )
    assert {error["loc"][:2] for error in caught.value.errors()} == {("file", "split_size")}
    assert message in str(caught.value)


def test_a_webhook_refuses_split_size() -> None:
    with pytest.raises(ValidationError, match=r"file\.split_size: a webhook takes records"):
        Destination.model_validate(
            {
                "name": "hook",
                "type": "webhook",
                "settings": {"url": "https://example.com/in"},
                "file": {"split_size": "1MB"},
            }
        )
