"""What every model of a definition shares, and the base of each destination type's settings."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class DefinitionModel(BaseModel):
    """A part of a definition: unknown keys are refused and a loaded value never changes. A
    model's validator is built when it is first used (`defer_build`), so a command pays only for
    the kinds it reads, not for every model at start."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class DestinationSettings(DefinitionModel):
    """The `settings:` of one destination type; each type's package defines its own."""

    TAKES_RECORDS: ClassVar[bool] = False
    """Whether the destination takes records (a webhook) rather than files."""

    @abstractmethod
    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""
