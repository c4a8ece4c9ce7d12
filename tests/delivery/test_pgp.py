"""PGP encryption of delivered files: what arrives decrypts, with the recipient's private key,
to exactly the bytes an unencrypted delivery sends; keys that cannot be encrypted to are refused
when the destination is applied, naming why."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gnupg
import pyarrow as pa
import pytest
from sqlglot import exp

from audience.definitions.destination import Destination
from audience.definitions.loader import validate_data
from audience.delivery.naming import NameValues
from audience.delivery.shipment import deliver
from audience.errors import InvalidValue
from audience.workspace import Workspace

NAMES = NameValues(
    activation_name="Loyalty", group_name="all", now=datetime(2026, 11, 23, tzinfo=UTC)
)


_HOMES: list[Path] = []


@pytest.fixture(autouse=True)
def _no_agents_left() -> Iterator[None]:
    """gpg starts an agent for each key-holding home it uses; stop them with the test."""
    yield
    while _HOMES:
        home = _HOMES.pop()
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def keyring(
    home: Path, *, faked_time: str | None = None, expire: str | int = 0
) -> tuple[gnupg.GPG, str]:
    """A recipient's key pair in a GnuPG home of the test's own; its public key, armored."""
    home.mkdir(mode=0o700)
    _HOMES.append(home)
    gpg = gnupg.GPG(
        gnupghome=str(home), options=["--faked-system-time", faked_time] if faked_time else None
    )
    key = gpg.gen_key(
        gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            subkey_type="ECDH",
            subkey_curve="cv25519",
            name_email="partner@example.com",
            no_protection=True,
            expire_date=expire,
        )
    )
    return gnupg.GPG(gnupghome=str(home)), str(gpg.export_keys(key.fingerprint))


def folder(path: Path, **file: Any) -> Destination:
    return Destination.model_validate(
        {
            "name": "partner",
            "type": "filesystem",
            "settings": {"path": str(path)},
            "file": {"format": "csv", "filename": "{{ activation_name }}", **file},
        }
    )


def table(rows: int) -> pa.Table:
    return pa.table({"amperity_id": [f"id-{i}" for i in range(rows)], "name": ["Zoë"] * rows})


@pytest.mark.parametrize(("armor", "suffix"), [(False, ".pgp"), (True, ".asc")])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_an_encrypted_file_decrypts_to_the_plain_files_bytes(
    tmp_path: Path, armor: bool, suffix: str, compression: str
) -> None:
    gpg, public = keyring(tmp_path / "partner-keys")
    rows = table(30_000)
    plain_dir, secret_dir = tmp_path / "plain", tmp_path / "secret"
    (plain,) = deliver(
        folder(plain_dir, compression=compression), rows.to_batches(7000), names=NAMES, run_id="r"
    )
    options = {"pgp": {"public_key": public, "armor": armor}, "compression": compression}
    encrypted = deliver(
        folder(secret_dir, **options, manifest=True, success_file=True),
        rows.to_batches(7000),
        names=NAMES,
        run_id="r",
    )
    data, manifest, done = encrypted
    arrived = secret_dir / Path(data.uri).name
    assert arrived.name == Path(plain.uri).name + suffix
    assert manifest.role == "manifest" and done.role == "success"
    sent = arrived.read_bytes()
    assert sent.startswith(b"-----BEGIN PGP MESSAGE-----") == armor
    decrypted = gpg.decrypt(sent)
    assert decrypted.ok, decrypted.status
    assert decrypted.data == (plain_dir / Path(plain.uri).name).read_bytes()
    listed = json.loads((secret_dir / Path(manifest.uri).name).read_text())
    (entry,) = listed["files"]
    assert entry["name"] == arrived.name and entry["bytes"] == len(sent) == data.bytes
    assert list((tmp_path / "secret").glob(".*.tmp")) == []


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        ("expired", "expired on 2020-01-02"),
        ("private", "this is a private key"),
        ("garbage", "not a PGP public key"),
    ],
)
def test_a_key_that_cannot_be_encrypted_to_is_refused_when_applied(
    fresh_workspace: Workspace, tmp_path: Path, make: str, problem: str
) -> None:
    if make == "expired":
        _, key = keyring(tmp_path / "old", faked_time="20200101T000000", expire="1d")
    elif make == "private":
        gpg, _ = keyring(tmp_path / "keys")
        key = str(
            gpg.export_keys(gpg.list_keys()[0]["fingerprint"], secret=True, expect_passphrase=False)
        )
    else:
        key = (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            "bm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n"
        )
    destination = {
        "kind": "destination",
        "name": "partner",
        "type": "filesystem",
        "settings": {"path": str(tmp_path / "out")},
        "file": {"pgp": {"public_key": key}},
    }
    with pytest.raises(InvalidValue, match=problem) as refused:
        fresh_workspace.apply_documents([validate_data(destination)])
    assert refused.value.field == "file.pgp"
    assert "PRIVATE KEY" not in str(refused.value)
    assert fresh_workspace.store.definition("destination", "partner") is None


def test_an_orchestration_sends_an_encrypted_split_extract(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    gpg, public = keyring(tmp_path / "partner-keys")
    key_file = tmp_path / "partner.asc"
    key_file.write_text(public)
    out = tmp_path / "out"
    documents = [
        {
            "kind": "destination",
            "name": "partner",
            "type": "filesystem",
            "settings": {"path": str(out)},
            "file": {"format": "csv", "compression": "gzip", "success_file": True},
        },
        {
            "kind": "orchestration",
            "name": "Nightly extract",
            "query": "select amperity_id, email from customer_360 order by amperity_id",
            "destination": "partner",
            "file": {"split_rows": 1000, "pgp": {"public_key_file": str(key_file)}},
        },
    ]
    fresh_workspace.apply_documents([validate_data(d) for d in documents])
    run = fresh_workspace.run_now("orchestration", "Nightly extract")
    assert run.status == "succeeded", run.error
    parts = sorted(out.glob("*.csv.gz.pgp"))
    assert len(parts) == -(-run.counts["rows"] // 1000) > 1
    lines = []
    for part in parts:
        decrypted = gpg.decrypt(part.read_bytes())
        assert decrypted.ok, decrypted.status
        body = gzip.decompress(decrypted.data).decode().splitlines()
        assert body[0] == "amperity_id,email"
        lines.extend(body[1:])
    expected = fresh_workspace.engine.rows(exp.select("amperity_id", "email").from_("customer_360"))
    assert sorted(lines) == sorted(f"{r['amperity_id']},{r['email'] or ''}" for r in expected)
    assert len(list(out.glob("*.DONE"))) == 1
