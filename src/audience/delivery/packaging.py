"""Packaging encoded files: compression and archives, numbered parts, checksums, manifest.

Everything streams. gzip is ISA-L's (`isal.igzip_threaded`): several times faster than zlib, and
it compresses on a thread of its own while the caller encodes the next rows. zip streams through
the standard library (data descriptors, zip64). A tar member's size comes first in its header,
so a tar member is spooled to a temporary file on disk, never held in memory.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import pyarrow as pa
from isal import igzip_threaded

GZIP_LEVEL = 1  # ISA-L level 1: most of level 3's ratio at about twice its speed
ZIP_LEVEL = 1
MANIFEST_SUFFIX = ".manifest.json"
SUCCESS_SUFFIX = ".DONE"
_READ_SIZE = 1024 * 1024


class Sink:
    """A write-only file object, written from any thread, whose bytes are taken as they arrive.

    Writers that want a file (pyarrow's CSV and Parquet writers, gzip, zipfile) write into it;
    the generator around them takes out what they wrote after each step, so nothing piles up.
    """

    def __init__(self) -> None:
        self._parts: deque[bytes] = deque()
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)  # deque.append is atomic: writer threads need no lock
        return len(chunk)

    def flush(self) -> None:
        """Nothing to flush: written bytes wait in memory until `take`."""

    def close(self) -> None:
        """Mark the file closed; what was written can still be taken."""
        self.closed = True

    def take(self) -> Iterator[bytes]:
        """Yield what has been written so far, forgetting it."""
        while self._parts:
            chunk = self._parts.popleft()
            if chunk:
                yield chunk


def package(
    chunks: Iterable[bytes], compression: str, *, member: str, mtime: datetime
) -> Iterator[bytes]:
    """Compress or archive a file's bytes: `none`, `gzip`, `zip`, `tar` or `tgz`.

    `member` names the file inside a zip or tar archive; `mtime` is its time in a tar.
    """
    if compression == "gzip":
        return _gzip(chunks)
    if compression == "zip":
        return _zip(chunks, member)
    if compression == "tar":
        return _tar(chunks, member, mtime)
    if compression == "tgz":
        return _gzip(_tar(chunks, member, mtime))
    return (chunk for chunk in chunks if chunk)


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    sink = Sink()
    # python-isal ships no type hints for igzip_threaded.open; it returns a binary writer.
    writer: BinaryIO = igzip_threaded.open(  # type: ignore[no-untyped-call]
        sink, "wb", compresslevel=GZIP_LEVEL, threads=1
    )
    with writer as compressed:
        for chunk in chunks:
            compressed.write(chunk)
            yield from sink.take()
    yield from sink.take()


def _zip(chunks: Iterable[bytes], member: str) -> Iterator[bytes]:
    sink = Sink()
    # The sink cannot seek, so zipfile writes sizes in data descriptors after the data;
    # force_zip64 because the final size is unknown when the entry starts.
    with zipfile.ZipFile(
        sink,
        "w",
        compression=zipfile.ZIP_DEFLATED,
        compresslevel=ZIP_LEVEL,
        allowZip64=True,
    ) as archive:
        with archive.open(member, "w", force_zip64=True) as entry:
            for chunk in chunks:
                entry.write(chunk)
                yield from sink.take()
        yield from sink.take()
    yield from sink.take()


def _tar(chunks: Iterable[bytes], member: str, mtime: datetime) -> Iterator[bytes]:
    with tempfile.TemporaryFile(prefix="audience-tar-") as spool:
        size = 0
        for chunk in chunks:
            spool.write(chunk)
            size += len(chunk)
        spool.seek(0)
        info = tarfile.TarInfo(member)
        info.size = size
        info.mtime = int(mtime.timestamp())
        info.mode = 0o644
        header = info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        yield header
        while block := spool.read(_READ_SIZE):
            yield block
    # The member is padded to whole blocks, and the archive ends with two empty blocks and is
    # padded to a whole record, as tar writes it.
    padding = -size % tarfile.BLOCKSIZE
    end = 2 * tarfile.BLOCKSIZE
    archive = len(header) + size + padding + end
    yield b"\0" * (padding + end + (-archive % tarfile.RECORDSIZE))


class Meter:
    """Pass chunks through, counting their bytes and computing their SHA-256."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._hash = hashlib.sha256()
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._hash.update(chunk)
            self.bytes += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the chunks that went through."""
        return self._hash.hexdigest()


class _Batches:
    """Batches with one batch of look-ahead, to cut a part exactly at its row limit."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = iter(batches)
        self._head: pa.RecordBatch | None = None

    def next(self, limit: int | None) -> pa.RecordBatch | None:
        """The next non-empty batch, cut to at most `limit` rows; None at the end."""
        while self._head is None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            if batch.num_rows:
                self._head = batch
        batch = self._head
        if limit is not None and batch.num_rows > limit:
            self._head = batch.slice(limit)
            return batch.slice(0, limit)
        self._head = None
        return batch

    def exhausted(self) -> bool:
        """Whether no row is left."""
        if self._head is None:
            self._head = self.next(None)
        return self._head is None


class Part:
    """One numbered file of a delivery: its share of the batches, and its row count."""

    def __init__(self, number: int, source: _Batches, limit: int | None) -> None:
        self.number = number
        self.rows = 0
        self._source = source
        self._limit = limit

    def batches(self) -> Iterator[pa.RecordBatch]:
        """This part's batches, at most the part's row limit in all."""
        while self._limit is None or self.rows < self._limit:
            batch = self._source.next(None if self._limit is None else self._limit - self.rows)
            if batch is None:
                return
            self.rows += batch.num_rows
            yield batch

    def drain(self) -> None:
        """Count (and skip) the rows of this part that were not read, e.g. because the file
        was already delivered by an earlier attempt of the same run."""
        for _ in self.batches():
            pass


def split(batches: Iterable[pa.RecordBatch], max_rows: int | None) -> Iterator[Part]:
    """Split batches into parts of at most `max_rows` rows (all in one part if None).

    There is always a first part, empty for an empty audience; a next part only while rows
    remain. Each part must be read (or drained) before the next is taken.
    """
    source = _Batches(batches)
    number = 1
    while True:
        part = Part(number, source, max_rows)
        yield part
        part.drain()
        if source.exhausted():
            return
        number += 1


@dataclass(frozen=True)
class ManifestEntry:
    """One data file as the manifest lists it."""

    name: str
    rows: int
    bytes: int
    sha256: str


def manifest(
    entries: list[ManifestEntry],
    *,
    activation: str,
    destination: str,
    run_id: str,
    created_at: datetime,
    file_format: str,
    compression: str,
) -> bytes:
    """The manifest file: which files make up the delivery, their rows, bytes and SHA-256."""
    document = {
        "activation": activation,
        "destination": destination,
        "run_id": run_id,
        "created_at": created_at.isoformat(),
        "format": file_format,
        "compression": compression,
        "rows": sum(entry.rows for entry in entries),
        "files": [
            {"name": e.name, "rows": e.rows, "bytes": e.bytes, "sha256": e.sha256} for e in entries
        ],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
