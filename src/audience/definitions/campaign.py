"""The `kind: campaign` document (SPEC §3): audience → sub-audiences → treatments and control."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from audience.definitions.base import DefinitionModel
from audience.definitions.conditions import Condition, check_depth
from audience.definitions.names import DestinationNames, Name, Reference
from audience.definitions.schedule import Schedule
from audience.errors import PercentagesError, ScheduleError


def _number_only(value: Any) -> Any:
    # "50%" or "50" as text is a typo worth naming, not something to guess at
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a percentage is a number from 0 to 100, not {value!r}")
    return value


Percent = Annotated[float, BeforeValidator(_number_only), Field(ge=0, le=100, allow_inf_nan=False)]
CONTROL_GROUP = "Control"
"""The group name of customers held back in a sub-audience."""
REMAINING = "All remaining recipients"
"""The implicit sub-audience of a campaign that defines none (or of customers matching none)."""


class Treatment(DefinitionModel):
    """A group of customers that is sent, to one or more destinations."""

    name: Name
    percent: Percent
    destinations: DestinationNames = Field(min_length=1)


class SubAudience(DefinitionModel):
    """A slice of the audience (criteria, or none for "everyone left"), split into treatments."""

    name: Name
    where: Condition | None = None
    segment: Reference | None = None
    treatments: list[Treatment] = Field(min_length=1)
    control: Percent = 0

    @model_validator(mode="before")
    @classmethod
    def _not_too_deep(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            check_depth(raw.get("where"), "where")
        return raw

    @model_validator(mode="after")
    def _groups(self) -> SubAudience:
        if self.where is not None and self.segment is not None:
            raise ValueError("give either where or segment, not both")
        names = [t.name for t in self.treatments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"treatment names must be unique; repeated: {', '.join(duplicates)}")
        if self.control and CONTROL_GROUP in names:
            raise ValueError(f"{CONTROL_GROUP!r} names the control group; rename the treatment")
        check_percentages(self.name, self.treatments, self.control)
        return self

    @property
    def has_criteria(self) -> bool:
        """False for the catch-all sub-audience."""
        return self.where is not None or self.segment is not None


def check_percentages(name: str, treatments: list[Treatment], control: float) -> None:
    """Treatments and control of a sub-audience total exactly 100 (counted in decimals, so
    33.33 × 3 is 99.99, not "about 100")."""
    total = sum((Decimal(str(t.percent)) for t in treatments), Decimal(str(control)))
    if total != 100:
        shares = " + ".join(str(t.percent) for t in treatments)
        raise PercentagesError(
            f"percentages of sub-audience {name!r} total {total}, not 100 "
            f"(treatments {shares}, control {control})",
            field="treatments",
        )


class CampaignAudience(DefinitionModel):
    """Who the campaign is for: included segments (united) minus excluded ones."""

    include: list[Reference] = Field(min_length=1)
    exclude: list[Reference] = Field(default_factory=list)


class SentAttribute(DefinitionModel):
    """A column sent to a destination: `source` (from `table`) renamed `as`."""

    source: str = Field(min_length=1)
    as_: str | None = Field(default=None, alias="as", min_length=1)
    table: str | None = None
    required: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return {"source": raw} if isinstance(raw, str) else raw

    @property
    def output_name(self) -> str:
        """The column name in the file."""
        return self.as_ or self.source


class Campaign(DefinitionModel):
    """One audience, split into sub-audiences and treatments, sent to destinations."""

    kind: Literal["campaign"] = "campaign"
    name: Name
    description: str = ""
    audience: CampaignAudience
    sub_audiences: list[SubAudience] = Field(default_factory=list)
    treatments: list[Treatment] = Field(default_factory=list)
    control: Percent = 0
    match: Literal["first", "every"] = "first"
    attributes: dict[str, list[SentAttribute]] = Field(default_factory=dict)
    files: Literal["per_treatment", "single"] = "per_treatment"
    schedule: Schedule = Schedule(once="asap")
    launch_date: date | None = None
    seed: str | None = None
    newly_qualified: Literal["since_last_run", "never_sent"] = "since_last_run"

    @field_validator("schedule")
    @classmethod
    def _campaign_schedule(cls, value: Schedule) -> Schedule:
        if value.after is not None:
            raise ScheduleError(
                "after another activation is for orchestrations; a campaign runs once or recurring",
                field="after",
            )
        return value

    @model_validator(mode="after")
    def _shape(self) -> Campaign:
        if self.sub_audiences and self.treatments:
            raise ValueError(
                "put treatments inside sub_audiences, or use top-level treatments alone"
            )
        if not self.sub_audiences and not self.treatments:
            raise ValueError("a campaign needs treatments (or sub_audiences with treatments)")
        if self.treatments:
            self._implicit_sub_audience()
        names = [s.name for s in self.sub_audiences]
        if len(set(names)) != len(names):
            raise ValueError("sub-audience names must be unique")
        for position, sub in enumerate(self.sub_audiences[:-1]):
            if not sub.has_criteria and self.match == "first":
                raise ValueError(
                    f"sub-audience {sub.name!r} has no criteria, so it takes everyone left; "
                    f"it must come last (it is number {position + 1} of {len(names)})"
                )
        return self

    def _implicit_sub_audience(self) -> SubAudience:
        try:
            return SubAudience(name=REMAINING, treatments=self.treatments, control=self.control)
        except ValidationError as exc:
            # report the treatments' own problem (percentages, names), not a nested model's
            first = exc.errors()[0]
            cause = (first.get("ctx") or {}).get("error")
            if isinstance(cause, PercentagesError):
                raise cause from None
            raise ValueError(first["msg"].removeprefix("Value error, ")) from None

    @property
    def assigned_sub_audiences(self) -> list[SubAudience]:
        """The sub-audiences to assign, with the implicit one for top-level treatments."""
        if self.sub_audiences:
            return self.sub_audiences
        return [self._implicit_sub_audience()]

    @property
    def destinations(self) -> list[str]:
        """Every destination any treatment sends to, in first-use order."""
        found: dict[str, None] = {}
        for sub in self.assigned_sub_audiences:
            for treatment in sub.treatments:
                found.update(dict.fromkeys(treatment.destinations))
        return list(found)

    @property
    def is_recurring(self) -> bool:
        """Recurring campaigns (any repeating schedule) send only newly qualified customers."""
        return self.schedule.repeating is not None

    @property
    def assignment_seed(self) -> str:
        """What the group hash is salted with: the campaign's seed, by default its name."""
        return self.seed if self.seed is not None else self.name


def rejoin_names(items: list[str], known: set[str]) -> list[str]:
    """Segment names as meant: a YAML flow list like `[High value, recently active]` (as SPEC
    Appendix A writes it) splits a name at its comma; join neighbours back when that names a
    known segment and the pieces alone do not."""
    names: list[str] = []
    index = 0
    while index < len(items):
        if items[index] not in known:
            for end in range(index + 2, len(items) + 1):
                joined = ", ".join(items[index:end])
                if joined in known:
                    names.append(joined)
                    index = end
                    break
            else:
                names.append(items[index])
                index += 1
            continue
        names.append(items[index])
        index += 1
    return names
