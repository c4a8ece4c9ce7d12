"""What every destination does: publish a file atomically, exactly once per run.

A `DestinationClient` writes a file's chunks to a temporary name (or an uncompleted multipart
upload) and makes the final name visible only when every byte is there. The run id goes with the
file (object metadata, or a record beside it); if the final name already holds the file of the
same run — a retried run — that file is returned and nothing is written twice. A name that holds
a file of another run is never overwritten. On any failure nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from audience.definitions.references import REFERENCE, SECRET_PREFIX
from audience.errors import TerminalDeliveryError
from audience.shapes import Shape

if TYPE_CHECKING:
    import re

    import pyarrow as pa

RUN_ID_METADATA = "audience-run-id"
SHA256_METADATA = "audience-sha256"
Role = Literal["data", "manifest", "success"]


class DestinationCheck(Shape):
    """A destination checked: it can be reached and written to (`destination test --json`, and
    the API's answer; a failed check is an error instead)."""

    destination: str
    ok: bool
    address: str
    """Where files go there: a URI ending in `/`."""


@dataclass(frozen=True)
class PublishedObject:
    """A file as it stands at its final name."""

    uri: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class EarlierFile:
    """A file an earlier attempt of the run published, as the run log recorded it."""

    uri: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Delivery:
    """One file delivered by a run: data, or the manifest or success file that accompany it."""

    destination: str
    uri: str
    rows: int
    bytes: int
    sha256: str
    name: str
    role: Role = "data"
    earlier: bool = False
    """Published by an earlier attempt of the run, known from its record: not sent again."""


class DestinationClient(Protocol):
    """An opened destination, ready to receive files."""

    def publish(self, name: str, chunks: Iterable[bytes], *, run_id: str) -> PublishedObject:
        """Write `chunks` as the file `name`, visible only once complete.

        If `name` already holds the file written by `run_id`, return it without writing.
        """
        ...

    def exists(self, name: str) -> bool:
        """Whether a file called `name` is there."""
        ...

    def check(self) -> None:
        """Raise a DeliveryError if files cannot be written here (a missing bucket, a folder
        that cannot be made or written, an endpoint that does not answer); write nothing."""
        ...

    def address(self, name: str) -> str:
        """Where the file `name` would be: equal for two clients exactly when they would
        write to the same place (same folder, same store, bucket and key)."""
        ...

    def discard(self, name: str) -> int:
        """Remove what an unfinished write of `name` left behind (a temporary file, an
        unfinished upload); how many there were. A published file stays."""
        ...

    def location(self, name: str) -> str:
        """The URI the file `name` is published at (`PublishedObject.uri`)."""
        ...


@runtime_checkable
class RecordReceiver(Protocol):
    """The capability of a destination that takes records rather than files (a webhook): it
    is handed the rows themselves, and publishes them under a name as one delivery."""

    def send_records(
        self, name: str, batches: Iterable[pa.RecordBatch], *, run_id: str
    ) -> PublishedObject:
        """Send every row of `batches` as delivery `name` of run `run_id`; sending the same
        name and run again is recognised by the receiver (idempotency keys)."""
        ...

    def address(self, name: str) -> str:
        """Where delivery `name` would go (see `DestinationClient.address`)."""
        ...

    def location(self, name: str) -> str:
        """The URI of delivery `name`."""
        ...


def check_name(name: str) -> str:
    """Return `name` if it is a single safe path segment, else raise TerminalDeliveryError.

    Names come from `naming`, which already makes them safe; destinations check again so that
    nothing can write outside their folder or prefix, whoever calls them.
    """
    if (
        not name
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
        or ".." in name
        or name.startswith(".")
        or not name.isprintable()
        or len(name.encode("utf-8")) > 255
    ):
        raise TerminalDeliveryError(f"unsafe file name {name!r}")
    return name


class ReferenceValues(Mapping[str, str]):
    """What references stand for: `${VAR}` the environment's variable, `${secret:NAME}` the
    stored secret, looked up one at a time and only when a destination refers to it."""

    def __init__(self, environ: Mapping[str, str], secret: Callable[[str], str | None]) -> None:
        self._environ = environ
        self._secret = secret

    def __getitem__(self, reference: str) -> str:
        if reference.startswith(SECRET_PREFIX):
            value = self._secret(reference.removeprefix(SECRET_PREFIX))
            if value is None:
                raise KeyError(reference)
            return value
        return self._environ[reference]

    def __iter__(self) -> Iterator[str]:
        # Secrets are not listed: a mapping of references is for looking up, not for showing.
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def expand(text: str, *, field: str, destination: str, environ: Mapping[str, str]) -> str:
    """Replace each `${VAR}` (and `${secret:NAME}`) in `text` by its value in `environ`.

    Raises TerminalDeliveryError naming the reference (never a value) when one has no value.
    """

    def value(match: re.Match[str]) -> str:
        reference = match.group(1)
        try:
            return environ[reference]
        except KeyError:
            pass
        if reference.startswith(SECRET_PREFIX):
            name = reference.removeprefix(SECRET_PREFIX)
            raise TerminalDeliveryError(
                f"destination {destination!r}: {field} refers to ${{{reference}}}, but no "
                f"secret {name!r} is stored; set it with `audience secret set {name}`"
            )
        raise TerminalDeliveryError(
            f"destination {destination!r}: {field} refers to ${{{reference}}}, "
            "which is not set in the environment"
        )

    return REFERENCE.sub(value, text)
