"""Amazon S3, or any S3-compatible store, as a destination.

A file smaller than one part goes up in one `PutObject`; a larger one in a multipart upload whose
parts (at least `PART_SIZE`) are sent as the chunks arrive, `PARTS_AT_ONCE` at a time while the
next is made — the file is never whole in memory — and which is completed only after the last
part, so the key shows nothing until then. Any
failure aborts the upload. Objects carry the run id in their metadata (`audience-run-id`): a
retried run finds its object and writes nothing, and every write is conditional
(`If-None-Match: *`), so an existing object is never replaced.

Errors are mapped by what retrying can do: time-outs, lost connections, throttling (429) and
server errors (5xx) are transient; access denied, a missing bucket and other 4xx are terminal.
botocore retries a request a few times at once itself; a longer wait (and the server's
`Retry-After`, carried by the transient error) is the run's retry policy's to decide.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import hashlib
import itertools
import math
import posixpath
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    MetadataRetrievalError,
    ResponseStreamingError,
)

from audience.delivery.destinations.base import (
    RUN_ID_METADATA,
    SHA256_METADATA,
    PublishedObject,
    check_name,
)
from audience.delivery.destinations.s3.settings import (
    AccessKeyCredentials,
    AssumeRoleCredentials,
    S3Settings,
)
from audience.delivery.packaging import Meter
from audience.errors import DeliveryError, TerminalDeliveryError, TransientDeliveryError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as Boto3S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIB = 1024 * 1024
# S3 takes parts of 5 MiB to 5 GiB, at most 10 000 of them. 8 MiB parts keep memory small; the
# size doubles every 1 000 parts so that even a file of terabytes stays within the limit.
PART_SIZE = 8 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
PARTS_AT_ONCE = 2
"""Parts of one file uploading at the same time: a part's round trip overlaps with another's
send and with making the next, while memory holds only a few parts."""
ASSUME_ROLE_SECONDS = 3600
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "OperationAborted",
        "ConditionalRequestConflict",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
_TRANSIENT_BOTOCORE = (
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
    ChecksumError,
    CredentialRetrievalError,
    MetadataRetrievalError,
)


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _retry_after(error: ClientError) -> float | None:
    """The server's hint of when to try again, in seconds: `Retry-After` (seconds or an HTTP
    date) or S3's `x-amz-retry-after` (milliseconds); None when it gave none that makes sense."""
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    seconds: float | None = None
    with contextlib.suppress(TypeError, ValueError):
        if "x-amz-retry-after" in headers:
            seconds = float(headers["x-amz-retry-after"]) / 1000
        elif "retry-after" in headers:
            value = str(headers["retry-after"]).strip()
            try:
                seconds = float(value)
            except ValueError:
                moment = email.utils.parsedate_to_datetime(value)
                moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
                seconds = (moment - datetime.now(UTC)).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def delivery_error(error: Exception, what: str) -> DeliveryError:
    """Translate a botocore error into a transient or terminal delivery error; a transient one
    carries the server's `Retry-After`, which the run's retry policy honours."""
    if isinstance(error, ClientError):
        status, code = _status(error), _code(error)
        message = error.response.get("Error", {}).get("Message") or code
        text = f"{what}: {code or status} {message}".rstrip()
        if code in _TRANSIENT_CODES or status == 429 or status >= 500:
            return TransientDeliveryError(text, retry_after=_retry_after(error))
        return TerminalDeliveryError(text)
    if isinstance(error, _TRANSIENT_BOTOCORE):
        return TransientDeliveryError(f"{what}: {error}")
    return TerminalDeliveryError(f"{what}: {error}")


def part_size(part_number: int) -> int:
    """The size of part `part_number` (from 1) of a multipart upload."""
    return min(PART_SIZE << ((part_number - 1) // 1000), MAX_PART_SIZE)


def _parts(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Regroup chunks into upload parts of at least `part_size` bytes (the last may be less)."""
    pending: list[bytes] = []
    size = 0
    number = 1
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= part_size(number):
            yield b"".join(pending)
            pending, size, number = [], 0, number + 1
    if pending or number == 1:
        yield b"".join(pending)


class S3Client:
    """Publishes files under one bucket and prefix."""

    def __init__(
        self,
        client: Boto3S3Client,
        *,
        bucket: str,
        prefix: str = "",
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        # The prefix is a folder: `audiences` and `audiences/` both put files in audiences/.
        self.prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        self._encryption: dict[str, Any] = {}
        if server_side_encryption:
            self._encryption["ServerSideEncryption"] = server_side_encryption
        if kms_key_id:
            self._encryption["SSEKMSKeyId"] = kms_key_id

    def key(self, name: str) -> str:
        """The object key of file `name`, proven to stay under the prefix."""
        key = self.prefix + check_name(name)
        if posixpath.dirname(key) != self.prefix.rstrip("/") or posixpath.normpath(key) != key:
            raise TerminalDeliveryError(f"file name {name!r} would leave the prefix {self.prefix}")
        return key

    def uri(self, key: str) -> str:
        """The s3:// address of a key in this bucket."""
        return f"s3://{self.bucket}/{key}"

    def address(self, name: str) -> str:
        """The object's key in its bucket on its endpoint (two stores may share bucket names)."""
        return f"{self.client.meta.endpoint_url}|{self.uri(self.key(name))}"

    def location(self, name: str) -> str:
        """The object's s3:// URI."""
        return self.uri(self.key(name))

    def check(self) -> None:
        """The endpoint answers and the bucket exists. A bucket that forbids reading its
        metadata (write-only delivery buckets) passes: only writing can tell."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _status(error) == 404:  # HEAD has no body: say what a 404 means here
                raise TerminalDeliveryError(f"bucket {self.bucket} does not exist") from error
            if _status(error) != 403:
                raise delivery_error(error, f"cannot use bucket {self.bucket}") from error
        except BotoCoreError as error:
            raise delivery_error(error, f"cannot reach bucket {self.bucket}") from error

    def exists(self, name: str) -> bool:
        """Whether an object called `name` is under the prefix."""
        return self._head(self.key(name)) is not None

    def _head(self, key: str, *, may_be_forbidden: bool = False) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            # Delivery buckets often grant PutObject only: reading is then forbidden, and the
            # conditional write is what keeps an existing object from being replaced.
            if _status(error) == 404 or (may_be_forbidden and _status(error) == 403):
                return None
            raise delivery_error(error, f"cannot check {self.uri(key)}") from error
        except BotoCoreError as error:
            raise delivery_error(error, f"cannot reach {self.uri(key)}") from error

    def _existing(self, key: str, run_id: str, head: dict[str, Any]) -> PublishedObject:
        """The object at `key` if this run wrote it; otherwise refuse to touch it."""
        metadata = head.get("Metadata", {})
        if metadata.get(RUN_ID_METADATA) != run_id:
            raise TerminalDeliveryError(
                f"{self.uri(key)} already exists and was not written by this run; refusing to "
                "overwrite it (make names unique, e.g. with {{ run_id }} or the time)"
            )
        sha256 = metadata.get(SHA256_METADATA) or self._sha256(key)
        return PublishedObject(self.uri(key), int(head["ContentLength"]), sha256)

    def _sha256(self, key: str) -> str:
        """Checksum an existing object by reading it (multipart uploads cannot carry their
        checksum in metadata, which is set before the data is sent)."""
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for block in body.iter_chunks(MIB):
                digest.update(block)
        except (ClientError, BotoCoreError) as error:
            raise delivery_error(error, f"cannot read {self.uri(key)}") from error
        return digest.hexdigest()

    def publish(self, name: str, chunks: Iterable[bytes], *, run_id: str) -> PublishedObject:
        """Upload `chunks` as `name` (see the module docstring for how)."""
        key = self.key(name)
        head = self._head(key, may_be_forbidden=True)
        if head is not None:
            return self._existing(key, run_id, head)
        meter = Meter(chunks)
        parts = _parts(meter)
        first = next(parts)
        second = next(parts, None)
        if second is None:
            return self._put(key, first, run_id)
        return self._multipart(key, run_id, meter, itertools.chain((first, second), parts))

    def _conflict(self, key: str, run_id: str, error: ClientError) -> PublishedObject:
        """After a conditional write failed because the key exists: ours, or someone else's?"""
        head = self._head(key)
        if head is None:
            raise delivery_error(error, f"cannot write {self.uri(key)}") from error
        return self._existing(key, run_id, head)

    def _put(self, key: str, body: bytes, run_id: str) -> PublishedObject:
        digest = hashlib.sha256(body)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                Metadata={RUN_ID_METADATA: run_id, SHA256_METADATA: digest.hexdigest()},
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
                IfNoneMatch="*",
                **self._encryption,
            )
        except ClientError as error:
            if _status(error) == 412:
                return self._conflict(key, run_id, error)
            raise delivery_error(error, f"cannot write {self.uri(key)}") from error
        except BotoCoreError as error:
            raise delivery_error(error, f"cannot write {self.uri(key)}") from error
        return PublishedObject(self.uri(key), len(body), digest.hexdigest())

    def discard(self, name: str) -> int:
        """Abort the uploads to `name` an unfinished attempt left; how many there were."""
        return self._abort_unfinished(self.key(name))

    def _abort_unfinished(self, key: str) -> int:
        """Abort uploads to `key` left by an attempt that crashed before it could abort them."""
        aborted = 0
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == key and "UploadId" in upload:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except ClientError as error:
            # Listing uploads needs its own permission, which write-only deliveries lack.
            if _status(error) != 403:
                raise delivery_error(error, f"cannot clean up {self.uri(key)}") from error
        except BotoCoreError as error:
            raise delivery_error(error, f"cannot reach {self.uri(key)}") from error
        return aborted

    def _multipart(
        self,
        key: str,
        run_id: str,
        meter: Meter,
        parts: Iterator[bytes],
    ) -> PublishedObject:
        where = self.uri(key)
        try:
            self._abort_unfinished(key)
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, Metadata={RUN_ID_METADATA: run_id}, **self._encryption
            )["UploadId"]
        except (ClientError, BotoCoreError) as error:
            raise delivery_error(error, f"cannot start uploading {where}") from error
        try:
            completed = self._upload_parts(key, upload_id, parts)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": completed},
                IfNoneMatch="*",
            )
        except BaseException as error:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(error, ClientError) and _status(error) == 412:
                return self._conflict(key, run_id, error)
            if isinstance(error, ClientError | BotoCoreError):
                raise delivery_error(error, f"cannot upload {where}") from error
            raise
        return PublishedObject(where, meter.bytes, meter.sha256)

    def _upload_parts(
        self, key: str, upload_id: str, parts: Iterator[bytes]
    ) -> list[CompletedPartTypeDef]:
        """Upload the parts, `PARTS_AT_ONCE` at a time; the first failure is raised once the
        parts under way have stopped (the caller then aborts the upload)."""

        def send(number: int, body: bytes) -> CompletedPartTypeDef:
            response = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        completed: list[CompletedPartTypeDef] = []
        sending: deque[Future[CompletedPartTypeDef]] = deque()
        with ThreadPoolExecutor(PARTS_AT_ONCE, thread_name_prefix="audience-s3-part") as pool:
            try:
                for number, body in enumerate(parts, start=1):
                    if len(sending) == PARTS_AT_ONCE:
                        completed.append(sending.popleft().result())
                    sending.append(pool.submit(send, number, body))
                while sending:
                    completed.append(sending.popleft().result())
            finally:
                for future in sending:
                    future.cancel()
        return completed


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def _new_session(**options: Any) -> boto3.session.Session:
    """A boto3 session whose service descriptions are read once per process: each new session
    would otherwise parse botocore's large JSON models again (most of a second per run)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _shared_loader())
    return boto3.session.Session(botocore_session=core, **options)


def _session(settings: S3Settings) -> boto3.session.Session:
    credentials = settings.credentials
    if isinstance(credentials, AccessKeyCredentials):
        return _new_session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=settings.region,
        )
    session = _new_session(region_name=settings.region)
    if not isinstance(credentials, AssumeRoleCredentials):
        return session
    try:
        assumed = session.client("sts").assume_role(
            RoleArn=credentials.role_arn,
            RoleSessionName=credentials.session_name,
            ExternalId=credentials.external_id,
            DurationSeconds=ASSUME_ROLE_SECONDS,
        )["Credentials"]
    except (ClientError, BotoCoreError) as error:
        raise delivery_error(error, f"cannot assume role {credentials.role_arn}") from error
    return _new_session(
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
        region_name=settings.region,
    )


def connect(settings: S3Settings) -> S3Client:
    """Open an S3 destination from settings whose `${VAR}` references are already expanded."""
    config = Config(
        connect_timeout=10,
        read_timeout=120,
        # botocore tries a request three times in all (`max_attempts` would count retries, so
        # four), with its own short back-off; a longer wait, and the server's Retry-After, is
        # the run's retry policy's.
        retries={"mode": "standard", "total_max_attempts": 3},
        # S3-compatible stores on an endpoint URL are reached by path, which all of them serve.
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    client = _session(settings).client("s3", endpoint_url=settings.endpoint_url, config=config)
    return S3Client(
        client,
        bucket=settings.bucket,
        prefix=settings.prefix,
        server_side_encryption=settings.server_side_encryption,
        kms_key_id=settings.kms_key_id,
    )


def open_client(settings: S3Settings, root: Path | None) -> S3Client:
    """A client for the settings' bucket and prefix (`root` has no say in S3)."""
    del root
    return connect(settings)
