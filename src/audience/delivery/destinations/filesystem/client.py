"""A folder as a destination.

A file is written to a hidden temporary name in the same folder (`.name.xxxxxxxx.tmp`), flushed
to disk, then renamed over its final name with `os.replace` — atomic within one file system, so a
reader sees either no file or all of it. Just before the rename the name is looked at again, so
a file another run published under it meanwhile (two activations writing one name) is not
replaced; only a rename in that same instant could still race. Which run wrote each file is
recorded in a small JSON record in the folder's `.audience/` subfolder (no extended attributes
needed, which many file systems and shares lack), written before the rename: a retried run
finds its own file there.

The disk is flushed while the file is written (`Writeback`): a background thread asks the
kernel to write what has piled up every `WRITEBACK_EVERY` bytes, so the flush before the rename
finds little left to do instead of a whole file's worth (a fifth of a second for 500 MB here).

A writer killed half-way (SIGKILL, a power cut) leaves its temporary files behind; the next
attempt to publish the same name removes them before it writes. Only the run that owns a name
writes it, so whatever temporary file of that name is there belongs to an attempt that died (or
lost its lease: its rename then fails, and it ends).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from audience.delivery.destinations.base import PublishedObject, check_name
from audience.delivery.destinations.filesystem.settings import FilesystemSettings
from audience.delivery.packaging import Meter
from audience.errors import DeliveryError, TerminalDeliveryError, TransientDeliveryError

RECORDS_FOLDER = ".audience"
WRITEBACK_EVERY = 32 * 1024 * 1024
"""Bytes written between two background flushes of a file being published."""
# Failures that retrying cannot mend (EEXIST: a file where the folder should be); anything else
# (a full disk, an I/O error, a share that went away) may pass.
_TERMINAL_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.EEXIST,
    }
)


def _delivery_error(error: OSError, what: str) -> DeliveryError:
    kind = TerminalDeliveryError if error.errno in _TERMINAL_ERRNOS else TransientDeliveryError
    return kind(f"{what}: {error.strerror or error}")


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: the folder's entry must reach the disk, not only the file."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Writeback:
    """Flushes a file being written to disk on a thread of its own, every `WRITEBACK_EVERY`
    bytes, so that waiting for the disk overlaps with producing the rest. A flush that fails is
    raised by `close` (the kernel may not report it to a later flush: the data would be lost
    while the file looked durable)."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._since_flush = 0
        self._wanted = threading.Event()
        self._closing = False
        self._error: OSError | None = None
        self.flushed = threading.Event()
        """Set once a background flush has been tried."""
        self._thread = threading.Thread(target=self._flush, name="audience-writeback", daemon=True)
        self._thread.start()

    def wrote(self, size: int) -> None:
        """`size` more bytes reached the file; raises what a flush met (the rest of the file
        need not be written)."""
        if self._error is not None:
            raise self._error
        self._since_flush += size
        if self._since_flush >= WRITEBACK_EVERY:
            self._since_flush = 0
            self._wanted.set()  # a flush under way takes this with it, or runs again

    def _flush(self) -> None:
        flush = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                flush(self._descriptor)
            except OSError as error:
                self._error = error
                return
            finally:
                self.flushed.set()

    def close(self) -> None:
        """Stop flushing (before the descriptor is closed); raise what a flush met."""
        self._stop()
        if self._error is not None:
            raise self._error

    def _stop(self) -> None:
        self._closing = True
        self._wanted.set()
        self._thread.join()

    def __enter__(self) -> Writeback:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        else:
            self._stop()  # the error under way says what went wrong


class FilesystemClient:
    """Publishes files into one folder (created when the first file arrives)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _record_path(self, name: str) -> Path:
        return self.folder / RECORDS_FOLDER / f"{name}.json"

    def _published(self, name: str, run_id: str) -> PublishedObject | None:
        """The file this run already wrote at `name`, None if there is none; raises if another
        run's file is there."""
        target = self.folder / name
        if not target.exists():
            return None
        try:
            record = json.loads(self._record_path(name).read_text("utf-8"))
        except (OSError, ValueError):
            record = {}
        if record.get("run_id") != run_id:
            raise TerminalDeliveryError(
                f"{target} already exists and was not written by this run; "
                "refusing to overwrite it (make names unique, e.g. with {{ run_id }} or the time)"
            )
        return PublishedObject(target.resolve().as_uri(), int(record["bytes"]), record["sha256"])

    def _written_by_another_run(self, name: str, run_id: str) -> bool:
        """Whether the file at `name` is there, and another run's."""
        try:
            self._published(name, run_id)
        except TerminalDeliveryError:
            return True
        return False

    def check(self) -> None:
        """The folder exists (or can be made) and this process may write into it."""
        if self.folder.exists() and not self.folder.is_dir():
            raise TerminalDeliveryError(f"cannot write into {self.folder}: it is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as error:
            raise _delivery_error(error, f"cannot write into {self.folder}") from error

    def exists(self, name: str) -> bool:
        """Whether the folder holds a file called `name`."""
        return (self.folder / check_name(name)).exists()

    def address(self, name: str) -> str:
        """The file's absolute `file://` URI (links resolved, so two spellings of one folder
        give one address)."""
        return (self.folder / check_name(name)).resolve().as_uri()

    def location(self, name: str) -> str:
        """The file's absolute `file://` URI."""
        return self.address(name)

    def publish(self, name: str, chunks: Iterable[bytes], *, run_id: str) -> PublishedObject:
        """Write the file under a temporary name, then rename it to `name` (see the module)."""
        target = self.folder / check_name(name)
        try:
            published = self._published(name, run_id)
            if published is not None:
                return published
            self._record_path(name).parent.mkdir(parents=True, exist_ok=True)
            self.discard(name)
            descriptor, temporary = tempfile.mkstemp(
                prefix=f".{name}.", suffix=".tmp", dir=self.folder
            )
        except OSError as error:
            raise _delivery_error(error, f"cannot write into {self.folder}") from error
        try:
            meter = Meter(chunks)
            with os.fdopen(descriptor, "wb") as file:
                with Writeback(descriptor) as writeback:
                    for chunk in meter:
                        file.write(chunk)
                        writeback.wrote(len(chunk))
                file.flush()
                os.fsync(file.fileno())
            # mkstemp makes the file private to its owner; a delivered file is for others to read.
            os.chmod(temporary, 0o644)
            # Looked at again just before the rename: a file of that name another run (a
            # second activation writing the same name) published meanwhile is never replaced.
            # An attempt of this run that took it over and published it first wins.
            theirs = self._published(name, run_id)
            if theirs is not None:
                os.unlink(temporary)
                return theirs
            record = {"run_id": run_id, "bytes": meter.bytes, "sha256": meter.sha256}
            self._write_record(name, record)
            os.replace(temporary, target)
            _fsync_folder(self.folder)
        except OSError as error:
            if error.errno == errno.ENOENT and self._written_by_another_run(name, run_id):
                # Our temporary file was removed by the writer whose file now holds the name:
                # two activations wrote it at once (an attempt of this same run, or a folder
                # that went away, is a passing failure instead).
                raise TerminalDeliveryError(
                    f"cannot write {target}: another run wrote a file of that name at the same "
                    "time (make names unique, e.g. with {{ run_id }} or the activation's name)"
                ) from error
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise _delivery_error(error, f"cannot write {target}") from error
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return PublishedObject(target.resolve().as_uri(), meter.bytes, meter.sha256)

    def discard(self, name: str) -> int:
        """Remove the temporary files (data and record) an unfinished attempt at `name` left;
        how many there were. A published file stays."""
        removed = 0
        for folder, base in ((self.folder, name), (self._record_path(name).parent, f"{name}.json")):
            # mkstemp's names: the prefix, eight random characters, the suffix.
            stale = re.compile(rf"\.{re.escape(base)}\.[a-z0-9_]{{8}}\.tmp")
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if stale.fullmatch(entry.name):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(entry.path)
                                removed += 1
            except FileNotFoundError:
                continue  # nothing was ever written here
            except OSError as error:
                raise _delivery_error(error, f"cannot clean up {self.folder}") from error
        return removed

    def _write_record(self, name: str, record: dict[str, object]) -> None:
        path = self._record_path(name)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{name}.json.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(record, file)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def open_client(settings: FilesystemSettings, root: Path | None) -> FilesystemClient:
    """A client for the settings' folder; a relative one is in `root` (the workspace)."""
    folder = Path(settings.path).expanduser()
    if not folder.is_absolute() and root is not None:
        folder = root / folder
    return FilesystemClient(folder)
