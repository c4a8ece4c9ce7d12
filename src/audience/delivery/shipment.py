"""Deliver an audience to a destination: the one call the activation runners make.

```python
client = open_destination(destination, root=workspace_root)        # expands ${VAR}
deliveries = deliver(destination, engine.stream(query), names=NameValues(
    activation_name="Spring Churn Prevention", group_name="Offer A", now=run.scheduled_for,
), run_id=run.id, client=client)
```

One pass over the batches: rows are counted, split into parts, encoded, compressed and uploaded
as they stream. Encoding and compression run on a worker thread while the calling thread uploads,
so the network and the CPU work at the same time. Each part is published atomically; then come the
manifest and, last, the success file. Calling again with the same run id (a retry) finds the
files already delivered and returns them without writing anything twice — provided `names.now`
is the same, which is why it should be the run's scheduled time, not the wall clock.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from audience.definitions.base import DestinationSettings
from audience.definitions.destination import Destination, FileOptions
from audience.definitions.references import EXPANDED
from audience.delivery import formats, naming, packaging
from audience.delivery.destinations import opener
from audience.delivery.destinations.base import (
    Delivery,
    DestinationClient,
    EarlierFile,
    PublishedObject,
    RecordReceiver,
    Role,
    expand,
)
from audience.delivery.encryption import Recipient
from audience.delivery.naming import NameValues
from audience.errors import DuplicateFileName, TerminalDeliveryError

# How many encoded chunks may wait between the encoding thread and the upload.
PREFETCH_CHUNKS = 4


def _expanded(value: Any, *, field: str, destination: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expand(value, field=field, destination=destination, environ=environ)
    if isinstance(value, dict):
        return {
            key: _expanded(item, field=f"{field}.{key}", destination=destination, environ=environ)
            for key, item in value.items()
        }
    return value


def _settings(destination: Destination, environ: Mapping[str, str]) -> DestinationSettings:
    """The destination's settings with `${VAR}` expanded, validated again in full."""
    settings = destination.settings
    raw = _expanded(
        settings.model_dump(by_alias=True),
        field="settings",
        destination=destination.name,
        environ=environ,
    )
    try:
        return type(settings).model_validate(raw, context={EXPANDED: True})
    except ValidationError as error:
        # Name the field and the problem, never the value: it may be a secret.
        problems = "; ".join(
            f"settings.{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()
        )
        raise TerminalDeliveryError(f"destination {destination.name!r}: {problems}") from None


def open_destination(
    destination: Destination,
    *,
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> DestinationClient:
    """Open a destination for delivery, expanding `${VAR}` from `environ` (the process's by
    default); a relative folder is taken from `root` (the workspace; the current directory if
    None)."""
    settings = _settings(destination, os.environ if environ is None else environ)
    return opener(destination.type)(settings, root)


def _prefetched(chunks: Iterable[bytes], depth: int = PREFETCH_CHUNKS) -> Generator[bytes]:
    """Produce `chunks` on a worker thread, at most `depth` ahead of the consumer.

    Errors raised while producing are raised to the consumer. When the consumer stops early
    (an upload failed, or the file was already there), the worker stops at its next chunk and
    closes the producing generators on its own thread, before this generator returns.
    """
    channel: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def send(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                if not send("chunk", chunk):
                    return
            send("end", None)
        except BaseException as error:  # handed to the consumer, who decides
            send("error", error)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="audience-encode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "chunk":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def _first_rows(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema | None
) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch] | None]:
    """Read ahead to the first batch with rows, learning the schema on the way.

    Returns the schema and all the batches again, or None for them when no batch has a row.
    """
    iterator = iter(batches)
    for batch in iterator:
        schema = schema or batch.schema
        if batch.num_rows:
            return schema, _chain(batch, iterator)
    return schema, None


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _delivery(
    destination: Destination, name: str, published: PublishedObject, rows: int, role: Role
) -> Delivery:
    return Delivery(
        destination=destination.name,
        uri=published.uri,
        rows=rows,
        bytes=published.bytes,
        sha256=published.sha256,
        name=name,
        role=role,
    )


def _send_records(
    destination: Destination,
    client: RecordReceiver,
    rows: Iterator[pa.RecordBatch] | None,
    names: NameValues,
    run_id: str,
    claimed: RunNames,
    earlier: Mapping[str, EarlierFile],
    what: str,
) -> Delivery:
    """Hand the rows to a destination that takes records (a webhook), as one delivery."""
    name = _data_name(destination, names, run_id, 1)
    claimed.claim(client, name, what)
    known = earlier.get(client.location(name)) if earlier else None
    if known is not None:
        return _earlier(destination, name, known, "data")
    counted = _Counted(rows if rows is not None else iter(()))
    published = client.send_records(name, counted, run_id=run_id)
    return _delivery(destination, name, published, counted.rows, "data")


class _Counted:
    """Batches passed through, their rows counted."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = batches
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._batches:
            self.rows += batch.num_rows
            yield batch


def _earlier(destination: Destination, name: str, known: EarlierFile, role: Role) -> Delivery:
    return Delivery(
        destination=destination.name,
        uri=known.uri,
        rows=known.rows,
        bytes=known.bytes,
        sha256=known.sha256,
        name=name,
        role=role,
        earlier=True,
    )


def _set_name(destination: Destination, names: NameValues, run_id: str, suffix: str) -> str:
    return naming.set_file_name(
        destination.file.filename,
        names,
        destination_name=destination.name,
        run_id=run_id,
        suffix=suffix,
    )


def _suffix(options: FileOptions, compression: str) -> str:
    pgp = options.pgp.suffix if options.pgp is not None else ""
    return naming.extension(options.format, compression) + pgp


def _data_name(destination: Destination, names: NameValues, run_id: str, number: int) -> str:
    """The name of data file `number`; with the parts bundled, of the archive that holds them."""
    options = destination.file
    if options.bundled:
        return _set_name(destination, names, run_id, _suffix(options, options.compression))
    return _part_name(destination, names, run_id, number, _suffix(options, options.compression))


def _part_name(
    destination: Destination, names: NameValues, run_id: str, number: int, suffix: str
) -> str:
    """Part `number`'s name, ending in `suffix`: a file of its own, or a member of the bundle."""
    options = destination.file
    return naming.data_file_name(
        options.filename,
        names,
        destination_name=destination.name,
        run_id=run_id,
        file_number=number,
        numbered=options.split,
        suffix=suffix,
    )


def _parts(options: FileOptions, rows: int) -> int:
    """How many parts `rows` rows make; split by size, the number is known only once the parts
    are written, and two stand for them."""
    if options.bundled:
        return 1
    parts = 1 if options.split_rows is None else max(1, -(-rows // options.split_rows))
    if options.split_size is not None:
        parts = max(parts, min(rows, 2))
    return parts


def final_names(
    destination: Destination, names: NameValues, *, run_id: str, rows: int
) -> list[str]:
    """The names `deliver` publishes for a file of `rows` rows: its data parts (or the archive
    that bundles them), then the manifest and the success file when the destination asks for
    them. Parts split by size are known only as they are written: the first two stand for them,
    enough to tell whether the names keep parts and files apart."""
    options = destination.file
    if rows == 0 and options.empty == "none":
        return []
    found = [
        _data_name(destination, names, run_id, number)
        for number in range(1, _parts(options, rows) + 1)
    ]
    if options.manifest:
        found.append(_set_name(destination, names, run_id, packaging.MANIFEST_SUFFIX))
    if options.success_file:
        found.append(_set_name(destination, names, run_id, packaging.SUCCESS_SUFFIX))
    return found


class RunNames:
    """The final places one run writes to: a run never publishes two files under one name
    (the second would be taken for the first, "already delivered", and silently lost)."""

    def __init__(self) -> None:
        self._claimed: dict[str, str] = {}

    def claim(self, client: DestinationClient | RecordReceiver, name: str, what: str) -> None:
        """Reserve `name` on `client` for the file described by `what`, or raise
        DuplicateFileName naming both files."""
        address = client.address(name)
        earlier = self._claimed.setdefault(address, what)
        if earlier != what:
            raise DuplicateFileName(
                f"two files of this run would both be named {name!r} in the same place "
                f"({earlier}; {what}); make the destination's filename template tell them "
                "apart, e.g. with {{ group_name }}, {{ sub_audience_name }} or "
                "{{ destination_name }}"
            )


def _publish_manifest(
    destination: Destination,
    data_files: list[Delivery],
    names: NameValues,
    run_id: str,
    client: DestinationClient,
    claimed: RunNames,
    what: str,
    earlier: Mapping[str, EarlierFile],
    ready: Callable[[], object],
) -> Delivery:
    entries = [packaging.ManifestEntry(d.name, d.rows, d.bytes, d.sha256) for d in data_files]
    document = packaging.manifest(
        entries,
        activation=names.activation_name,
        destination=destination.name,
        run_id=run_id,
        created_at=names.now,
        file_format=destination.file.format,
        compression=destination.file.compression,
    )
    name = _set_name(destination, names, run_id, packaging.MANIFEST_SUFFIX)
    claimed.claim(client, name, f"the manifest of {what}")
    known = earlier.get(client.location(name)) if earlier else None
    if known is not None:
        return _earlier(destination, name, known, "manifest")
    ready()
    published = client.publish(name, [document], run_id=run_id)
    return _delivery(destination, name, published, 0, "manifest")


def deliver(
    destination: Destination,
    batches: Iterable[pa.RecordBatch],
    *,
    names: NameValues,
    run_id: str,
    client: DestinationClient | None = None,
    schema: pa.Schema | None = None,
    claimed: RunNames | None = None,
    earlier: Mapping[str, EarlierFile] | None = None,
    references: Mapping[str, str] | None = None,
    on_published: Callable[[Delivery], object] | None = None,
    before_publish: Callable[[], object] | None = None,
) -> list[Delivery]:
    """Send one audience file (or its numbered parts) to `destination`.

    `batches` are the rows to send; an audience without rows still needs its columns, taken
    from `schema`, from a `pyarrow.RecordBatchReader`'s schema, or from an empty batch.
    `claimed` holds the names the run's other files took (see `RunNames`). `earlier` holds,
    by URI, the files earlier attempts of the run recorded as published: they are not sent
    again, even if the receiver has taken them away since (a drop folder that is emptied).
    `references` give `${VAR}` and `${secret:NAME}` in the PGP options their values (the
    process's environment by default). `on_published` hears of each file the moment it is
    published (a part of several, the manifest…), so a run can record it before the next;
    `before_publish` is called before each file is published (a run waits there for the
    record of the file before).
    Returns one `Delivery` per file written: the data files, then the manifest and the success
    file when the destination asks for them. An empty audience sends a file with just the
    header (`file.empty: header`) or nothing at all (`file.empty: none`).
    """
    options = destination.file
    if schema is None and isinstance(batches, pa.RecordBatchReader):
        schema = batches.schema
    found, rows = _first_rows(batches, schema)
    schema = found if found is not None else pa.schema([])
    if rows is None and options.empty == "none":
        return []
    if rows is not None and not len(schema):
        raise TerminalDeliveryError("there are rows to send but no attributes (columns)")
    client = client or open_destination(destination)
    claimed = claimed or RunNames()
    earlier = earlier or {}
    what = f"{names.group_name or 'the file'} for {destination.name!r}"
    note = on_published or _unheard
    ready = before_publish or _nothing
    if isinstance(client, RecordReceiver):
        ready()
        sent = _send_records(destination, client, rows, names, run_id, claimed, earlier, what)
        note(sent)
        return [sent]
    file_schema = formats.output_schema(schema, options)
    recipient = (
        Recipient(
            options.pgp,
            where=f"destination {destination.name!r}",
            environ=os.environ if references is None else references,
        )
        if options.pgp is not None
        else None
    )
    try:
        return _deliver_files(
            destination,
            client,
            rows,
            file_schema,
            names,
            run_id,
            claimed,
            earlier,
            what,
            recipient,
            note,
            ready,
        )
    finally:
        if recipient is not None:
            recipient.close()


def _deliver_files(
    destination: Destination,
    client: DestinationClient,
    rows: Iterator[pa.RecordBatch] | None,
    file_schema: pa.Schema,
    names: NameValues,
    run_id: str,
    claimed: RunNames,
    earlier: Mapping[str, EarlierFile],
    what: str,
    recipient: Recipient | None,
    note: Callable[[Delivery], object],
    ready: Callable[[], object],
) -> list[Delivery]:
    options = destination.file
    prepared = formats.prepare(rows if rows is not None else iter(()), options)

    def encoder(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
        return formats.encode(batches, file_schema, options)

    parts = packaging.split(prepared, options.split_rows, options.split_bytes, encoder)
    send = _send_bundle if options.bundled else _send_parts
    deliveries = send(
        destination, client, parts, names, run_id, claimed, earlier, what, recipient, note, ready
    )
    if options.manifest:
        deliveries.append(
            _publish_manifest(
                destination, deliveries, names, run_id, client, claimed, what, earlier, ready
            )
        )
        note(deliveries[-1])
    if options.success_file:
        # Last of all: its presence tells the receiver that every other file is complete.
        name = _set_name(destination, names, run_id, packaging.SUCCESS_SUFFIX)
        claimed.claim(client, name, f"the success file of {what}")
        known = earlier.get(client.location(name)) if earlier else None
        if known is None:
            ready()
            published = client.publish(name, [], run_id=run_id)
            deliveries.append(_delivery(destination, name, published, 0, "success"))
        else:
            deliveries.append(_earlier(destination, name, known, "success"))
        note(deliveries[-1])
    return deliveries


def _unheard(delivery: Delivery) -> None:
    del delivery


def _nothing() -> None:
    """No one waits before a file is published."""


def _publish(
    client: DestinationClient,
    name: str,
    packaged: Iterator[bytes],
    run_id: str,
    recipient: Recipient | None,
) -> PublishedObject:
    """Publish one file's packaged bytes, encrypted for `recipient` if there is one."""
    if recipient is not None:
        packaged = recipient.encrypt(packaged)
    chunks = _prefetched(packaged)
    try:
        return client.publish(name, chunks, run_id=run_id)
    finally:
        # Stop the encoding thread now, even if publishing failed half-way and a traceback
        # still holds on to the chunks.
        chunks.close()


def _send_parts(
    destination: Destination,
    client: DestinationClient,
    parts: Iterator[packaging.Part],
    names: NameValues,
    run_id: str,
    claimed: RunNames,
    earlier: Mapping[str, EarlierFile],
    what: str,
    recipient: Recipient | None,
    note: Callable[[Delivery], object],
    ready: Callable[[], object],
) -> list[Delivery]:
    """Each part as a file of its own, each heard of (`note`) as soon as it is published."""
    options = destination.file
    deliveries: list[Delivery] = []
    for part in parts:
        name = _data_name(destination, names, run_id, part.number)
        claimed.claim(client, name, f"part {part.number} of {what}")
        known = earlier.get(client.location(name)) if earlier else None
        if known is not None:
            part.skip(known.rows)
            deliveries.append(_earlier(destination, name, known, "data"))
            note(deliveries[-1])
            continue
        member = naming.member_name(name, options.format, options.compression)
        packaged = packaging.package(
            part.encoded(), options.compression, member=member, mtime=names.now
        )
        ready()
        published = _publish(client, name, packaged, run_id, recipient)
        part.drain()
        deliveries.append(_delivery(destination, name, published, part.rows, "data"))
        note(deliveries[-1])
    return deliveries


def _send_bundle(
    destination: Destination,
    client: DestinationClient,
    parts: Iterator[packaging.Part],
    names: NameValues,
    run_id: str,
    claimed: RunNames,
    earlier: Mapping[str, EarlierFile],
    what: str,
    recipient: Recipient | None,
    note: Callable[[Delivery], object],
    ready: Callable[[], object],
) -> list[Delivery]:
    """Every part as a member of one tar archive: one file to publish, whole or not at all."""
    options = destination.file
    name = _data_name(destination, names, run_id, 1)
    claimed.claim(client, name, what)
    known = earlier.get(client.location(name)) if earlier else None
    if known is not None:
        for _part in parts:  # each part is drained as the next is taken
            pass
        found = _earlier(destination, name, known, "data")
        note(found)
        return [found]
    taken: list[packaging.Part] = []

    def members() -> Iterator[tuple[str, Iterable[bytes]]]:
        suffix = naming.extension(options.format, "none")
        for part in parts:
            taken.append(part)
            yield _part_name(destination, names, run_id, part.number, suffix), part.encoded()

    packaged = packaging.bundle(members(), options.compression, mtime=names.now)
    ready()
    published = _publish(client, name, packaged, run_id, recipient)
    for part in parts:  # the archive was there already: count the rows it holds
        taken.append(part)
    bundled = _delivery(destination, name, published, sum(p.rows for p in taken), "data")
    note(bundled)
    return [bundled]


def discard_unfinished(
    destination: Destination, names: NameValues, *, run_id: str, client: DestinationClient
) -> int:
    """Remove what a dead attempt of run `run_id` left half-written of one file; how many
    leftovers there were. Parts are published in order, so only the first part not published
    (and the manifest and success file, written last) can have been under way."""
    number = 1
    while client.exists(name := _data_name(destination, names, run_id, number)):
        if not destination.file.split or destination.file.bundled:
            break
        number += 1
    removed = client.discard(name)
    for suffix in (packaging.MANIFEST_SUFFIX, packaging.SUCCESS_SUFFIX):
        removed += client.discard(_set_name(destination, names, run_id, suffix))
    return removed
