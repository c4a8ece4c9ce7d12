"""SFTP as a destination, against a real OpenSSH server on loopback (`ssh_server`): complete files
only, once per run, the host key always checked, a dropped connection retried without leaving
half a file."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from audience.cli.main import app
from audience.definitions.destination import Destination
from audience.definitions.loader import validate_data
from audience.delivery.destinations.sftp.client import SftpClient
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver, open_destination
from audience.errors import DefinitionError, TerminalDeliveryError, TransientDeliveryError
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace
from sshserver import SshServer

NAMES = NameValues(
    activation_name="Loyalty", group_name="all", now=datetime(2026, 11, 23, tzinfo=UTC)
)


def sftp_destination(server: SshServer, folder: Path, **settings: Any) -> Destination:
    return Destination.model_validate(
        {
            "name": "drop",
            "type": "sftp",
            "settings": server.settings(folder, **settings),
            "file": {"format": "csv", "filename": "{{ activation_name }}_{{ run_id }}"},
        }
    )


def batches(rows: int) -> pa.Table:
    return pa.table({"amperity_id": [f"id-{i}" for i in range(rows)], "n": list(range(rows))})


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_file_arrives_whole_and_a_retry_finds_it(ssh_server: SshServer, tmp_path: Path) -> None:
    destination = sftp_destination(ssh_server, tmp_path)
    client = open_destination(destination)
    client.check()
    (first,) = deliver(
        destination, batches(5000).to_batches(1000), names=NAMES, run_id="r1", client=client
    )
    (sent,) = visible(tmp_path)
    body = (tmp_path / sent).read_bytes()
    assert first.rows == 5000 and first.bytes == len(body)
    assert first.sha256 == hashlib.sha256(body).hexdigest()
    assert first.uri == f"sftp://127.0.0.1:{ssh_server.port}{tmp_path / sent}"
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 5000 and rows[-1] == {"amperity_id": "id-4999", "n": "4999"}
    # The same run again (a takeover after a crash): recognised, nothing written.
    before = (tmp_path / sent).stat().st_mtime_ns
    (again,) = deliver(
        destination,
        batches(5000).to_batches(),
        names=NAMES,
        run_id="r1",
        client=open_destination(destination),
    )
    assert again.sha256 == first.sha256 and (tmp_path / sent).stat().st_mtime_ns == before
    assert leftovers(tmp_path) == []


def test_a_file_of_another_run_is_never_overwritten(ssh_server: SshServer, tmp_path: Path) -> None:
    client = SftpClient(sftp_destination(ssh_server, tmp_path).settings)  # type: ignore[arg-type]
    client.publish("audience.csv", [b"first\n"], run_id="one")
    with pytest.raises(TerminalDeliveryError, match="not written by this run"):
        client.publish("audience.csv", [b"second\n"], run_id="two")
    assert (tmp_path / "audience.csv").read_bytes() == b"first\n"


def other_key(folder: Path) -> str:
    """The public key line of a new key pair: not the server's."""
    key = folder / "keys" / "other"
    key.parent.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, text = key.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {text}"


def test_a_changed_host_key_fails_terminally_and_sends_nothing(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    expected = other_key(tmp_path)
    destination = sftp_destination(ssh_server, drop, host_key=expected)
    with pytest.raises(TerminalDeliveryError, match=r"127\.0\.0\.1.*host key has changed") as e:
        open_destination(destination).check()
    assert list(drop.iterdir()) == []
    # each key by its SHA256 fingerprint, as `ssh-keygen -l` shows it, so the two can be told apart
    for line in (ssh_server.host_key, expected):
        shown = subprocess.run(
            ["ssh-keygen", "-l", "-f", "-"], input=line, capture_output=True, text=True, check=True
        ).stdout.split()[1]
        assert shown.startswith("SHA256:") and shown in str(e.value)


def test_an_unknown_host_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = ssh_server.settings(tmp_path, known_hosts=str(empty))
    del settings["host_key"]
    destination = Destination.model_validate({"name": "drop", "type": "sftp", "settings": settings})
    with pytest.raises(
        TerminalDeliveryError,
        match=r"host key of \[127\.0\.0\.1\]:\d+ \(ssh-ed25519\) is not known",
    ):
        open_destination(destination).check()


def test_a_refused_login_is_terminal(ssh_server: SshServer, tmp_path: Path) -> None:
    other_key(tmp_path)  # a key pair the server does not know
    destination = sftp_destination(
        ssh_server, tmp_path, private_key_file=str(tmp_path / "keys/other")
    )
    with pytest.raises(TerminalDeliveryError, match="refused the login"):
        open_destination(destination).check()


def test_a_missing_folder_is_terminal(ssh_server: SshServer, tmp_path: Path) -> None:
    destination = sftp_destination(ssh_server, tmp_path / "nowhere")
    with pytest.raises(TerminalDeliveryError, match="nowhere"):
        open_destination(destination).check()


def test_secrets_are_references_and_one_login_is_given(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    settings = ssh_server.settings(tmp_path, password="hunter2")
    with pytest.raises(DefinitionError, match=r"password: .*\$\{VARIABLE\}"):
        validate_data({"kind": "destination", "name": "d", "type": "sftp", "settings": settings})
    settings = ssh_server.settings(tmp_path, password="${SFTP_PASSWORD}")
    with pytest.raises(DefinitionError, match="exactly one of password, private_key"):
        validate_data({"kind": "destination", "name": "d", "type": "sftp", "settings": settings})


class CuttingRelay:
    """A TCP relay to the SSH server that cuts its first connection after `limit` bytes from
    the client (a network dropping mid-file); later connections pass untouched."""

    def __init__(self, port: int, limit: int) -> None:
        self.target, self.limit = port, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = self.limit if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, upstream, limit), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while data := source.recv(65536):
                passed += len(data)
                if limit is not None and passed > limit:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def cutting_relay(ssh_server: SshServer) -> Iterator[CuttingRelay]:
    relay = CuttingRelay(ssh_server.port, limit=400_000)
    yield relay
    relay.close()


def test_a_connection_dropped_mid_file_is_transient_and_leaves_nothing(
    ssh_server: SshServer, cutting_relay: CuttingRelay, tmp_path: Path
) -> None:
    destination = sftp_destination(ssh_server, tmp_path, port=cutting_relay.port)
    rows = batches(200_000)
    with pytest.raises(TransientDeliveryError):
        deliver(
            destination,
            rows.to_batches(10_000),
            names=NAMES,
            run_id="r1",
            client=open_destination(destination),
        )
    assert visible(tmp_path) == []  # nothing half-delivered
    # The retry (a new connection) cleans up what the dropped one left, and delivers once.
    (delivered,) = deliver(
        destination,
        rows.to_batches(10_000),
        names=NAMES,
        run_id="r1",
        client=open_destination(destination),
    )
    assert cutting_relay.connections == 2
    assert visible(tmp_path) == [delivered.uri.rsplit("/", 1)[1]] and leftovers(tmp_path) == []
    assert len((tmp_path / visible(tmp_path)[0]).read_bytes().splitlines()) == 200_001


def test_a_campaign_and_an_orchestration_deliver_over_sftp(
    fresh_workspace: Workspace, ssh_server: SshServer, tmp_path: Path
) -> None:
    ws = fresh_workspace
    drop = tmp_path / "drop"
    drop.mkdir()
    documents = [
        {
            "kind": "destination",
            "name": "partner",
            "type": "sftp",
            "settings": ssh_server.settings(drop),
            "file": {
                "format": "csv",
                "compression": "gzip",
                "split_rows": 300,
                "success_file": True,
            },
            "default_attributes": ["amperity_id", "email"],
        },
        {
            "kind": "segment",
            "name": "Gold",
            "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
        },
        {
            "kind": "campaign",
            "name": "Gold offer",
            "audience": {"include": ["Gold"]},
            "treatments": [{"name": "Offer", "percent": 100, "destinations": ["partner"]}],
        },
        {
            "kind": "orchestration",
            "name": "Tiers",
            "query": "select loyalty_tier, count(*) as customers from customer_360 group by 1",
            "destination": "partner",
            "file": {"split_rows": None, "compression": "none"},
        },
    ]
    ws.apply_documents([validate_data(d) for d in documents])
    campaign = ws.campaign_run("Gold offer")
    assert campaign.status == "succeeded", campaign.error
    parts = [d for d in campaign.deliveries if d.role == "data"]
    assert len(parts) == -(-campaign.counts["sent"] // 300) > 1
    orchestration = ws.run_now("orchestration", "Tiers")
    assert orchestration.status == "succeeded", orchestration.error
    names = visible(drop)
    assert len(names) == len(campaign.deliveries) + len(orchestration.deliveries) == 5
    assert leftovers(drop) == []
    assert any(n.endswith(".DONE") for n in names)
    (tiers,) = [n for n in names if n.startswith("Tiers") and n.endswith(".csv")]
    assert len((drop / tiers).read_text().splitlines()) == orchestration.counts["rows"] + 1


def test_destination_test_connects_without_sending_and_names_what_is_wrong(
    fresh_workspace: Workspace, ssh_server: SshServer, moto_endpoint: str, tmp_path: Path
) -> None:
    ws = fresh_workspace
    drop = tmp_path / "drop"
    drop.mkdir()
    documents = [
        {
            "kind": "destination",
            "name": "partner",
            "type": "sftp",
            "settings": ssh_server.settings(drop),
        },
        {
            "kind": "destination",
            "name": "stranger",
            "type": "sftp",
            "settings": ssh_server.settings(drop, host_key=other_key(tmp_path)),
        },
        {
            "kind": "destination",
            "name": "no bucket",
            "type": "s3",
            "settings": {
                "bucket": "no-such-bucket",
                "endpoint_url": moto_endpoint,
                "region": "us-east-1",
            },
        },
    ]
    ws.apply_documents([validate_data(d) for d in documents])
    ws.close()
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    cli, where = CliRunner(), ["-w", str(ws.directory)]
    ready = cli.invoke(app, ["destination", "test", "partner", "--json", *where])
    assert ready.exit_code == 0, ready.output
    assert json.loads(ready.stdout) == {
        "destination": "partner",
        "ok": True,
        "address": f"sftp://127.0.0.1:{ssh_server.port}{drop}/",
    }
    assert list(drop.iterdir()) == []  # nothing sent, nothing left
    for name, problem in (
        ("stranger", "host key has changed"),
        ("no bucket", "bucket no-such-bucket does not exist"),
    ):
        refused = cli.invoke(app, ["destination", "test", name, *where])
        assert refused.exit_code == 1 and problem in refused.stderr, refused.output
        assert len(refused.stderr.strip().splitlines()) == 1
