"""Per-customer state of activations, kept in the engine beside the customer data (SPEC §10).

- `audience_recipients` — the recipients ledger: every customer sent or held in control, per run
  and destination (control rows have no destination);
- `audience_members` — who was in a recurring activation's audience at its last successful run,
  so the next run can tell who newly qualifies (one who left and came back is new again);
- `audience_state` — the version of these tables' layout, so they can be migrated.

Rows name the activation by kind and name (campaigns today; journeys and orchestrations use the
same tables) and carry the run id; readers only trust runs the metadata store marks succeeded,
so a run that fails half-way changes nothing that matters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlglot import exp

from audience.compile.campaign import (
    ACTIVATION_KIND,
    ACTIVATION_NAME,
    CUSTOMER,
    GROUP,
    IS_CONTROL,
    IS_NEW,
    SUB_AUDIENCE,
    DestinationColumns,
    PreviousRuns,
    sends_to,
)
from audience.compile.sql import column, string, table
from audience.definitions.campaign import Campaign
from audience.engines.base import Engine
from audience.errors import EngineError

RECIPIENTS = "audience_recipients"
MEMBERS = "audience_members"
STATE = "audience_state"
LAYOUT_VERSION = 2
"""1: the first layout (a `campaign` column, `audience_campaign_members`); 2: activation kind
and name."""
_FIRST_MEMBERS = "audience_campaign_members"
_TEXT = "TEXT"
_RECIPIENT_COLUMNS: tuple[tuple[str, str], ...] = (
    (CUSTOMER, _TEXT),
    (ACTIVATION_KIND, _TEXT),
    (ACTIVATION_NAME, _TEXT),
    (SUB_AUDIENCE, _TEXT),
    ("treatment", _TEXT),
    (IS_CONTROL, "BOOLEAN"),
    ("destination", _TEXT),
    ("run_id", _TEXT),
    ("delivered_at", "TIMESTAMP"),
)
_MEMBER_COLUMNS: tuple[tuple[str, str], ...] = (
    (ACTIVATION_KIND, _TEXT),
    (ACTIVATION_NAME, _TEXT),
    (CUSTOMER, _TEXT),
    ("run_id", _TEXT),
)
_STATE_COLUMNS: tuple[tuple[str, str], ...] = (("component", _TEXT), ("version", "INTEGER"))


def previous_runs(
    successes: Sequence[str], rule: Literal["since_last_run", "never_sent"] = "since_last_run"
) -> PreviousRuns:
    """What "newly qualified" compares with, from the ids of earlier successful runs (oldest
    first by scheduled time)."""
    return PreviousRuns(
        members_table=MEMBERS,
        recipients_table=RECIPIENTS,
        last_success=successes[-1] if successes else None,
        successes=tuple(successes),
        rule=rule,
    )


def remembers(engine: Engine, campaign: Campaign, run_id: str) -> bool:
    """Whether the audience of that run was remembered (it was not when the campaign was not
    recurring then, or when its audience was empty)."""
    found = (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
        .from_(table(MEMBERS))
        .where(exp.and_(of_campaign(campaign), column("run_id").eq(string(run_id))))
    )
    return bool(engine.rows(found)[0]["n"])


_LAYOUT = threading.Lock()
"""Runs in threads of one process share a database: one of them lays the tables out."""
_LAYOUT_ATTEMPTS = 5
"""Tries at laying the tables out while other processes do the same."""


def ensure_tables(engine: Engine) -> None:
    """Create the ledger tables if they are missing, and bring a first-layout ledger to the
    current layout."""
    with _LAYOUT:
        for attempt in range(_LAYOUT_ATTEMPTS):
            if _current(engine):
                return  # one look at the catalog, no statement
            try:
                _lay_out(engine)
                return
            except EngineError:
                # Another process laying the tables out at the same moment: PostgreSQL's
                # `CREATE TABLE IF NOT EXISTS` fails on the type its twin is creating. Its
                # statements commit one by one, so a moment later they are there to see.
                if attempt == _LAYOUT_ATTEMPTS - 1:
                    if _current(engine):
                        return
                    raise
                time.sleep(0.05 * (attempt + 1))


def _current(engine: Engine) -> bool:
    """Whether the tables are there in the current layout."""
    tables = engine.catalog().tables
    if not (STATE in tables and RECIPIENTS in tables and MEMBERS in tables):
        return False
    found = engine.rows(
        exp.select(column("version"))
        .from_(table(STATE))
        .where(column("component").eq(string("ledger")))
    )
    return [row["version"] for row in found] == [LAYOUT_VERSION]


def _lay_out(engine: Engine) -> None:
    tables = engine.catalog().tables
    create_table(engine, STATE, _STATE_COLUMNS)
    if RECIPIENTS in tables and "campaign" in tables[RECIPIENTS]:
        _migrate_first_layout(engine, has_members=_FIRST_MEMBERS in tables)
    create_table(engine, RECIPIENTS, _RECIPIENT_COLUMNS)
    create_table(engine, MEMBERS, _MEMBER_COLUMNS)
    engine.execute(exp.delete(table(STATE), where=column("component").eq(string("ledger"))))
    engine.execute(
        exp.insert(
            exp.select(string("ledger"), exp.Literal.number(LAYOUT_VERSION)),
            table(STATE),
            columns=[c for c, _ in _STATE_COLUMNS],
        )
    )


def create_table(
    engine: Engine, name: str, columns: Sequence[tuple[str, str]], *, temporary: bool = False
) -> None:
    """Create table `name` with `columns` (name, type) unless it is there; a `temporary` one
    goes with the connection."""
    properties = [exp.TemporaryProperty()] if temporary else []
    engine.execute(
        exp.Create(
            this=exp.Schema(
                this=table(name),
                expressions=[
                    exp.ColumnDef(
                        this=exp.to_identifier(col, quoted=True), kind=exp.DataType.build(kind)
                    )
                    for col, kind in columns
                ],
            ),
            kind="TABLE",
            exists=True,
            properties=exp.Properties(expressions=properties) if properties else None,
        )
    )


def _migrate_first_layout(engine: Engine, *, has_members: bool) -> None:
    """Layout 1 → 2: the `campaign` column becomes activation kind and name; the remembered
    audiences move to `audience_members`. The statements are fixed text, valid in every
    engine's dialect."""
    for statement in (
        "ALTER TABLE audience_recipients RENAME COLUMN campaign TO activation_name",
        "ALTER TABLE audience_recipients ADD COLUMN activation_kind TEXT DEFAULT 'campaign'",
    ):
        engine.execute(exp.maybe_parse(statement, dialect=engine.dialect))
    if has_members:
        create_table(engine, MEMBERS, _MEMBER_COLUMNS)
        engine.execute(
            exp.insert(
                exp.select(
                    string("campaign"), column("campaign"), column(CUSTOMER), column("run_id")
                ).from_(table(_FIRST_MEMBERS)),
                table(MEMBERS),
                columns=[c for c, _ in _MEMBER_COLUMNS],
            )
        )
        engine.execute(exp.Drop(tables=[table(_FIRST_MEMBERS)], kind="TABLE", exists=True))


def of_campaign(campaign: Campaign) -> exp.Expr:
    """Rows of `campaign` in the ledger tables."""
    return exp.and_(
        column(ACTIVATION_KIND).eq(string("campaign")),
        column(ACTIVATION_NAME).eq(string(campaign.name)),
    )


def materialise(engine: Engine, run_table: str, query: exp.Query) -> None:
    """Snapshot a run's assignments in a temporary table of the engine."""
    engine.execute(
        exp.Create(
            this=table(run_table),
            kind="TABLE",
            expression=query,
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
    )
    if engine.analyze_after_load:  # else PostgreSQL plans nested loops over a "1-row" table
        engine.execute(exp.Analyze(tables=[table(run_table)]))


def drop(engine: Engine, run_table: str) -> None:
    """Remove a run's snapshot."""
    engine.execute(exp.Drop(tables=[table(run_table)], kind="TABLE", exists=True))


def record_recipients(
    engine: Engine,
    *,
    run_table: str,
    campaign: Campaign,
    run_id: str,
    delivered_at: datetime,
    destinations: Sequence[DestinationColumns],
) -> None:
    """Write everyone sent (per destination that took them) or held in control."""
    stamp = exp.cast(
        string(delivered_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")),
        exp.DataType.Type.TIMESTAMP,
    )
    selects: list[exp.Select] = [
        _ledger_rows(run_table, campaign, run_id, stamp, None, exp.column(IS_CONTROL))
    ]
    selects += [
        _ledger_rows(run_table, campaign, run_id, stamp, dest.name, sends_to(campaign, dest))
        for dest in destinations
    ]
    for select in selects:
        engine.execute(
            exp.insert(select, table(RECIPIENTS), columns=[c for c, _ in _RECIPIENT_COLUMNS])
        )


def record_rows(engine: Engine, rows: exp.Select) -> None:
    """Add recipients to the ledger: `rows` gives customer, activation kind and name,
    sub-audience, treatment, is_control, destination, run id and delivery time, in that order."""
    engine.execute(exp.insert(rows, table(RECIPIENTS), columns=[c for c, _ in _RECIPIENT_COLUMNS]))


def _ledger_rows(
    run_table: str,
    campaign: Campaign,
    run_id: str,
    stamp: exp.Expr,
    destination: str | None,
    condition: exp.Expr,
) -> exp.Select:
    return (
        exp.select(
            exp.column(CUSTOMER),
            string("campaign"),
            string(campaign.name),
            exp.column(SUB_AUDIENCE),
            exp.column(GROUP),
            exp.column(IS_CONTROL),
            exp.cast(exp.null(), _TEXT) if destination is None else string(destination),
            string(run_id),
            stamp.copy(),
        )
        .from_(table(run_table))
        .where(exp.and_(exp.column(IS_NEW), condition))
    )


def record_members(engine: Engine, *, run_table: str, campaign: Campaign, run_id: str) -> None:
    """Remember this run's whole audience, for the next run's "newly qualified"."""
    rows = exp.select(
        string("campaign"), string(campaign.name), exp.column(CUSTOMER), string(run_id)
    ).from_(table(run_table))
    if campaign.match == "every":  # only then can a customer stand in several sub-audiences
        rows = rows.distinct()
    engine.execute(exp.insert(rows, table(MEMBERS), columns=[c for c, _ in _MEMBER_COLUMNS]))


def forget_run(engine: Engine, run_id: str) -> None:
    """Remove what an earlier attempt of this run wrote, so a retry records everything once."""
    for name in (RECIPIENTS, MEMBERS):
        engine.execute(
            exp.delete(table(name), where=exp.EQ(this=column("run_id"), expression=string(run_id)))
        )


def forget_activation_members(engine: Engine, kind: str, name: str) -> None:
    """Forget every audience remembered for one activation."""
    engine.execute(
        exp.delete(
            table(MEMBERS),
            where=exp.and_(
                column(ACTIVATION_KIND).eq(string(kind)), column(ACTIVATION_NAME).eq(string(name))
            ),
        )
    )


def forget_older_members(engine: Engine, *, campaign: Campaign, keep_run_ids: set[str]) -> None:
    """Forget the campaign's remembered audiences but those of `keep_run_ids`."""
    engine.execute(
        exp.delete(
            table(MEMBERS),
            where=exp.and_(
                of_campaign(campaign),
                exp.not_(column("run_id").isin(*(string(i) for i in sorted(keep_run_ids)))),
            ),
        )
    )
