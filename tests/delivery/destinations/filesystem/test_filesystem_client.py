"""A folder as destination: complete files only, once per run, never outside the folder."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from audience.definitions.destination import Destination
from audience.delivery.destinations.filesystem import client as filesystem
from audience.delivery.destinations.filesystem.client import FilesystemClient, Writeback
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver, open_destination
from audience.errors import TerminalDeliveryError, TransientDeliveryError

MakeDestination = Callable[..., Destination]


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_failure_while_writing_leaves_nothing(tmp_path: Path) -> None:
    client = FilesystemClient(tmp_path)

    def chunks() -> Iterator[bytes]:
        yield b"amperity_id\n"
        raise RuntimeError("the engine went away")

    with pytest.raises(RuntimeError):
        client.publish("audience.csv", chunks(), run_id="r")
    assert _visible(tmp_path) == []
    assert _hidden(tmp_path) == [".audience"]  # no temporary file left
    assert list((tmp_path / ".audience").iterdir()) == []


def test_a_file_flushed_while_it_is_written_arrives_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background flushes (here every 10 bytes) change nothing in what arrives."""
    monkeypatch.setattr(filesystem, "WRITEBACK_EVERY", 10)
    started: list[Writeback] = []

    def writeback(descriptor: int) -> Writeback:
        started.append(Writeback(descriptor))
        return started[-1]

    monkeypatch.setattr(filesystem, "Writeback", writeback)
    chunks = [f"{n:04d},customer-{n}\n".encode() for n in range(2000)]

    def produced() -> Iterator[bytes]:
        yield from chunks[:100]
        assert started[0].flushed.wait(timeout=10)  # flushed while the file is written
        yield from chunks[100:]

    published = FilesystemClient(tmp_path).publish("big.csv", produced(), run_id="r")
    data = (tmp_path / "big.csv").read_bytes()
    assert data == b"".join(chunks)
    assert (published.bytes, published.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_background_flush_that_fails_is_raised() -> None:
    """A flush the kernel refuses (a pipe cannot be flushed) is not lost on its thread: the
    file must not be taken as durable."""
    read, write = os.pipe()
    try:
        writeback = Writeback(write)
        writeback.wrote(filesystem.WRITEBACK_EVERY)
        writeback.flushed.wait(timeout=10)
        with pytest.raises(OSError):
            writeback.close()
    finally:
        os.close(read)
        os.close(write)


@pytest.mark.parametrize(
    ("clears_ours", "refused"),
    [
        (True, "another run wrote a file of that name"),  # it removed our temporary file
        (False, "not written by this run"),  # it had cleared up before we began: both finish
    ],
)
def test_two_runs_writing_one_name_at_once_never_replace_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clears_ours: bool, refused: str
) -> None:
    """Two activations whose files have the same name, sent at the same moment: the other
    writer takes the name; this one fails at once saying why (not as a passing hitch), and
    never replaces the other's file."""
    client, other = FilesystemClient(tmp_path), FilesystemClient(tmp_path)
    if not clears_ours:
        monkeypatch.setattr(other, "discard", lambda name: 0)

    def chunks() -> Iterator[bytes]:
        yield b"amperity_id\n1\n"
        other.publish("same.csv", iter([b"amperity_id\n2\n"]), run_id="other")
        yield b"3\n"

    with pytest.raises(TerminalDeliveryError, match=refused):
        client.publish("same.csv", chunks(), run_id="first")
    assert (tmp_path / "same.csv").read_bytes() == b"amperity_id\n2\n"  # the other's, whole
    assert _hidden(tmp_path) == [".audience"]


def test_an_attempt_whose_run_was_taken_over_meanwhile_fails_in_passing(tmp_path: Path) -> None:
    """The attempt that took the run over wrote the file under the same name: the run's file is
    there, so the attempt that lost its lease fails as a passing failure, not as a collision."""
    client = FilesystemClient(tmp_path)

    def chunks() -> Iterator[bytes]:
        yield b"amperity_id\n1\n"
        client.publish("same.csv", iter([b"amperity_id\n1\n"]), run_id="R")
        yield b"2\n"

    with pytest.raises(TransientDeliveryError):
        client.publish("same.csv", chunks(), run_id="R")
    assert (tmp_path / "same.csv").read_bytes() == b"amperity_id\n1\n"


def test_the_file_appears_only_when_complete(tmp_path: Path) -> None:
    client = FilesystemClient(tmp_path)
    seen_while_writing: list[list[str]] = []

    def chunks() -> Iterator[bytes]:
        for index in range(3):
            seen_while_writing.append(_visible(tmp_path))
            yield f"line {index}\n".encode()

    published = client.publish("audience.csv", chunks(), run_id="r")
    assert seen_while_writing == [[], [], []]
    assert (tmp_path / "audience.csv").read_bytes() == b"line 0\nline 1\nline 2\n"
    assert published.uri == (tmp_path / "audience.csv").resolve().as_uri()
    assert published.sha256 == hashlib.sha256(b"line 0\nline 1\nline 2\n").hexdigest()
    assert (tmp_path / "audience.csv").stat().st_mode & 0o777 == 0o644


def test_retry_of_the_same_run_writes_nothing(tmp_path: Path) -> None:
    client = FilesystemClient(tmp_path)
    first = client.publish("a.csv", [b"one\n"], run_id="run-1")
    before = (tmp_path / "a.csv").stat().st_mtime_ns

    def must_not_be_read() -> Iterator[bytes]:
        raise AssertionError("a delivered file was written again")
        yield b""

    assert client.publish("a.csv", must_not_be_read(), run_id="run-1") == first
    assert (tmp_path / "a.csv").stat().st_mtime_ns == before


def test_another_run_never_overwrites(tmp_path: Path) -> None:
    client = FilesystemClient(tmp_path)
    client.publish("a.csv", [b"one\n"], run_id="run-1")
    with pytest.raises(TerminalDeliveryError, match="not written by this run"):
        client.publish("a.csv", [b"two\n"], run_id="run-2")
    (tmp_path / "b.csv").write_text("made by hand\n")
    with pytest.raises(TerminalDeliveryError, match="not written by this run"):
        client.publish("b.csv", [b"two\n"], run_id="run-2")
    assert (tmp_path / "a.csv").read_bytes() == b"one\n"
    assert (tmp_path / "b.csv").read_text() == "made by hand\n"


def test_names_that_leave_the_folder_are_refused(tmp_path: Path) -> None:
    client = FilesystemClient(tmp_path / "out")
    for name in ["../escape.csv", "sub/dir.csv", "..", ".hidden", "", "a\\b"]:
        with pytest.raises(TerminalDeliveryError, match="unsafe file name"):
            client.publish(name, [b"x"], run_id="r")
    assert list(tmp_path.iterdir()) == []


def test_folder_that_is_a_file_is_a_terminal_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    client = FilesystemClient(tmp_path / "blocker")
    with pytest.raises(TerminalDeliveryError, match="cannot write"):
        client.publish("a.csv", [b"x"], run_id="r")


def test_relative_folders_are_taken_from_the_workspace(
    tmp_path: Path, names: Callable[..., NameValues]
) -> None:
    destination = Destination.model_validate(
        {"name": "local", "type": "filesystem", "settings": {"path": "exports/${TEAM}"}}
    )
    client = open_destination(destination, root=tmp_path, environ={"TEAM": "crm"})
    deliver(
        destination, pa.table({"id": ["c1"]}).to_batches(), names=names(), run_id="r", client=client
    )
    assert _visible(tmp_path / "exports" / "crm") == [
        "Spring_Churn_Prevention_Offer_A_20261201.csv"
    ]


def test_unsafe_activation_names_stay_in_the_folder(
    folder_destination: MakeDestination, names: Callable[..., NameValues], tmp_path: Path
) -> None:
    table = pa.table({"id": ["c1"]})
    for activation in ["../../evil", "/etc/cron.d/x", "a\x00b", "🎉" * 100, "y" * 300]:
        deliver(folder_destination(), table.to_batches(), names=names(activation), run_id="r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len(_visible(tmp_path / "out")) == 5


def test_a_failed_upload_stops_the_encoding_thread(
    folder_destination: MakeDestination, names: Callable[..., NameValues]
) -> None:
    class FailingAfterOneChunk:
        def publish(self, name: str, chunks: Iterator[bytes], *, run_id: str) -> Any:
            next(iter(chunks))
            raise TransientDeliveryError("connection reset")

        def exists(self, name: str) -> bool:
            return False

        def address(self, name: str) -> str:
            return name

    rows = pa.table({"id": [str(i) for i in range(200_000)]})
    with pytest.raises(TransientDeliveryError) as caught:
        deliver(
            folder_destination({"compression": "gzip"}),
            rows.to_batches(max_chunksize=1000),
            names=names(),
            run_id="r",
            client=FailingAfterOneChunk(),
        )
    assert caught.value is not None  # the traceback is still alive here
    assert [t for t in threading.enumerate() if t.name == "audience-encode"] == []
