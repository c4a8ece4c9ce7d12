"""A campaign → the queries of one run (DESIGN §2: the engine does the joins and the split).

- `assignment_query`: one row per customer and sub-audience of the audience, with its group,
  whether it is held back, whether it newly qualifies, and whether each destination can take it
  (shrink). A run materialises this once, so delivery, ledger and counts all see one snapshot.
- `plan_query`: counts per sub-audience and group, and shrink per destination, from it.
- `delivery_query`: the attribute columns of one group (or all groups) for one destination.
- `joined_rows_query` / `joined_file_query`: a destination's rows joined with their attributes
  once, then each of its files read from that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlglot import exp

from audience.compile.assignment import bucket, group_bounds
from audience.compile.conditions import (
    CompileContext,
    condition_predicate,
    segment_predicate,
    unknown_segment,
)
from audience.compile.sql import column, count_if, false_if_null, has_value, string, table
from audience.definitions.campaign import CONTROL_GROUP, Campaign, SentAttribute
from audience.errors import UnknownAttribute

CUSTOMER = "customer_id"
ACTIVATION_KIND = "activation_kind"
ACTIVATION_NAME = "activation_name"
SUB_AUDIENCE = "sub_audience"
GROUP = "group_name"
IS_CONTROL = "is_control"
IS_NEW = "is_new"


@dataclass(frozen=True)
class PreviousRuns:
    """What "newly qualified" is measured against (empty: everyone is new)."""

    members_table: str = "audience_members"
    recipients_table: str = "audience_recipients"
    last_success: str | None = None
    successes: tuple[str, ...] = ()
    rule: Literal["since_last_run", "never_sent"] = "since_last_run"
    """since_last_run: not in the audience remembered for `last_success`; never_sent: not in
    the ledger of any of `successes`."""


@dataclass(frozen=True)
class DestinationColumns:
    """The attributes one destination receives, checked against the catalog."""

    name: str
    attributes: tuple[SentAttribute, ...]
    keep_column: str
    tables: tuple[str, ...] = field(default=())


def keep_column(index: int) -> str:
    """The assignment column saying whether destination number `index` can take the customer."""
    return f"keep_{index}"


def destination_columns(
    destinations: Sequence[str],
    attributes: Mapping[str, Sequence[SentAttribute]],
    ctx: CompileContext,
    *,
    field: str = "attributes",
) -> list[DestinationColumns]:
    """Each destination's attributes, each checked to be a real column of its table (errors
    name `field`.<destination>.<position>)."""
    result = []
    for index, name in enumerate(destinations):
        sent = tuple(attributes[name])
        for position, attribute in enumerate(sent):
            table_name = attribute.table or ctx.tables.source
            path = f"{field}.{name}.{position}"
            ctx.catalog.kind(table_name, attribute.source, field_path=f"{path}.source")
            if ctx.tables.id not in ctx.catalog.columns(table_name, field_path=f"{path}.table"):
                raise UnknownAttribute(
                    f"table {table_name!r} has no {ctx.tables.id!r} column to join on",
                    field=f"{path}.table",
                )
        outputs = [a.output_name for a in sent]
        repeated = sorted({o for o in outputs if outputs.count(o) > 1})
        if repeated:
            raise UnknownAttribute(
                f"destination {name!r} would receive two columns named {', '.join(repeated)}",
                field=f"{field}.{name}",
            )
        tables = tuple(dict.fromkeys(a.table or ctx.tables.source for a in sent))
        result.append(DestinationColumns(name, sent, keep_column(index), tables))
    return result


def _segment(name: str, ctx: CompileContext, field_path: str) -> exp.Expr:
    segment = ctx.segments.get(name)
    if segment is None:
        raise unknown_segment(name, ctx, field_path)  # a draft is not among ctx.segments
    return exp.paren(segment_predicate(segment, ctx), copy=False)


def _audience_filter(campaign: Campaign, ctx: CompileContext) -> tuple[exp.Expr, exp.Expr | None]:
    include = exp.or_(
        *(
            _segment(n, ctx, f"audience.include.{i}")
            for i, n in enumerate(campaign.audience.include)
        )
    )
    excludes = [
        _segment(n, ctx, f"audience.exclude.{i}") for i, n in enumerate(campaign.audience.exclude)
    ]
    return include, (false_if_null(exp.or_(*excludes)) if excludes else None)


def _sub_audience_predicates(campaign: Campaign, ctx: CompileContext) -> list[exp.Expr | None]:
    predicates: list[exp.Expr | None] = []
    for index, sub in enumerate(campaign.assigned_sub_audiences):
        if sub.where is not None:
            predicates.append(
                false_if_null(
                    condition_predicate(sub.where, ctx, field_path=f"sub_audiences.{index}.where")
                )
            )
        elif sub.segment is not None:
            predicates.append(
                false_if_null(_segment(sub.segment, ctx, f"sub_audiences.{index}.segment"))
            )
        else:
            predicates.append(None)
    return predicates


def scored_query(campaign: Campaign, ctx: CompileContext) -> exp.Select:
    """Included customers: id, is_excluded, and one match flag per sub-audience."""
    include, exclude = _audience_filter(campaign, ctx)
    flags = [
        exp.alias_(predicate if predicate is not None else exp.true(), f"match_{i}")
        for i, predicate in enumerate(_sub_audience_predicates(campaign, ctx))
    ]
    return (
        exp.select(
            exp.alias_(column(ctx.tables.id), CUSTOMER),
            exp.alias_(exp.false() if exclude is None else exclude, "is_excluded"),
            *flags,
        )
        .from_(table(ctx.tables.profile))
        # a NULL id can be neither sent nor remembered: it would poison every NOT IN after it
        .where(exp.and_(include, column(ctx.tables.id).is_(exp.null()).not_()))
    )


def _memberships(campaign: Campaign) -> exp.Query:
    """(customer, sub-audience) pairs: first match, or every match, of the kept customers."""
    subs = campaign.assigned_sub_audiences
    flag = [exp.column(f"match_{i}") for i in range(len(subs))]
    kept = exp.not_(exp.column("is_excluded"))
    if campaign.match == "first":
        case = exp.Case(
            ifs=[exp.If(this=flag[i], true=string(sub.name)) for i, sub in enumerate(subs)]
        )
        if all(sub.has_criteria for sub in subs):
            case = case.else_(exp.null())
        pairs = exp.select(exp.column(CUSTOMER), exp.alias_(case, SUB_AUDIENCE)).from_("scored")
        return (
            exp.select("*")
            .from_(exp.alias_(pairs.where(kept).subquery(), "m"))
            .where(exp.column(SUB_AUDIENCE).is_(exp.null()).not_())
        )
    selects: list[exp.Select] = []
    with_criteria = [i for i, sub in enumerate(subs) if sub.has_criteria]
    for i, sub in enumerate(subs):
        matched = (
            flag[i]
            if sub.has_criteria
            else exp.not_(exp.or_(*(flag[j] for j in with_criteria)))
            if with_criteria
            else exp.true()
        )
        selects.append(
            exp.select(exp.column(CUSTOMER), exp.alias_(string(sub.name), SUB_AUDIENCE))
            .from_("scored")
            .where(exp.and_(kept.copy(), matched))
        )
    union: exp.Query = selects[0]
    for select in selects[1:]:
        union = exp.union(union, select, distinct=False)
    return union


def _group_case(campaign: Campaign) -> exp.Expr:
    """The group of each (customer, sub-audience) from its bucket: treatments, then control.
    A sub-audience with one group (one treatment, no control) takes everyone, bucket unread."""
    ifs = []
    for sub in campaign.assigned_sub_audiences:
        bounds = group_bounds(sub)
        in_sub = exp.EQ(this=exp.column(SUB_AUDIENCE), expression=string(sub.name))
        for group, upper in bounds:
            below = exp.LT(this=exp.column("bucket"), expression=exp.Literal.number(upper))
            ifs.append(
                exp.If(
                    this=exp.and_(in_sub.copy(), below) if len(bounds) > 1 else in_sub.copy(),
                    true=string(group),
                )
            )
    return exp.Case(ifs=ifs)


def _splits(campaign: Campaign) -> bool:
    """Whether any sub-audience is split into several groups, so customers need a bucket."""
    return any(len(group_bounds(sub)) > 1 for sub in campaign.assigned_sub_audiences)


def _is_new(previous: PreviousRuns, campaign: Campaign) -> exp.Expr:
    """True for customers who newly qualify (SPEC §3), per the campaign's rule: not in the
    audience of the last successful run, or never sent by any successful run."""
    if previous.rule == "never_sent":
        earlier_table, runs = previous.recipients_table, previous.successes
    else:
        earlier_table = previous.members_table
        runs = (previous.last_success,) if previous.last_success is not None else ()
    if not runs:
        return exp.true()
    earlier = (
        exp.select(column(CUSTOMER))
        .from_(table(earlier_table))
        .where(
            exp.and_(
                column(ACTIVATION_KIND).eq(string("campaign")),
                column(ACTIVATION_NAME).eq(string(campaign.name)),
                exp.In(this=column("run_id"), expressions=[string(r) for r in runs]),
            )
        )
    )
    return exp.not_(exp.In(this=exp.column(CUSTOMER), query=exp.Subquery(this=earlier)))


def can_receive(
    destination: DestinationColumns, ctx: CompileContext, *, among: exp.Query | None = None
) -> exp.Expr:
    """The customer has a row in each of the destination's tables, with its required values
    (text that is not empty, anything else not NULL). `among` (a query of customer ids) says
    the customers asked about are few: each table's rows are first narrowed to theirs, so the
    engine builds its lookup from those few instead of from every row of the table."""
    checks: list[exp.Expr] = []
    for table_name in destination.tables:
        required = [
            has_value(column(a.source), ctx.catalog.kind(table_name, a.source))
            for a in destination.attributes
            if a.required and (a.table or ctx.tables.source) == table_name
        ]
        if among is not None:
            required.append(exp.In(this=column(ctx.tables.id), query=exp.Subquery(this=among)))
        # A row without an id would make IN answer NULL (not FALSE) for everyone else.
        required.append(column(ctx.tables.id).is_(exp.null()).not_())
        rows = exp.select(column(ctx.tables.id)).from_(table(table_name)).where(exp.and_(*required))
        checks.append(exp.In(this=exp.column(CUSTOMER), query=exp.Subquery(this=rows)))
    return exp.and_(*checks) if checks else exp.true()


def assignment_query(
    campaign: Campaign,
    ctx: CompileContext,
    *,
    dialect: str,
    destinations: Sequence[DestinationColumns],
    previous: PreviousRuns,
) -> exp.Query:
    """customer_id, sub_audience, group_name, is_control, is_new, keep_<n> for each destination.

    Only newly qualified customers are hashed into groups and checked against the destinations'
    tables; the others are listed (a recurring campaign remembers its whole audience) with no
    group, so a recurring run that finds few new customers costs little more than the query."""
    memberships = exp.select(
        exp.column(CUSTOMER),
        exp.column(SUB_AUDIENCE),
        exp.alias_(_is_new(previous, campaign), IS_NEW),
    ).from_(exp.alias_(_memberships(campaign).subquery(), "m"))
    # The hash costs more than the rest of the query at 10M customers: only where a
    # sub-audience is split between groups.
    hashed = (
        [exp.alias_(bucket(exp.column(CUSTOMER), campaign.assignment_seed, dialect), "bucket")]
        if _splits(campaign)
        else []
    )
    bucketed = (
        exp.select(exp.column(CUSTOMER), exp.column(SUB_AUDIENCE), *hashed)
        .from_("memberships")
        .where(exp.column(IS_NEW))
    )
    # After a first run only the newly qualified are asked about, usually a few of the
    # audience: a lookup built from the whole destination table would cost more than the run.
    few = exp.select(exp.column(CUSTOMER)).from_("bucketed") if previous.successes else None
    grouped = exp.select(
        exp.column(CUSTOMER), exp.column(SUB_AUDIENCE), exp.alias_(_group_case(campaign), GROUP)
    ).from_("bucketed")
    fresh = exp.select(
        exp.column(CUSTOMER),
        exp.column(SUB_AUDIENCE),
        exp.column(GROUP),
        exp.alias_(exp.EQ(this=exp.column(GROUP), expression=string(CONTROL_GROUP)), IS_CONTROL),
        exp.alias_(exp.true(), IS_NEW),
        *(exp.alias_(can_receive(d, ctx, among=few), d.keep_column) for d in destinations),
    ).from_(exp.alias_(grouped.subquery(), "g"))
    known = (
        exp.select(
            exp.column(CUSTOMER),
            exp.column(SUB_AUDIENCE),
            exp.alias_(exp.cast(exp.null(), exp.DataType.Type.TEXT), GROUP),
            exp.alias_(exp.false(), IS_CONTROL),
            exp.alias_(exp.false(), IS_NEW),
            *(exp.alias_(exp.false(), d.keep_column) for d in destinations),
        )
        .from_("memberships")
        .where(exp.not_(exp.column(IS_NEW)))
    )
    union = exp.union(fresh, known, distinct=False)
    return (
        exp.select("*")
        .from_(exp.alias_(union.subquery(), "assignments"))
        .with_("scored", as_=scored_query(campaign, ctx))
        .with_("memberships", as_=memberships)
        .with_("bucketed", as_=bucketed)
    )


def leftovers_query(campaign: Campaign, ctx: CompileContext) -> exp.Select:
    """Included customers an exclusion removed, and kept ones matching no sub-audience (they
    are not sent: a campaign whose sub-audiences all have criteria has no catch-all)."""
    matched = exp.or_(
        *(exp.column(f"match_{i}") for i in range(len(campaign.assigned_sub_audiences)))
    )

    return exp.select(
        count_if(exp.column("is_excluded"), "excluded"),
        count_if(exp.and_(exp.not_(exp.column("is_excluded")), exp.not_(matched)), "unmatched"),
    ).from_(exp.alias_(scored_query(campaign, ctx).subquery(), "s"))


def audience_size_query(source: exp.Expr) -> exp.Select:
    """Distinct newly qualified customers, for "every match", under which one may stand in
    several sub-audiences."""
    return (
        exp.select(
            exp.alias_(exp.Count(this=exp.Distinct(expressions=[exp.column(CUSTOMER)])), "audience")
        )
        .from_(source)
        .where(exp.column(IS_NEW))
    )


def plan_query(
    campaign: Campaign, source: exp.Expr, destinations: Sequence[DestinationColumns]
) -> exp.Select:
    """Per sub-audience and group: customers (newly qualified), and per destination the
    customers its treatments would send but it drops (shrink)."""
    shrink = [
        exp.alias_(
            exp.func(
                "SUM",
                exp.Case(
                    ifs=[
                        exp.If(
                            this=exp.and_(
                                _receives_group(campaign, d), exp.not_(exp.column(d.keep_column))
                            ),
                            true=exp.Literal.number(1),
                        )
                    ],
                    default=exp.Literal.number(0),
                ),
            ),
            f"shrink_{i}",
        )
        for i, d in enumerate(destinations)
    ]
    return (
        exp.select(
            exp.column(SUB_AUDIENCE),
            exp.column(GROUP),
            exp.alias_(exp.Count(this=exp.Star()), "customers"),
            *shrink,
        )
        .from_(source)
        .where(exp.column(IS_NEW))
        .group_by(exp.column(SUB_AUDIENCE), exp.column(GROUP))
    )


def _receives_group(campaign: Campaign, destination: DestinationColumns) -> exp.Expr:
    """The row's group is a treatment that sends to the destination."""
    groups = [
        exp.and_(
            exp.EQ(this=exp.column(SUB_AUDIENCE), expression=string(sub.name)),
            exp.EQ(this=exp.column(GROUP), expression=string(treatment.name)),
        )
        for sub in campaign.assigned_sub_audiences
        for treatment in sub.treatments
        if destination.name in treatment.destinations
    ]
    return exp.or_(*groups) if groups else exp.false()


def sends_to(campaign: Campaign, destination: DestinationColumns) -> exp.Expr:
    """True for a run-table row that the destination receives: a treatment that sends there,
    not control, newly qualified, and not dropped by the destination (shrink)."""
    return exp.and_(
        exp.column(IS_NEW),
        exp.not_(exp.column(IS_CONTROL)),
        exp.column(destination.keep_column),
        _receives_group(campaign, destination),
    )


def with_attributes(
    received: exp.Select,
    destination: DestinationColumns,
    ctx: CompileContext,
    *,
    leading: Sequence[exp.Expr] = (),
    ordered: bool = False,
    text_ids: bool = False,
    named: Callable[[int, SentAttribute], str] = lambda _, attribute: attribute.output_name,
) -> exp.Select:
    """The destination's attributes (after `leading` columns) of the customers `received`
    selects by `customer_id`, joined from their tables, each `named` by its position and
    itself (its output name by default); `ordered` gives the rows one order every time (by
    customer, then every column). With `text_ids`, `customer_id` is text and the tables' ids
    are read as text to match."""
    aliases: dict[str, str] = {}
    projections: list[exp.Expr] = list(leading)
    for position, attribute in enumerate(destination.attributes):
        table_name = attribute.table or ctx.tables.source
        alias = aliases.setdefault(table_name, f"a{len(aliases)}")
        projections.append(
            exp.alias_(
                exp.column(attribute.source, table=alias, quoted=True),
                named(position, attribute),
                quoted=True,
            )
        )
    query = exp.select(*projections).from_(exp.alias_(received.subquery(), "r"))
    for table_name, alias in aliases.items():
        their_id: exp.Expr = exp.column(ctx.tables.id, table=alias, quoted=True)
        query = query.join(
            exp.alias_(table(table_name), alias),
            on=exp.EQ(
                this=exp.column(CUSTOMER, table="r"),
                expression=exp.cast(their_id, exp.DataType.Type.TEXT) if text_ids else their_id,
            ),
            join_type="inner",
        )
    if ordered:
        query = query.order_by(
            exp.column(CUSTOMER, table="r"),
            *(exp.Literal.number(position) for position in range(1, len(projections) + 1)),
        )
    return query


def delivery_query(
    run_table: str,
    campaign: Campaign,
    destination: DestinationColumns,
    ctx: CompileContext,
    *,
    sub_audience: str | None,
    group: str | None,
    with_group_columns: bool,
    limit: int | None = None,
    ordered: bool = False,
) -> exp.Select:
    """The rows one file of one destination holds: what the destination receives (`sends_to`),
    of one group or of every group that sends there; `ordered` gives them one order every time
    (by customer, then every column)."""
    leading: list[exp.Expr] = []
    if with_group_columns:
        leading += [
            exp.alias_(exp.column(SUB_AUDIENCE, table="r"), "sub_audience"),
            exp.alias_(exp.column(GROUP, table="r"), "treatment"),
        ]
    filters: list[exp.Expr] = [sends_to(campaign, destination)]
    if sub_audience is not None:
        filters.append(exp.EQ(this=exp.column(SUB_AUDIENCE), expression=string(sub_audience)))
    if group is not None:
        filters.append(exp.EQ(this=exp.column(GROUP), expression=string(group)))
    received = exp.select("*").from_(table(run_table)).where(exp.and_(*filters))
    query = with_attributes(received, destination, ctx, leading=leading, ordered=ordered)
    # Otherwise no ORDER BY: sorting a broad audience costs more than it is worth to a reader.
    return query.limit(limit) if limit is not None else query


@dataclass(frozen=True)
class JoinedRows:
    """The rows one destination receives in a run for the files still to read (`files`: their
    sub-audience and group), joined with its attributes once into `table`, so that each of
    those files reads a few rows instead of joining the customer tables again
    (`joined_rows_query`, then `joined_file_query`). The table names each attribute by its
    position, beside the customer, sub-audience and group: no two names can clash in an engine
    that ignores case or cuts long names short."""

    table: str
    destination: DestinationColumns
    files: tuple[tuple[str, str], ...]


def _by_position(position: int) -> str:
    return f"attribute_{position}"


def joined_rows_query(
    run_table: str, campaign: Campaign, joined: JoinedRows, ctx: CompileContext
) -> exp.Select:
    """The rows of `joined`'s table: what its destination receives (`sends_to`) in its files,
    with the destination's attributes."""
    leading = [exp.column(name, table="r") for name in (CUSTOMER, SUB_AUDIENCE, GROUP)]
    in_files = exp.or_(
        *(
            exp.and_(
                exp.column(SUB_AUDIENCE).eq(string(sub_audience)),
                exp.column(GROUP).eq(string(group)),
            )
            for sub_audience, group in joined.files
        )
    )
    received = (
        exp.select("*")
        .from_(table(run_table))
        .where(exp.and_(sends_to(campaign, joined.destination), in_files))
    )
    return with_attributes(
        received, joined.destination, ctx, leading=leading, named=lambda i, _: _by_position(i)
    )


def joined_file_query(
    joined: JoinedRows, *, sub_audience: str, group: str, ordered: bool = False
) -> exp.Select:
    """The rows of one file, read from `joined`'s table: the same rows, columns and (when
    `ordered`) order as `delivery_query` gives."""
    attributes = joined.destination.attributes
    query = (
        exp.select(
            *(
                exp.alias_(column(_by_position(i)), a.output_name, quoted=True)
                for i, a in enumerate(attributes)
            )
        )
        .from_(table(joined.table))
        .where(
            exp.and_(column(SUB_AUDIENCE).eq(string(sub_audience)), column(GROUP).eq(string(group)))
        )
    )
    if ordered:
        query = query.order_by(
            column(CUSTOMER),
            *(exp.Literal.number(position) for position in range(1, len(attributes) + 1)),
        )
    return query
