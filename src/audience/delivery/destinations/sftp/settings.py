"""Settings of an `sftp` destination: the server, its host key, the login and the folder."""

from __future__ import annotations

import posixpath
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from audience.definitions.base import DestinationSettings
from audience.definitions.references import CONTROL_CHARACTERS, reference_only


class SftpSettings(DestinationSettings):
    """A folder on an SFTP server. The server's host key is checked: `host_key` (its public
    key line, `ssh-ed25519 AAAA…`), else the `known_hosts` file (default ~/.ssh/known_hosts).
    Log in with `private_key_file` (a key file on this machine), `private_key` (the key's text,
    a `${VAR}`) or `password` (a `${VAR}`)."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"password", "private_key"})

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    folder: str = "."
    password: str | None = None
    private_key: str | None = None
    private_key_file: str | None = None
    host_key: str | None = None
    known_hosts: str | None = None
    timeout_seconds: float = Field(default=30, gt=0, le=600)

    @field_validator("password", "private_key")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return reference_only(value, info)

    @field_validator("host", "user", "folder")
    @classmethod
    def _visible(cls, value: str) -> str:
        if CONTROL_CHARACTERS.search(value):
            raise ValueError("cannot contain control characters")
        return value

    @model_validator(mode="after")
    def _one_login(self) -> SftpSettings:
        given = [f for f in ("password", "private_key", "private_key_file") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("give exactly one of password, private_key or private_key_file")
        return self

    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""
        return f"sftp|{self.host}|{self.port}|{posixpath.normpath(self.folder)}"


SETTINGS = SftpSettings
