"""Condition trees → sqlglot boolean expressions, checked against the engine's catalog.

Column names become quoted identifiers only after the catalog confirms them; values become literals
built by sqlglot. Relative dates are turned into literal day boundaries here, from the `now` the
caller passes, so every engine evaluates exactly the same condition.

NULL semantics (SPEC §2): a condition on a NULL value is false. SQL's three-valued logic gives that
for free inside `all`/`any`; `not` and exclusion blocks wrap their operand in COALESCE(…, FALSE) so
a NULL never turns into "true".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from audience.compile.catalog import Catalog, ColumnKind
from audience.compile.dates import day_after, days_before, utc_today
from audience.compile.history import ActivationHistory, NoHistory
from audience.compile.sql import (
    column,
    day_literal,
    false_if_null,
    has_text,
    is_empty_text,
    number,
    string,
    table,
)
from audience.definitions.conditions import (
    AllOf,
    AnyOf,
    AttributeCondition,
    Comparison,
    Condition,
    InSegmentCondition,
    NotOf,
    Purchase,
    PurchasedCondition,
    Sent,
    SentCondition,
)
from audience.definitions.segment import Segment
from audience.errors import (
    CycleError,
    DraftReference,
    InvalidValue,
    NestingTooDeep,
    OperatorTypeMismatch,
    UnknownAttribute,
    UnknownReference,
    ValueTypeMismatch,
)
from audience.settings import TableSettings

_NULL_OPS = {"is_null", "is_not_null"}
OPERATORS_BY_KIND: dict[ColumnKind, frozenset[str]] = {
    "number": frozenset(
        {"=", "!=", "<", "<=", ">", ">=", "between", "not_between", "in", "not_in", *_NULL_OPS}
    ),
    "string": frozenset(
        {
            "=",
            "!=",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "is_empty",
            "is_not_empty",
            "in",
            "not_in",
            *_NULL_OPS,
        }
    ),
    "boolean": frozenset({"is_true", "is_false", *_NULL_OPS}),
    "date": frozenset(
        {
            "=",
            "!=",
            "before",
            "after",
            "on_or_before",
            "on_or_after",
            "between",
            "not_between",
            "within_last",
            "more_than_ago",
            "today",
            "yesterday",
            *_NULL_OPS,
        }
    ),
    "other": frozenset(_NULL_OPS),
}
OPERATORS_BY_KIND["timestamp"] = OPERATORS_BY_KIND["date"]

_COMPARE: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}


@dataclass(frozen=True)
class CompileContext:
    """Everything a condition needs besides itself: columns, table names, time, other segments."""

    catalog: Catalog
    tables: TableSettings
    now: datetime
    segments: Mapping[str, Segment] = field(default_factory=dict)
    """The segments others may use: each one's active version."""
    drafts: frozenset[str] = frozenset()
    """Segments that exist only as drafts: named so that using one says so."""
    history: ActivationHistory = field(default_factory=NoHistory)
    """Past activations, for `sent` conditions."""

    @property
    def today(self) -> date:
        """The UTC date relative conditions count from."""
        return utc_today(self.now)


def segment_predicate(segment: Segment, ctx: CompileContext) -> exp.Expr:
    """A boolean expression over a profile-table row: is this customer in the segment?"""
    return _SegmentCompiler(ctx).predicate(segment, ())


def segment_ids(segment: Segment, ctx: CompileContext) -> exp.Select:
    """`SELECT id FROM profile WHERE …`: the segment's members."""
    id_column = ctx.tables.id
    return (
        exp.select(column(id_column))
        .from_(table(ctx.tables.profile))
        .where(segment_predicate(segment, ctx))
    )


def unknown_segment(name: str, ctx: CompileContext, field_path: str) -> UnknownReference:
    """The error for a segment that is not there to use: a draft, or not there at all."""
    if name in ctx.drafts:
        return DraftReference(
            f"segment {name!r} is a draft; activate it (status: active) first", field=field_path
        )
    return UnknownReference(f"segment {name!r} does not exist", field=field_path)


def condition_predicate(
    condition: Condition, ctx: CompileContext, *, field_path: str = "where"
) -> exp.Expr:
    """A boolean expression over a profile-table row for a bare condition tree."""
    return _SegmentCompiler(ctx).condition(condition, ctx.tables.profile, field_path, ())


MAX_SEGMENT_DEPTH = 20
"""How many segments deep `in_segment` may refer (A uses B uses C …)."""
MAX_SEGMENT_USES = 200
"""How many `in_segment` references one segment may expand to, counting repeats: each is
compiled in place, so a segment used twice at every level would double at every level."""


class _SegmentCompiler:
    def __init__(self, ctx: CompileContext) -> None:
        self.ctx = ctx
        self.uses = 0

    def predicate(self, segment: Segment, stack: tuple[str, ...]) -> exp.Expr:
        stack = (*stack, segment.name)
        profile = self.ctx.tables.profile
        if segment.sql is not None:
            return exp.In(
                this=column(self.ctx.tables.id),
                query=exp.Subquery(this=parse_id_query(segment.sql)),
            )
        parts: list[exp.Expr] = []
        if segment.where is not None:
            parts.append(self.condition(segment.where, profile, "where", stack))
        if segment.exclude is not None:
            excluded = self.condition(segment.exclude, profile, "exclude", stack)
            parts.append(exp.not_(false_if_null(excluded)))
        return exp.and_(*parts) if len(parts) > 1 else parts[0]

    def condition(
        self, node: Condition, table_name: str, path: str, stack: tuple[str, ...]
    ) -> exp.Expr:
        if isinstance(node, AllOf | AnyOf):
            children = node.all if isinstance(node, AllOf) else node.any
            key = "all" if isinstance(node, AllOf) else "any"
            compiled = [
                self.condition(child, table_name, f"{path}.{key}.{i}", stack)
                for i, child in enumerate(children)
            ]
            if len(compiled) == 1:
                return compiled[0]
            joined = exp.and_(*compiled) if key == "all" else exp.or_(*compiled)
            return exp.paren(joined, copy=False)
        if isinstance(node, NotOf):
            inner = self.condition(node.not_, table_name, f"{path}.not", stack)
            return exp.not_(false_if_null(inner))
        if isinstance(node, AttributeCondition):
            kind = self.ctx.catalog.kind(table_name, node.attribute, field_path=f"{path}.attribute")
            return attribute_condition(node, kind, self.ctx.today, path)
        if table_name != self.ctx.tables.profile:
            raise InvalidValue(
                "inside purchased, conditions can only test columns of the event table",
                field=path,
            )
        if isinstance(node, PurchasedCondition):
            return self.purchased(node.purchased, f"{path}.purchased", stack)
        if isinstance(node, SentCondition):
            return self.sent(node.sent, f"{path}.sent")
        return self.in_segment(node, path, stack)

    def in_segment(self, node: InSegmentCondition, path: str, stack: tuple[str, ...]) -> exp.Expr:
        name = node.in_segment
        if name in stack:
            loop = " → ".join([*stack[stack.index(name) :], name])
            raise CycleError(f"segments refer to each other in a loop: {loop}", field=path)
        self.uses += 1
        if len(stack) > MAX_SEGMENT_DEPTH or self.uses > MAX_SEGMENT_USES:
            raise NestingTooDeep(
                f"in_segment references go more than {MAX_SEGMENT_DEPTH} segments deep or expand "
                f"to more than {MAX_SEGMENT_USES} uses; refer to fewer segments",
                field=path,
            )
        target = self.ctx.segments.get(name)
        if target is None:
            raise unknown_segment(name, self.ctx, f"{path}.in_segment")
        try:
            return exp.paren(self.predicate(target, stack), copy=False)
        except (UnknownAttribute, OperatorTypeMismatch, InvalidValue) as exc:
            raise InvalidValue(f"segment {name!r} is invalid: {exc}", field=path) from None

    def sent(self, sent: Sent, path: str) -> exp.Expr:
        """Customers the activation sent (never its control), in its counted runs due in the
        window up to now, to the treatment, sub-audience or destination when named."""
        history = self.ctx.history
        found = history.activation(sent.activation)
        if found is None or (sent.kind is not None and sent.kind not in found.kinds):
            wanted = sent.kind or "campaign or journey"
            raise UnknownReference(
                f"no {wanted} is named {sent.activation!r}", field=f"{path}.activation"
            )
        for name, value, known, what in (
            ("treatment", sent.treatment, found.treatments, "treatment or split path"),
            ("sub_audience", sent.sub_audience, found.sub_audiences, "sub-audience or node"),
            ("destination", sent.destination, found.destinations, "destination"),
        ):
            if value is not None and value not in known:
                listed = ", ".join(repr(k) for k in sorted(known)) or "none"
                raise UnknownReference(
                    f"{sent.activation!r} has no {what} {value!r} (it has {listed})",
                    field=f"{path}.{name}",
                )
        start = None
        if sent.within_last is not None:
            window = sent.within_last
            start = days_before(
                self.ctx.today, window.value, window.unit, field=f"{path}.within_last.value"
            )
        runs = [
            run.id
            for run in found.runs
            if (sent.kind is None or run.kind == sent.kind)
            and run.due <= self.ctx.now
            and (start is None or run.due.date() >= start)
        ]
        if not runs:
            return exp.false()
        filters: list[exp.Expr] = [
            column("activation_name").eq(string(sent.activation)),
            exp.In(this=column("run_id"), expressions=[string(r) for r in runs]),
            exp.not_(false_if_null(column("is_control"))),
            exp.not_(column("destination").is_(exp.null())),
        ]
        for name, value in (
            ("treatment", sent.treatment),
            ("sub_audience", sent.sub_audience),
            ("destination", sent.destination),
        ):
            if value is not None:
                filters.append(column(name).eq(string(value)))
        names = self.ctx.tables
        customer: exp.Expr = column(names.id)
        if self.ctx.catalog.kind(names.profile, names.id) != "string":
            customer = exp.cast(customer, exp.DataType.Type.TEXT)  # the ledger keeps text
        recipients = (
            exp.select(column("customer_id"))
            .from_(table(history.recipients_table))
            .where(exp.and_(*filters))
        )
        return exp.In(this=customer, query=exp.Subquery(this=recipients))

    def purchased(self, purchase: Purchase, path: str, stack: tuple[str, ...]) -> exp.Expr:
        names = self.ctx.tables
        events = purchase.table or names.events
        columns = self.ctx.catalog.columns(events, field_path=f"{path}.table")
        for needed in (names.id, names.order_id, names.order_datetime):
            if needed not in columns:
                raise UnknownAttribute(
                    f"table {events!r} has no {needed!r} column, needed for purchases",
                    field=f"{path}.table",
                )
        filters: list[exp.Expr] = []
        if purchase.where is not None:
            filters.append(self.condition(purchase.where, events, f"{path}.where", stack))
        for flag in (names.is_return, names.is_cancellation):
            if flag in columns:
                filters.append(exp.not_(false_if_null(column(flag))))
        when, kind = column(names.order_datetime), columns[names.order_datetime]
        if purchase.within_last is not None:
            window = purchase.within_last
            start = days_before(
                self.ctx.today, window.value, window.unit, field=f"{path}.within_last.value"
            )
            filters.append(exp.GTE(this=when, expression=day_literal(start, kind)))
        # Orders up to the end of today: as of a simulated --now, later ones have not happened.
        tomorrow = day_after(self.ctx.today, field=path)
        filters.append(exp.LT(this=when.copy(), expression=day_literal(tomorrow, kind)))
        if purchase.revenue is not None:
            if names.order_revenue not in columns:
                raise UnknownAttribute(
                    f"table {events!r} has no {names.order_revenue!r} column",
                    field=f"{path}.revenue",
                )
            measure: exp.Expr = exp.func("SUM", column(names.order_revenue))
            comparison = purchase.revenue
        else:
            measure = order_count(names, events)
            comparison = purchase.orders or Comparison(op=">=", value=1)
        having = compare_number(measure, comparison)
        zero_qualifies = _holds_for_zero(comparison)
        if zero_qualifies:
            # Customers with no matching rows qualify too: select those who do NOT, and negate.
            filters.append(exp.column(names.id, quoted=True).is_(exp.null()).not_())
            having = exp.not_(exp.paren(having, copy=False))
        subquery = (
            exp.select(column(names.id))
            .from_(table(events))
            .where(exp.and_(*filters) if filters else exp.true())
            .group_by(column(names.id))
            .having(having)
        )
        member = exp.In(this=column(names.id), query=exp.Subquery(this=subquery))
        return exp.not_(member) if zero_qualifies else member


def order_count(names: TableSettings, events: str | None = None) -> exp.Expr:
    """How orders are counted: rows when the event table is the configured one and it has one
    row per order (SPEC §1), else distinct order ids."""
    if names.events_one_row_per_order and events in (None, names.events):
        return exp.Count(this=exp.Star())
    return exp.Count(this=exp.Distinct(expressions=[column(names.order_id)]))


def compare_number(measure: exp.Expr, comparison: Comparison) -> exp.Expr:
    """`measure <op> value` for a purchase count or sum."""
    if comparison.op == "between":
        low, high = comparison.value if isinstance(comparison.value, list) else (0, 0)
        return exp.Between(this=measure, low=number(low), high=number(high))
    assert not isinstance(comparison.value, list)  # checked by the model
    return _COMPARE[comparison.op](this=measure, expression=number(comparison.value))


def _holds_for_zero(comparison: Comparison) -> bool:
    value = comparison.value
    if isinstance(value, list):
        return value[0] <= 0 <= value[1]
    return {
        "=": value == 0,
        "!=": value != 0,
        "<": value > 0,
        "<=": value >= 0,
        ">": value < 0,
        ">=": value <= 0,
    }[comparison.op]


def attribute_condition(
    node: AttributeCondition, kind: ColumnKind, today: date, path: str
) -> exp.Expr:
    """One attribute condition on a column of the given kind."""
    op = node.op
    if op not in OPERATORS_BY_KIND[kind]:
        raise OperatorTypeMismatch(
            f"operator {op!r} does not apply to {node.attribute!r}, a {kind} column "
            f"(use one of: {', '.join(sorted(OPERATORS_BY_KIND[kind]))})",
            field=f"{path}.op",
        )
    col = column(node.attribute)
    if op == "is_null":
        return col.is_(exp.null())
    if op == "is_not_null":
        return exp.not_(col.is_(exp.null()))
    if kind == "number":
        return _number_condition(col, op, node.value, f"{path}.value")
    if kind == "string":
        return _string_condition(col, node, f"{path}.value")
    if kind == "boolean":
        return exp.EQ(this=col, expression=exp.true() if op == "is_true" else exp.false())
    return _date_condition(col, kind, node, today, f"{path}.value")


def _number_condition(col: exp.Expr, op: str, value: Any, path: str) -> exp.Expr:
    if op in _COMPARE:
        return _COMPARE[op](this=col, expression=number(value, path))
    if op in {"between", "not_between"}:
        low, high = (number(v, f"{path}.{i}") for i, v in enumerate(value))
        if value[0] > value[1]:
            # SQL's BETWEEN would silently match nobody (not_between: everybody)
            raise InvalidValue(f"{op} needs from <= to, got {value[0]} and {value[1]}", field=path)
        between = exp.Between(this=col, low=low, high=high)
        return between if op == "between" else exp.not_(between)
    listed = exp.In(this=col, expressions=[number(v, path) for v in value])
    return listed if op == "in" else exp.not_(listed)


def _string_condition(col: exp.Expr, node: AttributeCondition, path: str) -> exp.Expr:
    op, value = node.op, node.value
    if op == "is_empty":
        return is_empty_text(col)
    if op == "is_not_empty":
        return has_text(col)
    if op in {"in", "not_in"}:
        assert isinstance(value, list)  # checked by the model
        values = [text(v, f"{path}.{i}", node.attribute) for i, v in enumerate(value)]
        listed = exp.In(this=col, expressions=[string(v) for v in values])
        return listed if op == "in" else exp.not_(listed)
    needle = text(value, path, node.attribute)
    if op in {"=", "!="}:
        return _COMPARE[op](this=col, expression=string(needle))
    if op in {"contains", "not_contains"}:
        found = exp.GT(this=exp.StrPosition(this=col, substr=string(needle)), expression=number(0))
        return found if op == "contains" else exp.not_(found)
    edge = exp.Left if op == "starts_with" else exp.Right
    return exp.EQ(this=edge(this=col, expression=number(len(needle))), expression=string(needle))


def _date_condition(
    col: exp.Expr, kind: ColumnKind, node: AttributeCondition, today: date, path: str
) -> exp.Expr:
    """Every date operator as a half-open range of whole UTC days [start, end)."""
    op, value = node.op, node.value
    start: date | None
    end: date | None
    if op in {"within_last", "more_than_ago"}:
        assert isinstance(value, int)
        boundary = days_before(today, value, node.unit or "days", field=path)
        # "within the last N days" ends today: a later date is not in the past (a simulated
        # --now must not see what comes after it)
        start, end = (
            (boundary, day_after(today, field=path)) if op == "within_last" else (None, boundary)
        )
    elif op in {"today", "yesterday"}:
        day = today if op == "today" else days_before(today, 1, "days", field=path)
        start, end = day, day_after(day, field=path)
    elif op in {"between", "not_between"}:
        assert isinstance(value, list)  # checked by the model
        low, high = (to_date(v, f"{path}.{i}") for i, v in enumerate(value))
        if low > high:
            raise InvalidValue(f"{op} needs from <= to, got {low} and {high}", field=path)
        start, end = low, day_after(high, field=f"{path}.1")
    else:
        day = to_date(value, path)
        start, end = {
            "=": (day, day_after(day, field=path)),
            "!=": (day, day_after(day, field=path)),
            "before": (None, day),
            "on_or_before": (None, day_after(day, field=path)),
            "after": (day_after(day, field=path), None),
            "on_or_after": (day, None),
        }[op]
    bounds: list[exp.Expr] = []
    if start is not None:
        bounds.append(exp.GTE(this=col.copy(), expression=day_literal(start, kind)))
    if end is not None:
        bounds.append(exp.LT(this=col.copy(), expression=day_literal(end, kind)))
    inside = exp.and_(*bounds) if len(bounds) > 1 else bounds[0]
    return exp.not_(exp.paren(inside, copy=False)) if op in {"!=", "not_between"} else inside


def text(value: Any, path: str, column_name: str) -> str:
    """A string value for a text column. Anything else is refused, never converted: by the time
    YAML hands over a number it has already changed it (`02130` → 2130, `0o17` → 15)."""
    if isinstance(value, str):
        return value
    raise ValueTypeMismatch(value, column=column_name, field=path)


def to_date(value: Any, path: str) -> date:
    """A calendar date from a date, a datetime or an ISO `YYYY-MM-DD` string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidValue(f"expected a date like 2026-01-31, got {value!r}", field=path)


def parse_id_query(sql: str) -> exp.Query:
    """Parse a SQL segment: exactly one SELECT returning one column of customer ids."""
    try:
        statements = [s for s in sqlglot.parse(sql) if s is not None]
    except ParseError as exc:
        raise InvalidValue(f"sql does not parse: {str(exc).splitlines()[0]}", field="sql") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise InvalidValue("sql must be exactly one SELECT statement", field="sql")
    query = statements[0]
    first = query
    while isinstance(first, exp.SetOperation):
        first = first.left
    if isinstance(first, exp.Select) and (
        len(first.expressions) != 1 or isinstance(first.expressions[0], exp.Star)
    ):
        raise InvalidValue("sql must select exactly one column: the customer id", field="sql")
    return query
