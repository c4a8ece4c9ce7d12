"""Journeys: runs of a six-node journey over every profile against hand-written DuckDB SQL doing
the same moves and a `COPY … (COMPRESSION gzip)` of the same files, in the same process.

The journey (activate → delay → conditional split → activate | percent split → activate) admits
every profile. Four runs, a day apart, as its schedule would make them:

1. admit everyone, send the welcome file, everyone waits;
2. nobody moves (all still waiting);
3. the wait is over: everyone passes the tier split, gold customers get their offer, the rest
   the percent split (10 % held back) and the offer email, and everyone finishes;
4. nobody moves (everyone has finished; no one enters twice).

The hand-written side does runs 1 and 3 into tables of its own with the same columns: the
entrants (not in the journey, never finished it), the files, and in one transaction the travel
log, the recipients ledger and the positions. Both sides must send the same number of rows, and
each ends with a CHECKPOINT, so neither pays for writing the other's changes to the file.
Issue 9's targets: ratio ≤ 1.5, a run under 10 s at 1M entrants, a run where nobody moves under
1 s; printed, never asserted.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlglot import exp

from audience.activation import ledger
from audience.activation.journey import ensure_tables
from audience.compile.assignment import bucket
from audience.definitions.loader import load_text
from audience.workspace import Workspace
from bench.campaign import ATTRIBUTES

JOURNEY = "Bench journey"
DEFINITIONS = """\
kind: destination
name: bench-journey-folder
type: filesystem
settings: {path: "FOLDER"}
file: {format: csv, compression: gzip, header: true}
default_attributes: ATTRIBUTES
---
kind: segment
name: Journey entrants
where: {attribute: lifetime_order_count, op: ">=", value: 0}
---
kind: segment
name: Gold tier
where: {attribute: loyalty_tier, op: "=", value: gold}
---
kind: journey
name: JOURNEY
include: [Journey entrants]
schedule: {every: {value: 1, unit: days}}
nodes:
  - {name: Welcome email, type: activate, destinations: [bench-journey-folder]}
  - {name: Wait 2 days, type: delay, value: 2, unit: days}
  - name: Tier
    type: conditional_split
    paths:
      - {name: Gold, segment: Gold tier, next: Gold offer}
      - {name: Everyone else, next: Split}
  - {name: Gold offer, type: activate, destinations: [bench-journey-folder], next: end}
  - name: Split
    type: percent_split
    paths:
      - {name: Offer, percent: 90, next: Offer email}
      - {name: Control, percent: 10, control: true}
  - {name: Offer email, type: activate, destinations: [bench-journey-folder]}
""".replace("ATTRIBUTES", ATTRIBUTES).replace("JOURNEY", JOURNEY)
LOG = 'journey, customer_id, node, event, "at", path, is_control, reason, run_id'
LEDGER = (
    "customer_id, activation_kind, activation_name, sub_audience, treatment, is_control, "
    "destination, run_id, delivered_at"
)


class HandWritten:
    """The same journey as a data team would script it: temporary tables, COPY, and one
    transaction of inserts per run, on tables `bench_j_*` of its own."""

    def __init__(self, connection: Any, folder: Path) -> None:
        self.connection = connection
        self.folder = folder
        for name, like in (
            ("bench_j_positions", "audience_journey_positions"),
            ("bench_j_log", "audience_journey_log"),
            ("bench_j_recipients", "audience_recipients"),
        ):
            connection.execute(f"create or replace table {name} as from {like} limit 0")
        self.columns = ", ".join(f"m.{c.strip()}" for c in ATTRIBUTES.strip("[]").split(","))

    def _copy(self, who: str, name: str) -> int:
        target = self.folder / f"{name}.csv.gz"
        self.connection.execute(
            f"copy (select {self.columns} from merged_customers m join ({who}) w "
            f"on m.amperity_id = w.customer_id) to '{target}' (header, compression gzip)"
        )
        return int(self.connection.execute(f"select count(*) from ({who})").fetchone()[0])

    def admit(self, at: str, run: str) -> int:
        """Run 1: entrants get the welcome file and wait; rows sent."""
        c = self.connection
        c.execute(
            "create or replace temp table b_entrants as select cast(amperity_id as varchar) "
            "as customer_id from customer_360 where lifetime_order_count >= 0 and "
            "cast(amperity_id as varchar) not in (select customer_id from bench_j_positions "
            "union all select customer_id from bench_j_log where event in "
            "('finished', 'exited', 'released'))"
        )
        sent = self._copy("select customer_id from b_entrants", "welcome")
        c.begin()
        for node in ("Welcome email", "Wait 2 days"):
            c.execute(
                f"insert into bench_j_log ({LOG}) select '{JOURNEY}', customer_id, '{node}', "
                f"'entered', {at}, null, false, null, '{run}' from b_entrants"
            )
        c.execute(
            f"insert into bench_j_recipients ({LEDGER}) select customer_id, 'journey', "
            f"'{JOURNEY}', 'Welcome email', null, false, 'bench-journey-folder', '{run}', {at} "
            "from b_entrants"
        )
        c.execute(
            "insert into bench_j_positions (journey, customer_id, node, entered_at, path, "
            f"is_control, run_id) select '{JOURNEY}', customer_id, 'Wait 2 days', {at}, null, "
            f"false, '{run}' from b_entrants"
        )
        c.commit()
        return sent

    def move(self, at: str, run: str) -> int:
        """Run 3: everyone's wait is over; they split, get their offers and finish."""
        c = self.connection
        share = bucket(exp.column("customer_id", table="p"), f"{JOURNEY}:Split", "duckdb")
        c.execute(
            "create or replace temp table b_movers as select p.customer_id, p.customer_id in "
            "(select amperity_id from customer_360 where loyalty_tier = 'gold') as gold, "
            f"{share.sql('duckdb')} as share from bench_j_positions p where journey = "
            f"'{JOURNEY}' and node = 'Wait 2 days' and entered_at <= {at} - interval 2 day"
        )
        gold = "select customer_id from b_movers where gold"
        offer = "select customer_id from b_movers where not gold and share < 9000"
        control = "select customer_id from b_movers where not gold and share >= 9000"
        sent = self._copy(gold, "gold") + self._copy(offer, "offer")
        c.begin()
        for node, event, who in (
            ("Tier", "entered", "select customer_id from b_movers"),
            ("Gold offer", "entered", gold),
            ("Gold offer", "finished", gold),
            ("Split", "entered", "select customer_id from b_movers where not gold"),
            ("Offer email", "entered", offer),
            ("Offer email", "finished", offer),
            ("Split", "finished", control),
        ):
            c.execute(
                f"insert into bench_j_log ({LOG}) select '{JOURNEY}', customer_id, '{node}', "
                f"'{event}', {at}, null, false, null, '{run}' from ({who})"
            )
        for node, path, is_control, who in (
            ("Gold offer", "Gold", "false", gold),
            ("Offer email", "Offer", "false", offer),
            ("Split", "Control", "true", control),
        ):
            c.execute(
                f"insert into bench_j_recipients ({LEDGER}) select customer_id, 'journey', "
                f"'{JOURNEY}', '{node}', '{path}', {is_control}, 'bench-journey-folder', "
                f"'{run}', {at} from ({who})"
            )
        c.execute(
            f"delete from bench_j_positions where journey = '{JOURNEY}' and customer_id in "
            "(select customer_id from b_movers)"
        )
        c.commit()
        return sent


def run(ws: Workspace, profiles: int) -> Table:
    """The four runs both ways; one table."""
    connection = getattr(ws.engine, "connection")  # noqa: B009 - the DuckDB engine's own
    start = ws.clock()
    table = Table(title=f"Journey runs (six nodes, gzip CSV to a folder) — {profiles:,} profiles")
    for column in ("run", "node entries", "sent", "Audience s", "SQL+COPY s", "ratio", "target"):
        table.add_column(column, justify="left" if column == "run" else "right")
    with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as theirs:
        ws.apply_documents(load_text(DEFINITIONS.replace("FOLDER", ours)))
        ledger.ensure_tables(ws.engine)
        ensure_tables(ws.engine)  # the baseline's tables copy their columns
        baseline = HandWritten(connection, Path(theirs))
        steps = (
            ("1: admit, welcome, wait", 0, baseline.admit, "< 10 s, ≤ 1.5×"),
            ("2: nobody moves (waiting)", 1, None, "< 1 s"),
            ("3: split, offers, finish", 2, baseline.move, "< 10 s, ≤ 1.5×"),
            ("4: nobody moves (finished)", 3, None, "< 1 s"),
        )
        for label, day, hand_written, target in steps:
            due = start + timedelta(days=day)
            began = time.perf_counter()
            result = ws.journey_tick(JOURNEY, now=due)
            connection.execute("checkpoint")  # each side pays for writing its own changes
            elapsed = time.perf_counter() - began
            if result.status != "succeeded":
                raise SystemExit(f"journey run {label}: {result.error}")
            moved = sum(result.counts["moved"].values())
            sent = int(result.counts["sent"])
            row = [label, f"{moved:,}", f"{sent:,}", f"{elapsed:.2f}", "", "", target]
            if hand_written is not None:
                at = f"timestamp '{due:%Y-%m-%d %H:%M:%S}'"
                began = time.perf_counter()
                theirs_sent = hand_written(at, f"baseline-{day}")
                connection.execute("checkpoint")
                baseline_time = time.perf_counter() - began
                if theirs_sent != sent:
                    raise SystemExit(f"{label}: Audience sent {sent:,}, the baseline {theirs_sent}")
                row[4:6] = [f"{baseline_time:.2f}", f"{elapsed / baseline_time:.2f}"]
            table.add_row(*row)
    return table
