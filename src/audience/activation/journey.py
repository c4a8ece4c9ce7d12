"""Journeys: each run moves customers along the graph, in sets, and sends each activate node's
batch exactly once.

State lives in the engine beside the customer data (SPEC §5, §10): `audience_journey_positions`
(where each customer in a journey is, since when, on which path, in control or not),
`audience_journey_log` (the travel log: every entry into a node, every exit with its reason,
every finish) and `audience_journey_runs` (the runs whose moves were applied). A run works out
its moves in temporary tables from the state as it stood (`compile.journey`), sends the files,
and then applies the moves, the travel log, the recipients ledger and its own mark in one
transaction. So a run that fails before that changes nothing but files the retry recognises
(they carry the run id), and a retry of a run that was applied only reads its counts back.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlglot import exp

from audience.activation import ledger
from audience.activation.campaign import default_attributes
from audience.activation.recording import RunRecording
from audience.activation.results import VersusControl, conversion_versus_control
from audience.activation.setting import CampaignSetting, Progress, Silent
from audience.activation.statistics import Share
from audience.compile import journey as sql
from audience.compile.campaign import (
    CUSTOMER,
    DestinationColumns,
    can_receive,
    destination_columns,
)
from audience.compile.conditions import CompileContext
from audience.compile.sql import column, string, table
from audience.definitions.campaign import SentAttribute
from audience.definitions.destination import Destination
from audience.definitions.journey import RELEASE, Journey
from audience.delivery.naming import NameValues
from audience.delivery.shipment import RunNames, deliver, final_names
from audience.engines.base import Engine
from audience.errors import (
    AudienceError,
    DefinitionError,
    FileNameCollision,
    NotFound,
    StateError,
    UnknownReference,
)
from audience.settings import TableSettings
from audience.shapes import Moment, Shape
from audience.store.runs import Run

KIND = "journey"


class NodeCount(Shape):
    """Customers at a node now, and all who ever entered it."""

    node: str
    type: str
    now: int
    entered: int


class GoalCount(Shape):
    """Of the customers who took one path (None: everyone who entered), how many are in a
    goal segment now; beside a control path, the lift over it (None when there are too few
    customers on either side to tell, as `versus_control` says)."""

    goal: str
    path: str | None
    is_control: bool
    customers: int
    reached: int
    conversion: float | None
    """The share who reached the goal (None when no one took the path)."""
    lift_over_control: float | None
    versus_control: VersusControl | None = None
    """For a path beside a control: the difference in conversion and the lift, with 95 %
    intervals, and a verdict (None for everyone and for the control itself)."""

    @classmethod
    def of(
        cls,
        goal: str,
        path: str | None,
        is_control: bool,
        share: Share,
        versus: VersusControl | None = None,
    ) -> GoalCount:
        """The line of `share` (who reached the goal of who took `path`) and its comparison."""
        lift = versus.lift.estimate if versus is not None and versus.lift is not None else None
        return cls(
            goal=goal,
            path=path,
            is_control=is_control,
            customers=share.n,
            reached=share.hits,
            conversion=share.hits / share.n if share.n else None,
            lift_over_control=lift,
            versus_control=versus,
        )


class JourneyCounts(Shape):
    """A journey's counts per node, how many left it and how, and its goals per path (the
    shape of `audience journey status --json` and of the API's counts)."""

    journey: str
    in_journey: int
    nodes: list[NodeCount]
    exited: dict[str, int]
    """Customers who left by matching an exit segment, by its name."""
    finished: int
    released: int
    goals: list[GoalCount]
    paths: dict[str, int] = Field(default_factory=dict)
    """Customers who took each path out of a split, by its name (a control path that ends at
    once included)."""


class Step(Shape):
    """One line of a customer's travel log (`audience journey path --json` prints a list of
    them)."""

    node: str
    event: str
    at: Moment
    """As the travel log holds it: UTC, with no offset where the engine keeps none."""
    path: str | None
    is_control: bool
    reason: str | None
    run_id: str


def ensure_tables(engine: Engine) -> None:
    """Create the journey state tables (and the recipients ledger) if they are missing."""
    ledger.ensure_tables(engine)
    tables = engine.catalog().tables
    for name, columns in (
        (sql.POSITIONS, sql.POSITION_COLUMNS),
        (sql.TRAVEL_LOG, sql.LOG_COLUMNS),
        (sql.APPLIED, sql.APPLIED_COLUMNS),
    ):
        if name not in tables:
            ledger.create_table(engine, name, columns)


def node_destinations(
    journey: Journey, destinations: Mapping[str, Destination], ctx: CompileContext
) -> dict[str, list[DestinationColumns]]:
    """Per activate node: what each of its destinations receives, checked against the catalog
    (the node's `attributes` for a destination, else the destination's defaults)."""
    found: dict[str, list[DestinationColumns]] = {}
    for index, node in enumerate(journey.nodes):
        if node.type != "activate":
            continue
        field = f"nodes.{index}"
        chosen: dict[str, Sequence[SentAttribute]] = {}
        for name in node.destinations:
            destination = destinations.get(name)
            if destination is None:
                raise UnknownReference(
                    f"node {node.name!r}: destination {name!r} does not exist",
                    field=f"{field}.destinations",
                )
            chosen[name] = node.attributes.get(name) or default_attributes(destination)
        unknown = sorted(set(node.attributes) - set(node.destinations))
        if unknown:
            raise UnknownReference(
                f"node {node.name!r}: attributes given for {', '.join(map(repr, unknown))}, "
                "which it does not send to",
                field=f"{field}.attributes",
            )
        found[node.name] = destination_columns(
            node.destinations, chosen, ctx, field=f"{field}.attributes"
        )
    return found


def check_journey(journey: Journey, setting: CampaignSetting, dialect: str) -> None:
    """Compile everything a run compiles, so a bad journey is refused when applied: segments
    active, destinations there, attributes real columns, file names apart."""
    ctx = setting.ctx
    sql.audience_query(journey, ctx)
    if journey.exit:
        sql.exits_query(journey, ctx)
    for index, node in enumerate(journey.nodes):
        sql.move("w", journey, node, ctx, now=ctx.now, dialect=dialect, index=index)
    for index, name in enumerate(journey.goals):
        sql.in_segment(name, ctx, f"goals.{index}")
    seen: dict[tuple[str, str], str] = {}
    for node_name, columns in node_destinations(journey, setting.destinations, ctx).items():
        for destination in columns:
            place = setting.destinations[destination.name]
            values = _names(journey, node_name, ctx.now)
            for file in final_names(place, values, run_id="0" * 32, rows=2):
                earlier = seen.setdefault((place.settings.place(), file), node_name)
                if earlier != node_name:
                    fix = (
                        "rename one of them (their names read the same once made safe for a "
                        "file name)"
                        if "group_name" in place.file.filename
                        else "add {{ group_name }} (the node's name) to the filename template"
                    )
                    raise FileNameCollision(
                        f"nodes {earlier!r} and {node_name!r} would both write {file!r} in the "
                        f"same place; {fix}",
                        field="nodes",
                    )


def _names(journey: Journey, node: str, now: datetime) -> NameValues:
    # A file is named from the journey and the node (`group_name` in templates).
    return NameValues(activation_name=journey.name, group_name=node, now=now)


def refuse_going_back(name: str, latest: Run | None, now: datetime) -> None:
    """StateError when the journey has already run as of a later moment: customers move
    forward in time, so a run as of an earlier one would undo what happened since."""
    if latest is not None and latest.scheduled_for > now:
        raise StateError(
            f"journey {name!r} has run as of {latest.scheduled_for.isoformat()} already; a run "
            f"as of {now.isoformat()} would move customers back in time (pass a later --now)"
        )


def _applied(engine: Engine, journey: Journey, run_id: str) -> bool:
    found = (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(sql.APPLIED))
        .where(exp.and_(sql.of_journey(journey), column("run_id").eq(string(run_id))))
    )
    return bool(engine.rows(found)[0]["n"])


def _remembered(journey: Journey, last_success: str | None) -> exp.Query | None:
    """With re-entry, who qualified at the last successful run (entrants must be new)."""
    if not journey.allow_reentry or last_success is None:
        return None
    return (
        exp.select(column(CUSTOMER))
        .from_(table(ledger.MEMBERS))
        .where(
            exp.and_(
                column("activation_kind").eq(string(KIND)),
                column("activation_name").eq(string(journey.name)),
                column("run_id").eq(string(last_success)),
            )
        )
    )


def run_journey(
    journey: Journey,
    setting: CampaignSetting,
    recording: RunRecording,
    *,
    progress: Progress | None = None,
    admit: bool = True,
) -> dict[str, Any]:
    """Move the journey on as of the run's due time (admitting the newly qualified unless it
    is ending: not `admit`); return the run's counts."""
    engine, ctx = setting.engine, setting.ctx
    progress = progress or Silent()
    run = recording.run
    now = run.scheduled_for
    ensure_tables(engine)
    if _applied(engine, journey, run.id):
        return _counts_of(engine, journey, run.id, files=len(recording.earlier_files()))
    refuse_going_back(journey.name, recording.runs.latest(KIND, journey.name, succeeded=True), now)
    columns = node_destinations(journey, setting.destinations, ctx)
    names = {part: f"audience_j{part}_{run.id}" for part in ("exits", "walkers", "trail", "sends")}
    try:
        progress.step("Working out who moves")
        _work_out_moves(journey, setting, names, now, run.id, admit=admit)
        delivered = _send(journey, setting, recording, columns, names["sends"], progress)
        progress.step("Recording where everyone is")
        with engine.transaction():
            _apply(journey, setting, columns, names, run.id)
            # Kept only if the run is still this attempt's: a run taken over meanwhile is
            # recorded by the attempt that took it (its last file's record answers, usually).
            recording.confirm()
        counts = _counts_of(engine, journey, run.id, files=delivered)
        return counts
    finally:
        for name in names.values():
            with contextlib.suppress(AudienceError):
                engine.execute(exp.Drop(tables=[table(name)], kind="TABLE", exists=True))


def _work_out_moves(
    journey: Journey,
    setting: CampaignSetting,
    names: Mapping[str, str],
    now: datetime,
    run_id: str,
    *,
    admit: bool,
) -> None:
    engine, ctx = setting.engine, setting.ctx
    exits = (
        sql.exits_query(journey, ctx)
        if journey.exit
        else exp.select(
            column(CUSTOMER),
            column(sql.NODE),
            column(sql.PATH),
            column(sql.IS_CONTROL),
            exp.alias_(exp.cast(exp.null(), "TEXT"), sql.REASON),
        )
        .from_(table(sql.POSITIONS))
        .where(exp.false())
    )
    ledger.materialise(engine, names["exits"], exits)
    successes = [r for r in setting.runs.successes(KIND, journey.name) if r != run_id]
    walkers = sql.walkers_query(
        journey,
        ctx,
        now=now,
        exits_table=names["exits"],
        remembered=_remembered(journey, successes[-1] if successes else None),
        admit=admit,
    )
    ledger.materialise(engine, names["walkers"], walkers)
    log_types = dict(sql.LOG_COLUMNS)
    for part, kept in (("trail", sql.TRAIL_COLUMNS), ("sends", sql.SEND_COLUMNS)):
        ledger.create_table(engine, names[part], [(c, log_types[c]) for c in kept], temporary=True)
    position = {n.name: i for i, n in enumerate(journey.nodes)}
    for node in journey.in_order():
        engine.execute(sql.arrivals(names["walkers"], names["trail"], node, now))
        if node.type == "activate":
            engine.execute(sql.sends(names["walkers"], names["sends"], node))
        engine.execute(
            sql.move(
                names["walkers"],
                journey,
                node,
                ctx,
                now=now,
                dialect=engine.dialect,
                index=position[node.name],
            )
        )
        if node.type == "percent_split" and any(p.control for p in node.paths):
            engine.execute(sql.held_back(names["walkers"], names["sends"], node, now))
    finished = (
        exp.select(
            column(CUSTOMER),
            column(sql.CAME_FROM),
            string("finished"),
            sql.moment(now),
            column(sql.PATH),
            column(sql.IS_CONTROL),
            exp.cast(exp.null(), "TEXT"),
        )
        .from_(table(names["walkers"]))
        .where(column(sql.NODE).is_(exp.null()))
    )
    exited = exp.select(
        column(CUSTOMER),
        column(sql.NODE),
        string("exited"),
        sql.moment(now),
        column(sql.PATH),
        column(sql.IS_CONTROL),
        column(sql.REASON),
    ).from_(table(names["exits"]))
    for rows in (finished, exited):
        engine.execute(exp.insert(rows, table(names["trail"]), columns=list(sql.TRAIL_COLUMNS)))


def _send(
    journey: Journey,
    setting: CampaignSetting,
    recording: RunRecording,
    columns: Mapping[str, list[DestinationColumns]],
    sends_table: str,
    progress: Progress,
) -> int:
    """Send each activate node's batch to its destinations; how many files were delivered."""
    run = recording.run
    clients = {
        name: setting.open_client(setting.destinations[name]) for name in journey.destinations
    }
    for client in clients.values():
        client.check()  # every destination, before the first byte goes anywhere
    claimed = RunNames()
    earlier = recording.earlier_files()
    files = 0
    for node_name, destinations in columns.items():
        for destination in destinations:
            place = _only_when_sending(setting.destinations[destination.name])
            query = sql.node_delivery_query(
                sends_table,
                node_name,
                destination,
                setting.ctx,
                ordered=place.file.split,
            )
            progress.step(f"{node_name} → {destination.name}")
            with setting.engine.stream(query) as reader:
                # Each file is recorded the moment it is published, before the next is sent.
                delivered = deliver(
                    place,
                    reader,
                    names=_names(journey, node_name, run.scheduled_for),
                    run_id=run.id,
                    client=clients[destination.name],
                    schema=reader.schema,
                    claimed=claimed,
                    earlier=earlier,
                    references=setting.references,
                    on_published=functools.partial(
                        recording.published, sub_audience=node_name, group=None
                    ),
                    before_publish=recording.settle,
                )
            files += sum(delivery.role == "data" for delivery in delivered)
    return files


def _only_when_sending(destination: Destination) -> Destination:
    """A node that nobody reached in a run sends no file (not even a header): a journey runs
    often, and most of its nodes are empty most of the time."""
    if destination.file.empty == "none":
        return destination
    options = destination.file.model_copy(update={"empty": "none"})
    return destination.model_copy(update={"file": options})


def _apply(
    journey: Journey,
    setting: CampaignSetting,
    columns: Mapping[str, list[DestinationColumns]],
    names: Mapping[str, str],
    run_id: str,
) -> None:
    """Write the run's moves, travel log, recipients and mark: called in one transaction."""
    engine, ctx = setting.engine, setting.ctx
    moved = exp.union(
        exp.select(column(CUSTOMER)).from_(table(names["walkers"])),
        exp.select(column(CUSTOMER)).from_(table(names["exits"])),
        distinct=False,
    )
    engine.execute(
        exp.delete(
            table(sql.POSITIONS),
            where=exp.and_(
                sql.of_journey(journey),
                exp.In(this=column(CUSTOMER), query=exp.Subquery(this=moved)),
            ),
        )
    )
    staying = (
        exp.select(
            string(journey.name),
            column(CUSTOMER),
            column(sql.NODE),
            column(sql.ENTERED_AT),
            column(sql.PATH),
            column(sql.IS_CONTROL),
            string(run_id),
        )
        .from_(table(names["walkers"]))
        .where(exp.not_(column(sql.NODE).is_(exp.null())))
    )
    engine.execute(
        exp.insert(staying, table(sql.POSITIONS), columns=[c for c, _ in sql.POSITION_COLUMNS])
    )
    logged = exp.select(
        string(journey.name), *(column(c) for c in sql.TRAIL_COLUMNS), string(run_id)
    ).from_(table(names["trail"]))
    engine.execute(
        exp.insert(logged, table(sql.TRAVEL_LOG), columns=[c for c, _ in sql.LOG_COLUMNS])
    )
    stamp = sql.moment(setting.clock())
    for node_name, destinations in columns.items():
        for destination in destinations:
            ledger.record_rows(
                engine,
                _recipients(journey, names["sends"], run_id, stamp, destination.name).where(
                    exp.and_(
                        column(sql.NODE).eq(string(node_name)),
                        exp.not_(column(sql.IS_CONTROL)),
                        can_receive(destination, ctx),
                    )
                ),
            )
    ledger.record_rows(
        engine,
        _recipients(journey, names["sends"], run_id, stamp, None).where(column(sql.IS_CONTROL)),
    )
    if journey.allow_reentry:
        audience = sql.audience_query(journey, ctx)
        ledger.forget_activation_members(engine, KIND, journey.name)
        engine.execute(
            exp.insert(
                exp.select(
                    string(KIND), string(journey.name), column(CUSTOMER), string(run_id)
                ).from_(exp.alias_(audience.subquery(), "a")),
                table(ledger.MEMBERS),
                columns=["activation_kind", "activation_name", CUSTOMER, "run_id"],
            )
        )
    engine.execute(
        exp.insert(
            exp.select(string(journey.name), string(run_id), stamp.copy()),
            table(sql.APPLIED),
            columns=[c for c, _ in sql.APPLIED_COLUMNS],
        )
    )


def _recipients(
    journey: Journey, sends_table: str, run_id: str, stamp: exp.Expr, destination: str | None
) -> exp.Select:
    """Ledger rows of the run's sends: the node stands as sub-audience, the path as treatment."""
    return exp.select(
        column(CUSTOMER),
        string(KIND),
        string(journey.name),
        column(sql.NODE),
        column(sql.PATH),
        column(sql.IS_CONTROL),
        exp.cast(exp.null(), "TEXT") if destination is None else string(destination),
        string(run_id),
        stamp.copy(),
    ).from_(table(sends_table))


def _counts_of(engine: Engine, journey: Journey, run_id: str, *, files: int) -> dict[str, Any]:
    """What one run did, read back from the travel log and the ledger."""
    events = engine.rows(
        exp.select(column(sql.NODE), column(sql.EVENT), exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(sql.TRAVEL_LOG))
        .where(exp.and_(sql.of_journey(journey), column("run_id").eq(string(run_id))))
        .group_by(column(sql.NODE), column(sql.EVENT))
    )
    inside = engine.rows(
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(sql.POSITIONS))
        .where(sql.of_journey(journey))
    )
    first = journey.nodes[0].name
    arrived = {r["node"]: int(r["n"]) for r in events if r["event"] == "entered"}

    def customers_where(condition: exp.Expr) -> exp.Expr:
        only = exp.Case(ifs=[exp.If(this=condition, true=column(CUSTOMER))])
        return exp.Count(this=exp.Distinct(expressions=[only]))

    sent = engine.rows(
        exp.select(
            exp.alias_(customers_where(exp.not_(column(sql.IS_CONTROL))), "n"),
            exp.alias_(customers_where(column(sql.IS_CONTROL)), "control"),
        )
        .from_(table(ledger.RECIPIENTS))
        .where(column("run_id").eq(string(run_id)))
    )
    return {
        "entered": arrived.get(first, 0),
        "moved": {n.name: arrived[n.name] for n in journey.nodes if n.name in arrived},
        "exited": sum(int(r["n"]) for r in events if r["event"] == "exited"),
        "finished": sum(int(r["n"]) for r in events if r["event"] == "finished"),
        "sent": int(sent[0]["n"]),
        "control": int(sent[0]["control"] or 0),
        "files": files,
        "in_journey": int(inside[0]["n"]),
    }


def journey_counts(journey: Journey, engine: Engine, ctx: CompileContext) -> JourneyCounts:
    """Customers at each node now, and all who entered it; exits by reason; finishes; goals
    reached per path."""
    ensure_tables(engine)
    at = engine.rows(
        exp.select(column(sql.NODE), exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(sql.POSITIONS))
        .where(sql.of_journey(journey))
        .group_by(column(sql.NODE))
    )
    logged = engine.rows(
        exp.select(
            column(sql.NODE),
            column(sql.EVENT),
            column(sql.REASON),
            exp.alias_(exp.Count(this=exp.Star()), "n"),
        )
        .from_(table(sql.TRAVEL_LOG))
        .where(sql.of_journey(journey))
        .group_by(column(sql.NODE), column(sql.EVENT), column(sql.REASON))
    )
    took = engine.rows(
        exp.select(
            column(sql.PATH),
            exp.alias_(exp.Count(this=exp.Distinct(expressions=[column(CUSTOMER)])), "n"),
        )
        .from_(table(sql.TRAVEL_LOG))
        .where(exp.and_(sql.of_journey(journey), exp.not_(column(sql.PATH).is_(exp.null()))))
        .group_by(column(sql.PATH))
    )
    now = {r["node"]: int(r["n"]) for r in at}
    entered: dict[str, int] = {}
    exited: dict[str, int] = {}
    finished = released = 0
    for row in logged:
        count = int(row["n"])
        if row["event"] == "entered":
            entered[row["node"]] = entered.get(row["node"], 0) + count
        elif row["event"] == "exited":
            exited[row["reason"]] = exited.get(row["reason"], 0) + count
        elif row["event"] == "finished":
            finished += count
        elif row["event"] == "released":
            released += count
    return JourneyCounts(
        journey=journey.name,
        nodes=[
            NodeCount(
                node=n.name, type=n.type, now=now.get(n.name, 0), entered=entered.get(n.name, 0)
            )
            for n in journey.nodes
        ],
        in_journey=sum(now.values()),
        exited=exited,
        finished=finished,
        released=released,
        goals=[
            g for i, name in enumerate(journey.goals) for g in _goal(journey, engine, ctx, i, name)
        ],
        paths={str(r["path"]): int(r["n"]) for r in took},
    )


def _goal(
    journey: Journey, engine: Engine, ctx: CompileContext, index: int, name: str
) -> list[GoalCount]:
    """Everyone who entered, then each split path (whoever took it: a control path may end at
    once): customers, and how many are in the goal."""
    reached = sql.in_segment(name, ctx, f"goals.{index}")
    customer = exp.Case(ifs=[exp.If(this=reached, true=column(CUSTOMER))])
    entered = exp.and_(sql.of_journey(journey), column(sql.EVENT).eq(string("entered")))
    figures = [
        exp.alias_(exp.Count(this=exp.Distinct(expressions=[column(CUSTOMER)])), "customers"),
        exp.alias_(exp.Count(this=exp.Distinct(expressions=[customer])), "reached"),
    ]
    everyone = engine.rows(exp.select(*figures).from_(table(sql.TRAVEL_LOG)).where(entered))
    by_path = engine.rows(
        exp.select(column(sql.PATH), column(sql.IS_CONTROL), *(f.copy() for f in figures))
        .from_(table(sql.TRAVEL_LOG))
        .where(exp.and_(sql.of_journey(journey), exp.not_(column(sql.PATH).is_(exp.null()))))
        .group_by(column(sql.PATH), column(sql.IS_CONTROL))
        .order_by(column(sql.IS_CONTROL), column(sql.PATH))
    )
    # Only the paths of a percent split that holds a control back were chosen at random beside
    # it; a conditional split's paths (chosen by who the customers are) have no control.
    controls = {
        str(row["path"]): Share(int(row["reached"]), int(row["customers"]))
        for row in by_path
        if row["is_control"]
    }
    control_of = {
        path.name: held.name
        for node in journey.nodes
        if node.type == "percent_split"
        for held in node.paths
        if held.control
        for path in node.paths
        if not path.control
    }
    lines = [
        GoalCount.of(
            name, None, False, Share(int(everyone[0]["reached"]), int(everyone[0]["customers"]))
        )
    ]
    for row in by_path:
        path = Share(int(row["reached"]), int(row["customers"]))
        versus = None
        if not row["is_control"]:
            held = control_of.get(str(row["path"]))
            versus = conversion_versus_control(
                path,
                controls.get(held) if held is not None else None,
                what="goal conversions",
                without="this path's split holds no control back",
            )
        lines.append(GoalCount.of(name, row["path"], bool(row["is_control"]), path, versus))
    return lines


def customer_path(
    journey: Journey, engine: Engine, customer_id: str, tables: TableSettings
) -> list[Step]:
    """One customer's travel log in this journey, oldest first: empty for a customer who has
    not entered it, NotFound for an id that is no customer's at all."""
    unknown = NotFound(
        f"customer {customer_id!r} is not in {tables.profile} and has no travel log in "
        f"journey {journey.name!r}"
    )
    if "\x00" in customer_id:  # no one's: no engine keeps NUL in text (PostgreSQL refuses it)
        raise unknown
    ensure_tables(engine)
    order = exp.Case(
        ifs=[
            exp.If(this=column(sql.EVENT).eq(string(event)), true=exp.Literal.number(rank))
            for rank, event in enumerate(("exited", "entered", "finished", "released"))
        ]
    )
    rows = engine.rows(
        exp.select(*(column(c) for c in (sql.NODE, sql.EVENT, sql.AT, sql.PATH, sql.IS_CONTROL)))
        .select(column(sql.REASON), column("run_id"))
        .from_(table(sql.TRAVEL_LOG))
        .where(exp.and_(sql.of_journey(journey), column(CUSTOMER).eq(string(customer_id))))
        .order_by(column(sql.AT), order)
    )
    if not rows and not _is_customer(engine, customer_id, tables):
        raise unknown
    return [
        Step(
            node=r["node"],
            event=r["event"],
            at=r["at"],
            path=r["path"],
            is_control=bool(r["is_control"]),
            reason=r["reason"],
            run_id=r["run_id"],
        )
        for r in rows
    ]


def _is_customer(engine: Engine, customer_id: str, tables: TableSettings) -> bool:
    # Compared as text, as the travel log keeps ids: a number typed as an id is no error.
    found = engine.rows(
        exp.select(exp.Literal.number(1))
        .from_(table(tables.profile))
        .where(exp.cast(column(tables.id), exp.DataType.Type.TEXT).eq(string(customer_id)))
        .limit(1)
    )
    return bool(found)


def check_edit(journey: Journey, engine: Engine) -> dict[str, int]:
    """Customers at nodes this version of the journey drops, by node; refuse the version when
    it does not say (in `removed_nodes`) where they go."""
    if sql.POSITIONS not in engine.catalog().tables:
        return {}
    kept = {n.name for n in journey.nodes}
    at = engine.rows(
        exp.select(column(sql.NODE), exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(sql.POSITIONS))
        .where(sql.of_journey(journey))
        .group_by(column(sql.NODE))
    )
    stranded = {r["node"]: int(r["n"]) for r in at if r["node"] not in kept}
    unsaid = sorted(set(stranded) - set(journey.removed_nodes))
    if unsaid:
        shown = ", ".join(f"{node!r} ({stranded[node]:,})" for node in unsaid)
        raise DefinitionError(
            f"customers are at {shown}, which this version removes; say where they go: "
            f"removed_nodes: {{{unsaid[0]}: <a node> or release}}",
            field="removed_nodes",
        )
    return stranded


def move_stranded(
    journey: Journey, engine: Engine, stranded: Mapping[str, int], now: datetime
) -> None:
    """Move the customers at removed nodes where `removed_nodes` says (they enter that node
    now), or release them; the travel log records it."""
    if not stranded:
        return
    with engine.transaction():
        for old in stranded:
            new = journey.removed_nodes[old]
            where = exp.and_(sql.of_journey(journey), column(sql.NODE).eq(string(old)))
            event, node = (
                ("released", column(sql.NODE)) if new == RELEASE else ("entered", string(new))
            )
            logged = (
                exp.select(
                    string(journey.name),
                    column(CUSTOMER),
                    node,
                    string(event),
                    sql.moment(now),
                    column(sql.PATH),
                    column(sql.IS_CONTROL),
                    string(f"node {old!r} removed"),
                    string(""),
                )
                .from_(table(sql.POSITIONS))
                .where(where)
            )
            engine.execute(
                exp.insert(logged, table(sql.TRAVEL_LOG), columns=[c for c, _ in sql.LOG_COLUMNS])
            )
            if new == RELEASE:
                engine.execute(exp.delete(table(sql.POSITIONS), where=where.copy()))
            else:
                engine.execute(
                    exp.Update(
                        this=table(sql.POSITIONS),
                        expressions=[
                            exp.EQ(this=column(sql.NODE), expression=string(new)),
                            exp.EQ(this=column(sql.ENTERED_AT), expression=sql.moment(now)),
                        ],
                        where=exp.Where(this=where.copy()),
                    )
                )


def release_everyone(journey: Journey, engine: Engine, now: datetime) -> int:
    """End the journey for everyone in it (logged as released); how many there were."""
    ensure_tables(engine)
    inside = engine.rows(
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(sql.POSITIONS))
        .where(sql.of_journey(journey))
    )[0]["n"]
    released = (
        exp.select(
            string(journey.name),
            column(CUSTOMER),
            column(sql.NODE),
            string("released"),
            sql.moment(now),
            column(sql.PATH),
            column(sql.IS_CONTROL),
            string("journey ended"),
            string(""),
        )
        .from_(table(sql.POSITIONS))
        .where(sql.of_journey(journey))
    )
    with engine.transaction():
        engine.execute(
            exp.insert(released, table(sql.TRAVEL_LOG), columns=[c for c, _ in sql.LOG_COLUMNS])
        )
        engine.execute(exp.delete(table(sql.POSITIONS), where=sql.of_journey(journey)))
    return int(inside)
