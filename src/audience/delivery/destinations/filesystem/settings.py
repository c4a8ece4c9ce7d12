"""Settings of a `filesystem` destination: a folder on this machine or a mounted share."""

from __future__ import annotations

import os
import posixpath

from pydantic import Field, field_validator

from audience.definitions.base import DestinationSettings
from audience.definitions.references import CONTROL_CHARACTERS


class FilesystemSettings(DestinationSettings):
    """A folder on this machine (or a mounted share); relative paths are from the workspace."""

    path: str = Field(min_length=1)

    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""
        return f"filesystem|{posixpath.normpath(self.path.replace(os.sep, '/'))}"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if CONTROL_CHARACTERS.search(value):
            raise ValueError("a folder path cannot contain control characters")
        return value


SETTINGS = FilesystemSettings
