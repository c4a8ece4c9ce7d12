"""Secrets: destination credentials kept in the metadata store, encrypted with Fernet.

The key is never in the store: it comes from `AUDIENCE__SECRETS__KEY` or a key file (see
`settings.SecretsSettings`), and is read only when a secret is written or read, so commands that
touch no secret need none. Several keys, newest first, make rotation safe: the first encrypts,
any of them decrypts, and `rotate` re-encrypts every secret with the first. A secret's value
leaves this module only through `value`, for expanding `${secret:NAME}` when a destination is
opened; listing shows names and who changed them when, never values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from audience.definitions.references import SECRET_NAME
from audience.errors import InvalidInput, NotFound, SecretKeyError
from audience.shapes import Moment, Shape
from audience.store.audit import AuditLog
from audience.store.models import SecretRecord, aware


def new_key() -> str:
    """A fresh Fernet key, for `AUDIENCE__SECRETS__KEY` or a key file."""
    return Fernet.generate_key().decode("ascii")


def read_keys(key: str | None, key_file: Path | None) -> MultiFernet:
    """The keys from the setting (comma-separated) or the file (one a line), newest first."""
    if key:
        written, where = key.replace(",", "\n"), "AUDIENCE__SECRETS__KEY"
    elif key_file is not None:
        try:
            written, where = key_file.read_text("ascii"), f"secrets.key_file {key_file}"
        except (OSError, UnicodeDecodeError) as error:
            raise SecretKeyError(f"cannot read secrets.key_file {key_file}: {error}") from None
    else:
        raise SecretKeyError(
            "no secret key is set: make one with `audience secret key` and put it in "
            "AUDIENCE__SECRETS__KEY, or in a file outside the workspace named by secrets.key_file"
        )
    lines = [line.strip() for line in written.splitlines() if line.strip()]
    if not lines:
        raise SecretKeyError(f"{where} is empty; make a key with `audience secret key`")
    try:
        return MultiFernet([Fernet(line) for line in lines])
    except ValueError:
        raise SecretKeyError(
            f"{where} is not a list of Fernet keys (32 url-safe base64-encoded bytes each); "
            "make one with `audience secret key`"
        ) from None


def check_secret_name(name: str) -> str:
    """`name` if `${secret:NAME}` can refer to it, else InvalidInput."""
    if not SECRET_NAME.match(name):
        raise InvalidInput(
            "a secret's name starts with a letter or _ and holds up to 200 letters, digits, "
            "_ . or -",
            field="name",
        )
    return name


@dataclass(frozen=True)
class SecretInfo:
    """A secret as listed: its name and who last set it, when."""

    name: str
    updated_at: datetime
    updated_by: str

    def shape(self) -> SecretShape:
        """The secret as `secret list --json` and the API show it: never its value."""
        return SecretShape(name=self.name, updated_at=self.updated_at, updated_by=self.updated_by)

    def to_json(self) -> dict[str, object]:
        """`shape()` as JSON data."""
        return self.shape().model_dump(mode="json")


class SecretShape(Shape):
    """A secret, as listed: its name and who last set it, when; never its value."""

    name: str
    updated_at: Moment
    updated_by: str


class Secrets:
    """The `audience_secrets` table."""

    def __init__(self, sessions: sessionmaker[Session], keys: Callable[[], MultiFernet]) -> None:
        self._sessions = sessions
        self._keys = keys

    def set(self, name: str, value: str, *, actor: str, now: datetime) -> bool:
        """Store `value` under `name`, replacing any; True if the secret is new."""
        check_secret_name(name)
        if not value:
            raise InvalidInput("a secret cannot be empty", field="value")
        ciphertext = self._keys().encrypt(value.encode("utf-8")).decode("ascii")
        with self._sessions() as session, session.begin():
            # Keys that cannot open the secrets already stored are the wrong keys: a secret
            # set with them would be the only one the workspace could read.
            other = session.scalars(
                select(SecretRecord).where(SecretRecord.name != name).limit(1)
            ).first()
            if other is not None:
                self._open(other)
            record = session.get(SecretRecord, name)
            created = record is None
            if record is None:
                session.add(
                    SecretRecord(name=name, ciphertext=ciphertext, updated_at=now, updated_by=actor)
                )
            else:
                record.ciphertext, record.updated_at, record.updated_by = ciphertext, now, actor
            AuditLog.add(
                session,
                at=now,
                actor=actor,
                action="secret.set",
                target=name,
                detail={"created": created},
            )
        return created

    def names(self) -> list[SecretInfo]:
        """Every secret, by name; never a value."""
        with self._sessions() as session:
            return [
                SecretInfo(r.name, aware(r.updated_at), r.updated_by)
                for r in session.scalars(select(SecretRecord).order_by(SecretRecord.name))
            ]

    def remove(self, name: str, *, actor: str, now: datetime) -> None:
        """Delete a secret; NotFound if there is none of that name."""
        with self._sessions() as session, session.begin():
            if session.get(SecretRecord, name) is None:
                raise NotFound(f"secret {name!r} does not exist")
            session.execute(delete(SecretRecord).where(SecretRecord.name == name))
            AuditLog.add(session, at=now, actor=actor, action="secret.remove", target=name)

    def value(self, name: str) -> str | None:
        """The secret's value (None if there is no such secret), for `${secret:NAME}`."""
        with self._sessions() as session:
            record = session.get(SecretRecord, name)
            if record is None:
                return None
            return self._open(record).decode("utf-8")

    def rotate(self, *, actor: str, now: datetime) -> int:
        """Re-encrypt every secret with the newest key; how many there were."""
        keys = self._keys()
        with self._sessions() as session, session.begin():
            records = list(session.scalars(select(SecretRecord)))
            for record in records:
                self._open(record)  # names the secret the keys cannot open
                record.ciphertext = keys.rotate(record.ciphertext.encode("ascii")).decode("ascii")
            AuditLog.add(
                session,
                at=now,
                actor=actor,
                action="secret.rotate",
                target="*",
                detail={"secrets": len(records)},
            )
        return len(records)

    def _open(self, record: SecretRecord) -> bytes:
        try:
            return self._keys().decrypt(record.ciphertext.encode("ascii"))
        except InvalidToken:
            raise SecretKeyError(
                f"secret {record.name!r} cannot be opened with the secret key set: it was "
                "encrypted with another key (keep the old key after the new one until "
                "`audience secret rotate` has run)"
            ) from None
