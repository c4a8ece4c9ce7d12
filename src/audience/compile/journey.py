"""A journey's run as SQL: who exits, who enters, and how everyone ready moves through each node.

Each run works on a few temporary tables in the engine: `walkers` (customers who may move this
run, with their node — NULL once they reach the end of a path — their path, control flag, when
they entered the node and which node they came from), `trail` (the travel log rows of the run)
and `sends` (who each activate node sends, and who each percent split holds back as control).
Every statement handles one node for everyone at it: a bounded number of statements per node,
never a loop over customers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlglot import exp

from audience.compile.assignment import BUCKETS, bucket
from audience.compile.campaign import CUSTOMER, DestinationColumns, can_receive, with_attributes
from audience.compile.conditions import (
    CompileContext,
    condition_predicate,
    segment_ids,
    segment_predicate,
    unknown_segment,
)
from audience.compile.sql import column, false_if_null, string, table
from audience.definitions.journey import Edge, Journey, Node

POSITIONS = "audience_journey_positions"
TRAVEL_LOG = "audience_journey_log"
APPLIED = "audience_journey_runs"
JOURNEY = "journey"
NODE = "node"
ENTERED_AT = "entered_at"
PATH = "path"
IS_CONTROL = "is_control"
CAME_FROM = "came_from"
EVENT = "event"
AT = "at"
REASON = "reason"

_TEXT = "TEXT"
POSITION_COLUMNS: tuple[tuple[str, str], ...] = (
    (JOURNEY, _TEXT),
    (CUSTOMER, _TEXT),
    (NODE, _TEXT),
    (ENTERED_AT, "TIMESTAMP"),
    (PATH, _TEXT),
    (IS_CONTROL, "BOOLEAN"),
    ("run_id", _TEXT),
)
LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    (JOURNEY, _TEXT),
    (CUSTOMER, _TEXT),
    (NODE, _TEXT),
    (EVENT, _TEXT),
    (AT, "TIMESTAMP"),
    (PATH, _TEXT),
    (IS_CONTROL, "BOOLEAN"),
    (REASON, _TEXT),
    ("run_id", _TEXT),
)
APPLIED_COLUMNS: tuple[tuple[str, str], ...] = (
    (JOURNEY, _TEXT),
    ("run_id", _TEXT),
    ("applied_at", "TIMESTAMP"),
)
TRAIL_COLUMNS = (CUSTOMER, NODE, EVENT, AT, PATH, IS_CONTROL, REASON)
LEAVING_EVENTS = ("finished", "exited", "released")
"""The travel log's events that end a customer's stay in a journey (one per stay)."""
SEND_COLUMNS = (CUSTOMER, NODE, PATH, IS_CONTROL)


def moment(value: datetime) -> exp.Expr:
    """A timestamp literal (UTC, to the second), the same text on every engine."""
    return exp.cast(
        string(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")), exp.DataType.Type.TIMESTAMP
    )


def _text(value: str | None) -> exp.Expr:
    return exp.cast(exp.null(), _TEXT) if value is None else string(value)


def of_journey(journey: Journey) -> exp.Expr:
    """Rows of this journey in the state tables."""
    return column(JOURNEY).eq(string(journey.name))


def in_segment(name: str, ctx: CompileContext, field: str) -> exp.Expr:
    """`customer_id IN (the segment's members)`."""
    segment = ctx.segments.get(name)
    if segment is None:
        raise unknown_segment(name, ctx, field)
    return exp.In(this=column(CUSTOMER), query=exp.Subquery(this=segment_ids(segment, ctx)))


def exits_query(journey: Journey, ctx: CompileContext) -> exp.Select:
    """Customers in the journey who now match an exit segment, with the first one's name."""
    reason = exp.Case(
        ifs=[
            exp.If(this=in_segment(name, ctx, f"exit.{i}"), true=string(name))
            for i, name in enumerate(journey.exit)
        ]
    )
    return (
        exp.select(
            column(CUSTOMER),
            column(NODE),
            column(PATH),
            column(IS_CONTROL),
            exp.alias_(reason, REASON),
        )
        .from_(table(POSITIONS))
        .where(exp.and_(of_journey(journey), exp.or_(*(i.this for i in reason.args["ifs"]))))
    )


def audience_query(journey: Journey, ctx: CompileContext) -> exp.Select:
    """Everyone who qualifies now: in an entry segment, in no excluded or exit segment."""
    profile_ids = column(ctx.tables.id)
    include = exp.or_(
        *(
            exp.paren(_predicate(name, ctx, f"include.{i}"), copy=False)
            for i, name in enumerate(journey.include)
        )
    )
    barred = [
        _predicate(name, ctx, f"{field}.{i}")
        for field, names in (("exclude", journey.exclude), ("exit", journey.exit))
        for i, name in enumerate(names)
    ]
    where = include if not barred else exp.and_(include, exp.not_(false_if_null(exp.or_(*barred))))
    return (
        exp.select(exp.alias_(exp.cast(profile_ids, _TEXT), CUSTOMER))
        .from_(table(ctx.tables.profile))
        .where(where)
    )


def _predicate(name: str, ctx: CompileContext, field: str) -> exp.Expr:
    segment = ctx.segments.get(name)
    if segment is None:
        raise unknown_segment(name, ctx, field)
    return segment_predicate(segment, ctx)


def walkers_query(
    journey: Journey,
    ctx: CompileContext,
    *,
    now: datetime,
    exits_table: str,
    remembered: exp.Query | None,
    admit: bool = True,
) -> exp.Query:
    """Who may move this run: customers in the journey not exiting and not still waiting out
    a timed delay, and the newly qualified entering at the first node.

    Entrants are not in the journey now; without re-entry they were never in it, with re-entry
    they were not in the audience `remembered` from the last run (they qualify anew)."""
    waiting = [
        exp.and_(
            column(NODE).eq(string(node.name)),
            exp.GT(this=column(ENTERED_AT), expression=moment(wait.before(now))),
        )
        for node in journey.nodes
        if (wait := node.wait) is not None
    ]
    exiting = exp.In(
        this=column(CUSTOMER),
        query=exp.Subquery(this=exp.select(column(CUSTOMER)).from_(table(exits_table))),
    )
    staying = [of_journey(journey), exp.not_(exiting)]
    if waiting:
        staying.append(exp.not_(exp.or_(*waiting)))
    inside = (
        exp.select(
            column(CUSTOMER),
            column(NODE),
            column(ENTERED_AT),
            column(PATH),
            column(IS_CONTROL),
            exp.alias_(exp.cast(exp.null(), _TEXT), CAME_FROM),
        )
        .from_(table(POSITIONS))
        .where(exp.and_(*staying))
    )
    known: exp.Query = (
        exp.select(column(CUSTOMER)).from_(table(POSITIONS)).where(of_journey(journey))
    )
    if not journey.allow_reentry:
        # Whoever was ever in it is inside now or left once per stay (finished, exited or
        # released): those rows, not the whole travel log, which holds a row per node passed.
        left = column(EVENT).isin(*(string(e) for e in LEAVING_EVENTS))
        known = exp.union(
            known,
            exp.select(column(CUSTOMER))
            .from_(table(TRAVEL_LOG))
            .where(exp.and_(of_journey(journey), left)),
            distinct=False,
        )
    fresh = [exp.not_(exp.In(this=column(CUSTOMER), query=exp.Subquery(this=known)))]
    if remembered is not None:
        fresh.append(exp.not_(exp.In(this=column(CUSTOMER), query=exp.Subquery(this=remembered))))
    entrants = (
        exp.select(
            column(CUSTOMER),
            exp.alias_(string(journey.nodes[0].name), NODE),
            exp.alias_(moment(now), ENTERED_AT),
            exp.alias_(exp.cast(exp.null(), _TEXT), PATH),
            exp.alias_(exp.false(), IS_CONTROL),
            exp.alias_(exp.cast(exp.null(), _TEXT), CAME_FROM),
        )
        .from_(exp.alias_(audience_query(journey, ctx).subquery(), "a"))
        .where(exp.and_(*fresh))
    )
    return exp.union(inside, entrants, distinct=False) if admit else inside


def arrivals(walkers: str, trail: str, node: Node, now: datetime) -> exp.Insert:
    """Log everyone who entered `node` in this run."""
    rows = (
        exp.select(
            column(CUSTOMER),
            column(NODE),
            string("entered"),
            moment(now),
            column(PATH),
            column(IS_CONTROL),
            exp.cast(exp.null(), _TEXT),
        )
        .from_(table(walkers))
        .where(exp.and_(column(NODE).eq(string(node.name)), column(ENTERED_AT).eq(moment(now))))
    )
    return exp.insert(rows, table(trail), columns=list(TRAIL_COLUMNS))


def sends(walkers: str, sends_table: str, node: Node) -> exp.Insert:
    """Everyone at an activate node is sent by it in this run."""
    rows = (
        exp.select(column(CUSTOMER), column(NODE), column(PATH), exp.false())
        .from_(table(walkers))
        .where(column(NODE).eq(string(node.name)))
    )
    return exp.insert(rows, table(sends_table), columns=list(SEND_COLUMNS))


def held_back(walkers: str, sends_table: str, node: Node, now: datetime) -> exp.Insert:
    """Who a percent split held back as control in this run (after `move`)."""
    rows = (
        exp.select(column(CUSTOMER), string(node.name), column(PATH), exp.true())
        .from_(table(walkers))
        .where(
            exp.and_(
                column(CAME_FROM).eq(string(node.name)),
                column(IS_CONTROL),
                column(ENTERED_AT).eq(moment(now)),
            )
        )
    )
    return exp.insert(rows, table(sends_table), columns=list(SEND_COLUMNS))


def move(
    walkers: str,
    journey: Journey,
    node: Node,
    ctx: CompileContext,
    *,
    now: datetime,
    dialect: str,
    index: int,
) -> exp.Update:
    """Move everyone ready to leave `node` to where its edges lead, as of `now`."""
    edges = journey.edges(node.name)
    field = f"nodes.{index}"
    leaving: exp.Expr = exp.true()
    routes: list[tuple[exp.Expr | None, Edge]]
    if node.type == "percent_split":
        share = bucket(column(CUSTOMER), journey.seed_of(node), dialect)
        routes = []
        total = Decimal(0)
        for position, (path, edge) in enumerate(zip(node.paths, edges, strict=True)):
            total += Decimal(str(path.percent))
            if position == len(edges) - 1:  # rounding never leaves a bucket unassigned
                routes.append((None, edge))
                continue
            bound = exp.Literal.number(int(total * BUCKETS / 100))
            routes.append((exp.LT(this=share.copy(), expression=bound), edge))
    elif node.type == "conditional_split":
        routes = []
        for position, (path, edge) in enumerate(zip(node.paths, edges, strict=True)):
            path_field = f"{field}.paths.{position}"
            if path.segment is not None:
                condition: exp.Expr | None = in_segment(path.segment, ctx, f"{path_field}.segment")
            elif path.where is not None:
                ids = (
                    exp.select(column(ctx.tables.id))
                    .from_(table(ctx.tables.profile))
                    .where(condition_predicate(path.where, ctx, field_path=f"{path_field}.where"))
                )
                condition = exp.In(this=column(CUSTOMER), query=exp.Subquery(this=ids))
            else:
                condition = None
            routes.append((condition, edge))
    elif node.until is not None and node.at_most is not None:
        matched = in_segment(node.until, ctx, f"{field}.until")
        timed_out = exp.LTE(this=column(ENTERED_AT), expression=moment(node.at_most.before(now)))
        leaving = exp.or_(matched, timed_out)
        routes = [(matched.copy(), edges[0]), (None, edges[1])]
    else:
        wait = node.wait
        if wait is not None:
            leaving = exp.LTE(this=column(ENTERED_AT), expression=moment(wait.before(now)))
        routes = [(None, edges[0])]

    target = _case([(condition, _text(edge.target)) for condition, edge in routes])
    updates = [
        exp.EQ(this=column(NODE), expression=target),
        exp.EQ(this=column(ENTERED_AT), expression=moment(now)),
        exp.EQ(this=column(CAME_FROM), expression=string(node.name)),
    ]
    if node.type in {"percent_split", "conditional_split"}:
        updates.append(
            exp.EQ(
                this=column(PATH),
                expression=_case([(c, string(edge.label or "")) for c, edge in routes]),
            )
        )
        if any(edge.control for _, edge in routes):
            updates.append(
                exp.EQ(
                    this=column(IS_CONTROL),
                    expression=_case(
                        [(c, exp.true() if edge.control else exp.false()) for c, edge in routes]
                    ),
                )
            )
    statement = exp.Update(
        this=table(walkers),
        expressions=updates,
        where=exp.Where(this=exp.and_(column(NODE).eq(string(node.name)), leaving)),
    )
    return statement


def _case(branches: list[tuple[exp.Expr | None, exp.Expr]]) -> exp.Expr:
    """The value of the first branch whose condition holds (None: always)."""
    ifs: list[exp.Expr] = []
    for condition, value in branches:
        if condition is None:
            return exp.Case(ifs=ifs, default=value) if ifs else value
        ifs.append(exp.If(this=condition.copy(), true=value))
    return exp.Case(ifs=ifs)


def node_delivery_query(
    sends_table: str,
    node: str,
    destination: DestinationColumns,
    ctx: CompileContext,
    *,
    ordered: bool,
) -> exp.Select:
    """The rows an activate node sends to one destination in this run: its customers who have
    what the destination requires (`ordered`: by customer, then every column)."""
    received = (
        exp.select(column(CUSTOMER))
        .from_(table(sends_table))
        .where(
            exp.and_(
                column(NODE).eq(string(node)),
                exp.not_(column(IS_CONTROL)),
                can_receive(destination, ctx),
            )
        )
    )
    return with_attributes(received, destination, ctx, ordered=ordered, text_ids=True)
