"""The `kind: segment` document: who is in an audience."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from audience.definitions.base import DefinitionModel
from audience.definitions.conditions import Condition, check_depth
from audience.definitions.names import Name


class Segment(DefinitionModel):
    """A named audience: a condition tree (`where` minus `exclude`) or a SQL query of ids."""

    kind: Literal["segment"] = "segment"
    name: Name
    description: str = ""
    status: Literal["draft", "active"] = "active"
    where: Condition | None = None
    exclude: Condition | None = None
    sql: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _not_too_deep(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for block in ("where", "exclude"):
                check_depth(raw.get(block), block)
        return raw

    @model_validator(mode="after")
    def _one_definition(self) -> Segment:
        if self.sql is not None and (self.where is not None or self.exclude is not None):
            raise ValueError("a segment has either sql or where/exclude, not both")
        if self.sql is None and self.where is None and self.exclude is None:
            raise ValueError("a segment needs where (with an optional exclude) or sql")
        return self
