"""Delivering to S3 through moto's server over HTTP: atomic, exactly once, nothing left behind."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.definitions.destination import Destination
from audience.delivery.destinations.s3.client import PART_SIZE, S3Client
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver, open_destination
from audience.errors import TerminalDeliveryError, TransientDeliveryError

MakeDestination = Callable[..., Destination]
MIB = 1024 * 1024


def _keys(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _big_table(megabytes: int) -> pa.Table:
    """About `megabytes` MiB of CSV that barely compresses (so parts really are large)."""
    rows = megabytes * 1024
    ids = [hashlib.sha256(str(i).encode()).hexdigest() * 16 for i in range(rows)]
    return pa.table({"amperity_id": ids, "email": ["x@example.com"] * rows})


def _chunks(total: int, *, fail_after: int | None = None) -> Iterator[bytes]:
    """`total` bytes of chunks of 1 MiB; raise after `fail_after` bytes if given."""
    sent = 0
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise RuntimeError("the engine lost its connection")
        chunk = hashlib.sha256(str(sent).encode()).digest() * (MIB // 32)
        sent += len(chunk)
        yield chunk


def test_delivers_a_gzip_csv_under_the_prefix(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
) -> None:
    destination = s3_destination({"compression": "gzip", "success_file": True, "manifest": True})
    data_file, manifest, done = deliver(
        destination, sample.to_batches(max_chunksize=2), names=names(), run_id="run-1"
    )
    key = "audiences/Spring_Churn_Prevention_Offer_A_20261201.csv.gz"
    assert data_file.uri == f"s3://{bucket}/{key}"
    assert (data_file.rows, data_file.destination) == (6, "marketing-s3")
    body = _body(s3, bucket, key)
    assert data_file.sha256 == hashlib.sha256(body).hexdigest() and data_file.bytes == len(body)
    assert gzip.decompress(body).startswith(b"amperity_id,email,given_name")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["audience-run-id"] == "run-1"
    assert sorted(_keys(s3, bucket)) == sorted(
        [
            key,
            "audiences/Spring_Churn_Prevention_Offer_A_20261201.manifest.json",
            "audiences/Spring_Churn_Prevention_Offer_A_20261201.DONE",
        ]
    )
    assert manifest.role == "manifest" and done.role == "success"


def test_parquet_and_zip_read_back(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
    unpack: Callable[[bytes, str], bytes],
) -> None:
    destination = s3_destination({"format": "parquet", "compression": "zip"})
    (delivery,) = deliver(destination, sample.to_batches(), names=names(), run_id="r")
    body = _body(s3, bucket, delivery.uri.removeprefix(f"s3://{bucket}/"))
    assert pq.read_table(io.BytesIO(unpack(body, "zip"))).equals(sample)


def test_a_large_file_goes_up_in_parts_streamed(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    s3: Any,
    bucket: str,
) -> None:
    table = _big_table(20)
    (delivery,) = deliver(
        s3_destination(), table.to_batches(max_chunksize=5000), names=names(), run_id="big"
    )
    key = delivery.uri.removeprefix(f"s3://{bucket}/")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == delivery.bytes > 2 * PART_SIZE
    assert "-" in head["ETag"]  # a multipart upload's ETag counts its parts
    assert hashlib.sha256(_body(s3, bucket, key)).hexdigest() == delivery.sha256
    assert delivery.rows == table.num_rows
    assert _uploads(s3, bucket) == []


def test_retry_with_the_same_run_id_gives_exactly_one_object(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
) -> None:
    destination = s3_destination({"split_rows": 4, "success_file": True, "manifest": True})
    first = deliver(destination, sample.to_batches(), names=names(), run_id="run-7")
    before = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in _keys(s3, bucket)}
    again = deliver(destination, sample.to_batches(), names=names(), run_id="run-7")
    after = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in _keys(s3, bucket)}
    assert again == first
    assert after == before and len(after) == 4
    versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    assert len(versions) == 4


def test_retry_after_a_multipart_upload_reports_its_checksum(
    s3_destination: MakeDestination, names: Callable[..., NameValues], s3: Any, bucket: str
) -> None:
    client = open_destination(s3_destination())
    first = client.publish("big.bin", _chunks(17 * MIB), run_id="r")
    again = client.publish("big.bin", _chunks(0), run_id="r")
    assert again == first
    assert first.sha256 == hashlib.sha256(b"".join(_chunks(17 * MIB))).hexdigest()


def test_a_file_of_another_run_is_never_overwritten(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
) -> None:
    destination = s3_destination()
    (first,) = deliver(destination, sample.to_batches(), names=names(), run_id="monday")
    with pytest.raises(TerminalDeliveryError, match="not written by this run"):
        deliver(destination, sample.slice(0, 1).to_batches(), names=names(), run_id="tuesday")
    key = first.uri.removeprefix(f"s3://{bucket}/")
    assert hashlib.sha256(_body(s3, bucket, key)).hexdigest() == first.sha256


def test_failure_in_the_middle_of_a_multipart_upload_leaves_nothing(
    s3_destination: MakeDestination, s3: Any, bucket: str
) -> None:
    client = open_destination(s3_destination())
    with pytest.raises(RuntimeError, match="lost its connection"):
        client.publish("broken.csv", _chunks(40 * MIB, fail_after=20 * MIB), run_id="r")
    assert _keys(s3, bucket) == []
    assert _uploads(s3, bucket) == []


def test_engine_failing_mid_delivery_leaves_nothing(
    s3_destination: MakeDestination, names: Callable[..., NameValues], s3: Any, bucket: str
) -> None:
    table = _big_table(24)

    def batches() -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(table.to_batches(max_chunksize=2048)):
            if index == 10:  # about 20 MiB in: two parts are up, the third is on its way
                raise ConnectionResetError("the engine went away")
            yield batch

    with pytest.raises(ConnectionResetError):
        deliver(s3_destination({"success_file": True}), batches(), names=names(), run_id="r")
    assert _keys(s3, bucket) == []
    assert _uploads(s3, bucket) == []


def test_store_going_down_mid_upload_then_retry(
    moto_server: Callable[[int], tuple[Any, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops between two parts: the error is transient, and the retry of the same
    run (once the store is back) writes one object and clears the upload left behind."""
    import boto3

    server, url = moto_server(0)
    port = int(url.rsplit(":", 1)[1])
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket="flaky")
    monkeypatch.setenv("S3_ENDPOINT_URL", url)
    destination = Destination.model_validate(
        {
            "name": "flaky",
            "type": "s3",
            "settings": {"bucket": "flaky", "endpoint_url": "${S3_ENDPOINT_URL}"},
        }
    )

    def chunks_then_outage() -> Iterator[bytes]:
        for sent, chunk in enumerate(_chunks(30 * MIB)):
            if sent == 20:  # parts 1 and 2 are up; part 3 never arrives
                server.stop()
            yield chunk

    with pytest.raises(TransientDeliveryError):
        open_destination(destination).publish("f.bin", chunks_then_outage(), run_id="r")
    server, url = moto_server(port)
    try:
        assert len(_uploads(s3, "flaky")) == 1  # the abort could not reach the store
        published = open_destination(destination).publish("f.bin", _chunks(30 * MIB), run_id="r")
        assert published.bytes == 30 * MIB
        assert _keys(s3, "flaky") == ["f.bin"]
        assert _uploads(s3, "flaky") == []
    finally:
        server.stop()


def test_destination_down_at_the_start(
    aws_environment: None, monkeypatch: pytest.MonkeyPatch, names: Callable[..., NameValues]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    destination = Destination.model_validate(
        {
            "name": "down",
            "type": "s3",
            "settings": {"bucket": "anything", "endpoint_url": "${S3_ENDPOINT_URL}"},
        }
    )
    table = pa.table({"amperity_id": ["c1"]})
    with pytest.raises(TransientDeliveryError, match="cannot reach"):
        deliver(destination, table.to_batches(), names=names(), run_id="r")


def test_missing_bucket_is_terminal(
    s3_destination: MakeDestination, names: Callable[..., NameValues], sample: pa.Table
) -> None:
    destination = s3_destination(bucket="no-such-bucket-here")
    with pytest.raises(TerminalDeliveryError, match="NoSuchBucket"):
        deliver(destination, sample.to_batches(), names=names(), run_id="r")


@pytest.mark.parametrize(
    "activation",
    [
        "../../etc/passwd",
        "a/b\\c/../d",
        "tab\tnul\x00bell\x07del\x7f",
        "x" * 300,
        "🎉 Spring 🌸 Sale",
        "🎉🎉",
        "..",
    ],
)
def test_unsafe_names_stay_safe_and_under_the_prefix(
    activation: str,
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
) -> None:
    destination = s3_destination({"success_file": True, "split_rows": 4}, prefix="exports/acme")
    deliveries = deliver(
        destination, sample.to_batches(), names=names(activation, "../g/"), run_id="r"
    )
    keys = _keys(s3, bucket)
    assert len(keys) == 3
    for key in keys:
        folder, _, name = key.partition("/acme/")
        assert folder == "exports"
        assert name and "/" not in name and "\\" not in name and ".." not in name
        assert name.isprintable() and not name.startswith(".")
        assert len(name.encode()) <= 255
    assert {d.uri for d in deliveries} == {f"s3://{bucket}/{key}" for key in keys}


def test_client_refuses_names_that_leave_the_prefix(s3_destination: MakeDestination) -> None:
    client = open_destination(s3_destination())
    assert isinstance(client, S3Client)
    for name in ["../x.csv", "a/b.csv", "..", ".hidden", "", "a\\b", "nl\n"]:
        with pytest.raises(TerminalDeliveryError, match="unsafe file name"):
            client.publish(name, [b"x"], run_id="r")


def test_access_keys_from_the_environment(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    monkeypatch: pytest.MonkeyPatch,
    s3: Any,
    bucket: str,
) -> None:
    credentials = {
        "access_key_id": "${ACME_KEY_ID}",
        "secret_access_key": "${ACME_SECRET}",
    }
    destination = s3_destination(credentials=credentials)
    with pytest.raises(TerminalDeliveryError, match=r"\$\{ACME_KEY_ID\}, which is not set"):
        deliver(destination, sample.to_batches(), names=names(), run_id="r")
    monkeypatch.setenv("ACME_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("ACME_SECRET", "very-secret")
    deliver(destination, sample.to_batches(), names=names(), run_id="r")
    assert len(_keys(s3, bucket)) == 1
    assert "very-secret" not in destination.model_dump_json()


def test_assume_role_with_external_id(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    s3: Any,
    bucket: str,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    role = {
        "role_arn": "arn:aws:iam::123456789012:role/audience-delivery",
        "external_id": "${ACME_EXTERNAL_ID}",
    }
    monkeypatch.setenv("ACME_EXTERNAL_ID", "acme-7f3a")
    deliver(s3_destination(credentials=role), sample.to_batches(), names=names(), run_id="r")
    assert len(_keys(s3, bucket)) == 1


def test_server_side_encryption(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
) -> None:
    destination = s3_destination(server_side_encryption="AES256")
    (delivery,) = deliver(destination, sample.to_batches(), names=names(), run_id="r")
    head = s3.head_object(Bucket=bucket, Key=delivery.uri.removeprefix(f"s3://{bucket}/"))
    assert head["ServerSideEncryption"] == "AES256"


def test_prefix_without_a_trailing_slash_is_a_folder(
    s3_destination: MakeDestination,
    names: Callable[..., NameValues],
    sample: pa.Table,
    s3: Any,
    bucket: str,
) -> None:
    deliver(s3_destination(prefix="drops"), sample.to_batches(), names=names(), run_id="r")
    assert _keys(s3, bucket) == ["drops/Spring_Churn_Prevention_Offer_A_20261201.csv"]
