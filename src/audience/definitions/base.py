"""What every model of a definition shares, and the base of each destination type's settings."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from audience.definitions.references import SECRET_PREFIX, expanded, references


class DefinitionModel(BaseModel):
    """A part of a definition: unknown keys are refused and a loaded value never changes. A
    model's validator is built when it is first used (`defer_build`), so a command pays only for
    the kinds it reads, not for every model at start."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class DestinationSettings(DefinitionModel):
    """The `settings:` of one destination type; each type's package defines its own."""

    TAKES_RECORDS: ClassVar[bool] = False
    """Whether the destination takes records (a webhook) rather than files."""
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()
    """The fields (dotted; `headers.*` for every key of a mapping) that may hold a stored
    secret, `${secret:NAME}`. Anywhere else its value would show: in a file's address, a
    connection error, the run log."""

    @model_validator(mode="before")
    @classmethod
    def _secrets_only_where_secret(cls, data: Any, info: ValidationInfo) -> Any:
        if expanded(info) or not isinstance(data, dict):
            return data
        for field, value in _strings(data):
            wildcard = field.rsplit(".", 1)[0] + ".*"
            secret = any(r.startswith(SECRET_PREFIX) for r in references(value))
            if secret and field not in cls.SECRET_FIELDS and wildcard not in cls.SECRET_FIELDS:
                allowed = ", ".join(sorted(cls.SECRET_FIELDS)) or "none of this type's fields"
                raise ValueError(
                    f"{field}: a stored secret (${{secret:…}}) may stand only in a field that is "
                    f"never shown ({allowed}); write the value or a ${{VARIABLE}} here"
                )
        return data

    @abstractmethod
    def place(self) -> str:
        """Where files go, as written: destinations with the same place share a folder."""


def _strings(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every text value of `data` with its dotted field name, nested mappings included."""
    for key, value in data.items():
        field = f"{prefix}{key}"
        if isinstance(value, str):
            yield field, value
        elif isinstance(value, dict):
            yield from _strings(value, f"{field}.")
