"""The `kind: orchestration` document (SPEC §6): a read-only SQL query whose result is sent to a
destination, by hand or on a schedule.

```yaml
kind: orchestration
name: Daily loyalty extract
query: select amperity_id, email, loyalty_tier from customer_360 where loyalty_tier <> 'none'
destination: marketing-s3
file: {split_rows: 1000000, compression: gzip}   # optional: over the destination's file options
incremental_by: updated_at       # optional: only rows above the last run's high-water mark
schedule: {recurring: {cron: "30 8 * * *", timezone: UTC}}   # optional: without it, run by hand
```

Only the shape is checked here; that the query parses, is read-only and runs is checked when it
is applied (`activation.orchestration`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from audience.definitions.base import DefinitionModel
from audience.definitions.destination import Destination, FileOptions
from audience.definitions.names import Name, Reference
from audience.definitions.schedule import Schedule
from audience.errors import InvalidValue, ScheduleError


class Orchestration(DefinitionModel):
    """A query's result, sent to one destination with its file options."""

    kind: Literal["orchestration"] = "orchestration"
    name: Name
    query: str = Field(min_length=1)
    destination: Reference = Field(min_length=1)
    file: dict[str, Any] = Field(default_factory=dict)
    """File options that replace the destination's own for this orchestration."""
    incremental_by: str | None = Field(default=None, min_length=1)
    schedule: Schedule | None = None
    """None: the orchestration runs only when someone runs it."""
    description: str | None = None

    @field_validator("file")
    @classmethod
    def _known_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(FileOptions.model_fields))
        if unknown:
            raise ValueError(
                f"unknown file option {', '.join(map(repr, unknown))}; "
                f"options: {', '.join(sorted(FileOptions.model_fields))}"
            )
        return value

    @model_validator(mode="after")
    def _not_after_itself(self) -> Orchestration:
        after = self.schedule.after if self.schedule is not None else None
        if after is not None and after.kind == "orchestration" and after.name == self.name:
            raise ScheduleError("an orchestration cannot run after itself", field="schedule.after")
        return self

    @property
    def launch_date(self) -> None:
        """Orchestrations have no launch date (the Activations page shows none)."""
        return None

    def sent_to(self, destination: Destination) -> Destination:
        """The destination with this orchestration's file options over its own."""
        if not self.file:
            return destination
        try:
            options = FileOptions.model_validate(
                {**destination.file.model_dump(by_alias=True, exclude_unset=True), **self.file}
            )
        except ValidationError as error:  # name the option and the problem, as applying does
            first = error.errors()[0]
            option = ".".join(str(part) for part in first["loc"])
            raise InvalidValue(
                first["msg"].removeprefix("Value error, "),
                field=f"file.{option}" if option else "file",
            ) from None
        try:
            return destination.model_copy(update={"file": options}).taking_records_not_files()
        except ValueError as error:  # "file.OPTION: a webhook takes records, not files"
            raise InvalidValue(str(error), field="file") from None
