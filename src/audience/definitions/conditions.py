"""Condition trees: what a segment (or a sub-audience, or a purchase) matches.

A condition is one of:

- `{attribute: COLUMN, op: OPERATOR, value: …, unit: …}` — a test on one column;
- `{all: [...]}` / `{any: [...]}` / `{not: …}` — groups, nested to any (reasonable) depth;
- `{purchased: {table, where, within_last, orders | revenue}}` — a behavioural condition;
- `{in_segment: NAME}` — membership of another segment;
- `{sent: {activation, within_last, treatment, sub_audience, destination}}` — activation
  history: sent by a campaign or journey (the building block of frequency caps, with `not`).

These models check shapes only (a `between` needs two values, …). Whether a column exists and
whether an operator fits its type is checked by the compiler against the engine's catalog.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from audience.definitions.base import DefinitionModel
from audience.definitions.names import Reference
from audience.errors import NestingTooDeep

MAX_DEPTH = 50
"""Deepest condition tree accepted; real segments stay far below it, runaway input does not."""

Unit = Literal["days", "weeks", "months", "years"]
Scalar = bool | int | float | str | date | datetime

NO_VALUE_OPS = frozenset(
    {
        "is_null",
        "is_not_null",
        "is_empty",
        "is_not_empty",
        "is_true",
        "is_false",
        "today",
        "yesterday",
    }
)
PAIR_OPS = frozenset({"between", "not_between"})
LIST_OPS = frozenset({"in", "not_in"})
RELATIVE_OPS = frozenset({"within_last", "more_than_ago"})
Operator = Literal[
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "between",
    "not_between",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
    "is_true",
    "is_false",
    "before",
    "after",
    "on_or_before",
    "on_or_after",
    "within_last",
    "more_than_ago",
    "today",
    "yesterday",
    "is_null",
    "is_not_null",
]


class AttributeCondition(DefinitionModel):
    """A test on one column of the table the condition is evaluated on."""

    attribute: str = Field(min_length=1)
    op: Operator
    value: Scalar | list[Scalar] | None = None
    unit: Unit | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _scalars(cls, value: Any) -> Any:
        # pydantic would report the first member of the union it tried ("a valid boolean")
        for item in value if isinstance(value, list) else [value] if value is not None else []:
            if not isinstance(item, bool | int | float | str | date):
                shown = {type(None): "null", dict: "a mapping", list: "a list in a list"}.get(
                    type(item), type(item).__name__
                )
                raise ValueError(
                    "a value is text, a number, true or false, or a date "
                    f"(a list of them for in, not_in, between), not {shown}"
                )
        return value

    @model_validator(mode="after")
    def _value_fits_operator(self) -> AttributeCondition:
        op, value = self.op, self.value
        if op in NO_VALUE_OPS:
            if value is not None:
                raise ValueError(f"operator {op!r} takes no value")
        elif op in PAIR_OPS:
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError(f"operator {op!r} needs a list of two values [from, to]")
        elif op in LIST_OPS:
            if not isinstance(value, list) or not value:
                raise ValueError(f"operator {op!r} needs a non-empty list of values")
        elif op in RELATIVE_OPS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"operator {op!r} needs a whole number of {self.unit or 'days'}")
        elif value is None or isinstance(value, list):
            raise ValueError(f"operator {op!r} needs one value")
        if self.unit is not None and op not in RELATIVE_OPS:
            raise ValueError(f"unit applies only to within_last and more_than_ago, not {op!r}")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError("numbers must be finite")
        return self


class AllOf(DefinitionModel):
    """True when every condition inside is true."""

    all: list[Condition] = Field(min_length=1)


class AnyOf(DefinitionModel):
    """True when at least one condition inside is true."""

    any: list[Condition] = Field(min_length=1)


class NotOf(DefinitionModel):
    """True when the condition inside is not true (a NULL-valued condition counts as not true)."""

    not_: Condition = Field(alias="not")


class Window(DefinitionModel):
    """A time window ending now: the last N days, weeks, months or years."""

    value: int = Field(gt=0)
    unit: Unit = "days"


class Comparison(DefinitionModel):
    """How a purchase count or sum is compared."""

    op: Literal["=", "!=", "<", "<=", ">", ">=", "between"]
    value: int | float | list[int | float]

    @model_validator(mode="after")
    def _shape(self) -> Comparison:
        values = self.value if isinstance(self.value, list) else [self.value]
        if (self.op == "between") != isinstance(self.value, list) or (
            self.op == "between" and len(values) != 2
        ):
            raise ValueError("between takes [from, to]; other operators take one number")
        if not all(math.isfinite(v) for v in values):
            raise ValueError("numbers must be finite")
        if self.op == "between" and values[0] > values[1]:
            raise ValueError(f"between needs from <= to, got {values[0]} and {values[1]}")
        return self


class Purchase(DefinitionModel):
    """Rows of an event table matching `where`, in a window, counted or summed and compared."""

    table: str | None = None
    where: Condition | None = None
    within_last: Window | None = None
    orders: Comparison | None = None
    revenue: Comparison | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> Purchase:
        if self.orders is not None and self.revenue is not None:
            raise ValueError("give either orders or revenue, not both")
        return self


class PurchasedCondition(DefinitionModel):
    """A behavioural condition: "at least 2 orders in Shoes in the last 90 days"."""

    purchased: Purchase


class InSegmentCondition(DefinitionModel):
    """Membership of another segment."""

    in_segment: Reference = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _rejoin_comma(cls, raw: Any) -> Any:
        # In a YAML flow mapping, `{in_segment: High value, recently active}` (as SPEC Appendix A
        # writes it) splits at the comma into a second key with no value; join the name back.
        if isinstance(raw, dict) and "in_segment" in raw and len(raw) > 1:
            extras = [key for key in raw if key != "in_segment"]
            if all(raw[key] is None and isinstance(key, str) for key in extras):
                return {"in_segment": ", ".join([str(raw["in_segment"]), *extras])}
        return raw

    @field_validator("in_segment")
    @classmethod
    def _strip(cls, name: str) -> str:
        return name.strip()


class Sent(DefinitionModel):
    """Which sends count: an activation's, in a window, to a treatment, sub-audience or
    destination (each optional but the activation)."""

    activation: Reference = Field(min_length=1)
    kind: Literal["campaign", "journey"] | None = None
    """Only when a campaign and a journey share the name."""
    within_last: Window | None = None
    treatment: str | None = None
    """A campaign's treatment or a journey's split path."""
    sub_audience: str | None = None
    """A campaign's sub-audience or a journey's activate node."""
    destination: str | None = None


class SentCondition(DefinitionModel):
    """Activation history: "was sent campaign X in the last 7 days". Control customers were
    not sent, so they never match."""

    sent: Sent


_KINDS = ("all", "any", "not", "purchased", "in_segment", "sent", "attribute")
TAGS = frozenset(_KINDS)
"""The tags pydantic puts in error locations; the loader drops them to find the YAML line."""


def _condition_kind(raw: Any) -> str | None:
    if isinstance(raw, BaseModel):
        return _TAG_BY_MODEL.get(type(raw))
    if isinstance(raw, dict):
        return next((key for key in _KINDS if key in raw), None)
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[PurchasedCondition, Tag("purchased")]
    | Annotated[InSegmentCondition, Tag("in_segment")]
    | Annotated[SentCondition, Tag("sent")]
    | Annotated[AttributeCondition, Tag("attribute")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message=(
            "a condition needs one of: attribute, all, any, not, purchased, in_segment, sent"
        ),
    ),
]

_TAG_BY_MODEL: dict[type[BaseModel], str] = {
    AllOf: "all",
    AnyOf: "any",
    NotOf: "not",
    PurchasedCondition: "purchased",
    InSegmentCondition: "in_segment",
    SentCondition: "sent",
    AttributeCondition: "attribute",
}

AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
Purchase.model_rebuild()


def check_depth(raw: Any, field: str, limit: int = MAX_DEPTH) -> None:
    """Reject raw input nested deeper than `limit`, without recursing (so no RecursionError)."""
    stack: list[tuple[Any, int]] = [(raw, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise NestingTooDeep(
                f"condition nested more than {limit} levels deep; flatten it with all/any",
                field=field,
            )
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth) for child in node)
