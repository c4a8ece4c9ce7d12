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
from collections.abc import Callable, Iterable, Iterator
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
# A part split by size is never fed more than this many rows at a time.
SIZED_SLICE_ROWS = 65_536


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

    def discard(self) -> None:
        """Forget what has been written so far."""
        self._parts.clear()


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
    return _tar_archive([(member, chunks)], mtime)


def bundle(
    members: Iterable[tuple[str, Iterable[bytes]]], compression: str, *, mtime: datetime
) -> Iterator[bytes]:
    """One tar archive (`tar`, or gzipped: `tgz`) holding each (name, chunks) as a member, in
    order; the members are taken one at a time, as the archive streams."""
    archive = _tar_archive(members, mtime)
    if compression == "tgz":
        return _gzip(archive)
    if compression == "tar":
        return archive
    raise ValueError(f"cannot bundle parts with compression {compression!r}")


def _tar_archive(
    members: Iterable[tuple[str, Iterable[bytes]]], mtime: datetime
) -> Iterator[bytes]:
    length = 0
    for member, chunks in members:
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
        # Each member is padded to whole blocks.
        padding = -size % tarfile.BLOCKSIZE
        if padding:
            yield b"\0" * padding
        length += len(header) + size + padding
    # The archive ends with two empty blocks and is padded to a whole record, as tar writes it.
    end = 2 * tarfile.BLOCKSIZE
    yield b"\0" * (end + (-(length + end) % tarfile.RECORDSIZE))


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
        self.bytes_per_row = 0.0
        """The most bytes a row took once encoded, over the slices measured so far."""
        self.slice_rows = 0
        """The rows of the last slice measured."""

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


Encoder = Callable[[Iterable[pa.RecordBatch]], Iterator[bytes]]


class Part:
    """One numbered file of a delivery: its share of the batches, and its row count.

    A part split by size is fed in slices whose encoded size is measured as they go: the next
    slice is as many rows as fill half the room left, at the most bytes per row a slice has
    taken so far, and at most twice the rows of the slice before. So a part stays within its
    size unless a slice's rows are more than twice as wide as those of every slice before, and
    a part always takes at least one row. The cuts depend
    only on the rows and their encoding, never on timing or on how the rows came in batches,
    so a retry that reads the rows in the same order cuts the same parts.
    """

    def __init__(
        self,
        number: int,
        source: _Batches,
        max_rows: int | None,
        max_bytes: int | None,
        encoder: Encoder | None,
    ) -> None:
        self.number = number
        self.rows = 0
        self.encoded_bytes = 0
        self._source = source
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._encoder = encoder
        self._closed = False

    def encoded(self) -> Iterator[bytes]:
        """This part's file: its batches through the encoder, measured on the way."""
        if self._encoder is None:
            raise ValueError("this part was split without an encoder")
        for chunk in self._encoder(self.batches()):
            self.encoded_bytes += len(chunk)
            yield chunk

    def _room(self) -> int | None:
        """How many rows the next batch may hold (None: any number; 0: the part is full)."""
        rows_left = None if self._max_rows is None else self._max_rows - self.rows
        if self._max_bytes is None:
            return rows_left
        rate = self._source.bytes_per_row
        # One row first learns what a row takes; then each slice fills half the room left, at
        # most twice the slice before, so the measure is taken over ever more rows while the
        # slices shrink as the part nears its size.
        room = self._max_bytes - self.encoded_bytes
        fits = min(int(room / rate / 2), 2 * self._source.slice_rows) if rate else 1
        if fits <= 0 and self.rows == 0:
            fits = 1
        fits = min(fits, SIZED_SLICE_ROWS)
        return fits if rows_left is None else min(fits, rows_left)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """This part's batches, within the part's row and size limits."""
        while not self._closed and ((room := self._room()) is None or room > 0):
            batch = self._source.next(room)
            if batch is None:
                break
            before = self.encoded_bytes
            self.rows += batch.num_rows
            yield batch
            # Resumed when the encoder wants more: it has encoded the batch (see `encoded`).
            if self._max_bytes is not None:
                rate = (self.encoded_bytes - before) / batch.num_rows
                self._source.bytes_per_row = max(self._source.bytes_per_row, rate)
                self._source.slice_rows = batch.num_rows
        self._closed = True

    def drain(self) -> None:
        """Count (and skip) the rows of this part that were not read, e.g. because the file
        was already delivered by an earlier attempt of the same run. A part cut by size is
        encoded to learn where it ends; nothing is sent."""
        if self._max_bytes is not None and self.rows == 0:
            for _ in self.encoded():
                pass
        for _ in self.batches():
            pass

    def skip(self, rows: int) -> None:
        """Skip the part's `rows` rows, known from an earlier attempt's record."""
        self._max_rows, self._max_bytes = rows, None
        self.drain()


def split(
    batches: Iterable[pa.RecordBatch],
    max_rows: int | None,
    max_bytes: int | None = None,
    encoder: Encoder | None = None,
) -> Iterator[Part]:
    """Split batches into parts of at most `max_rows` rows and about `max_bytes` bytes once
    encoded by `encoder` (all in one part if both are None).

    There is always a first part, empty for an empty audience; a next part only while rows
    remain. Each part must be read (or drained) before the next is taken.
    """
    source = _Batches(batches)
    number = 1
    while True:
        part = Part(number, source, max_rows, max_bytes, encoder)
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
