"""Campaign results on a dozen customers whose orders are written here by hand, on DuckDB and
PostgreSQL: every figure below was worked out on paper from the table of orders.

Groups come from the portable hash of the campaign's name and the id (checked in Python):
Gold: g2, g4, g6, g7, g9 → Offer; g1, g3, g5, g8 → Control. Silver: s1 → Gift (its control
stays empty). Rest (no control): r1, r2, r3.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from audience.activation.results import CampaignResults, GroupResult
from audience.cli.main import app
from audience.compile.conditions import segment_ids
from audience.definitions.loader import load_text
from audience.errors import DefinitionError
from audience.settings import SETTINGS_FILE
from audience.workspace import Workspace
from realservices import POSTGRES_URL, make_workspace

CAMPAIGN = "Results test"
RUNS = [
    datetime(2026, 11, 2, tzinfo=UTC),
    datetime(2026, 11, 5, tzinfo=UTC),
    datetime(2026, 11, 6, tzinfo=UTC),
]
PROFILES = [
    # id, tier, in the audience at run 1, 2, 3
    *((f"g{i}", "gold", (True, True, True)) for i in (1, 3, 4, 5, 6, 7, 8)),
    ("g2", "gold", (True, False, True)),  # leaves, comes back: sent twice, measured once
    ("g9", "gold", (False, True, True)),  # newly qualifies at run 2: measured from then
    ("s1", "silver", (True, True, True)),
    *((f"r{i}", "none", (True, True, True)) for i in (1, 2, 3)),
]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


ORDERS = [
    # customer, order, when, revenue, is_return, is_cancellation
    ("g1", "o1", at("2026-10-25T10:00"), "100", False, False),  # before the launch
    ("g1", "o2", at("2026-11-10T10:00"), "50", False, False),
    ("g2", "o3", at("2026-11-01T12:00"), "80", False, False),  # after launch, before its run
    ("g2", "o4", at("2026-11-03T09:00"), "40", False, False),
    ("g2", "o5", at("2026-11-07T10:00"), "60", False, False),  # after its second send
    ("g4", "o6", at("2026-11-04T08:00"), "200", True, False),  # a return
    ("g4", "o7", at("2026-11-04T08:00"), "30", False, False),
    ("g5", "o8", at("2026-11-20T10:00"), "70", False, True),  # a cancellation
    ("g6", "o9", at("2026-11-25T10:00"), "90", False, False),  # after the as-of time
    ("g7", "o10", at("2026-11-12T10:00"), "25", False, False),
    ("g7", "o11", at("2026-11-15T10:00"), "35", False, False),
    ("g8", "o12", at("2026-11-02T00:00"), "45", False, False),  # at its run's very moment
    ("g9", "o13", at("2026-11-04T10:00"), "99", False, False),  # before its own first run
    ("g9", "o14", at("2026-11-06T10:00"), "11", False, False),
    ("s1", "o15", at("2026-11-08T10:00"), "15", False, False),
]


def bucket(customer: str) -> int:
    return int(hashlib.md5(f"{CAMPAIGN}:{customer}".encode()).hexdigest()[:8], 16) % 10_000


def test_the_groups_are_the_ones_the_module_docstring_names() -> None:
    offer = sorted(
        c for c in ("g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9") if bucket(c) < 5000
    )
    assert offer == ["g2", "g4", "g6", "g7", "g9"]
    assert bucket("s1") < 9000


NAMES = "{{ campaign_name }}_{{ sub_audience_name }}_{{ group_name }}_{{ run_id }}"


def documents(folder: Path, launch: str = "2026-11-01") -> str:
    return f"""\
kind: destination
name: drop
type: filesystem
settings: {{path: "{folder}"}}
file: {{format: csv, header: true, filename: "{NAMES}"}}
default_attributes: [amperity_id, email]
---
kind: segment
name: Chosen
where: {{attribute: in_audience, op: is_true}}
---
kind: campaign
name: {CAMPAIGN}
audience: {{include: [Chosen]}}
sub_audiences:
  - name: Gold
    where: {{attribute: tier, op: "=", value: gold}}
    treatments: [{{name: Offer, percent: 50, destinations: [drop]}}]
    control: 50
  - name: Silver
    where: {{attribute: tier, op: "=", value: silver}}
    treatments: [{{name: Gift, percent: 90, destinations: [drop]}}]
    control: 10
  - name: Rest
    treatments: [{{name: Standard, percent: 100, destinations: [drop]}}]
    control: 0
schedule: {{recurring: {{every: day, at: "00:00"}}}}
launch_date: {launch}
"""


def load_tables(ws: Workspace, run: int) -> None:
    """The profiles as they stand at run number `run`, and every order."""
    engine = ws.engine
    profiles = pa.table(
        {
            "amperity_id": [p[0] for p in PROFILES],
            "tier": [p[1] for p in PROFILES],
            "in_audience": [p[2][run] for p in PROFILES],
            "email": [f"{p[0]}@example.com" for p in PROFILES],
        }
    )
    engine.replace_table("customer_360", profiles.schema, profiles.to_batches())
    merged = profiles.select(["amperity_id", "email"])
    engine.replace_table("merged_customers", merged.schema, merged.to_batches())
    load_orders(ws, ORDERS)


def load_orders(ws: Workspace, orders: list[tuple[Any, ...]]) -> None:
    """The events table: one row per (customer, order, when, revenue, return, cancellation)."""
    table = pa.table(
        {
            "amperity_id": [o[0] for o in orders],
            "order_id": [o[1] for o in orders],
            "order_datetime": pa.array([o[2] for o in orders], pa.timestamp("us")),
            "order_revenue": pa.array([Decimal(o[3]) for o in orders], pa.decimal128(14, 2)),
            "is_return": [o[4] for o in orders],
            "is_cancellation": [o[5] for o in orders],
        }
    )
    ws.engine.replace_table("unified_transactions", table.schema, table.to_batches())
    ws.forget_catalog()


@pytest.fixture(params=["duckdb", "postgres"])
def sent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """The campaign applied and run three times (and once as a test send, which never counts)."""
    schema = request.getfixturevalue("own_postgres_schema") if request.param == "postgres" else None
    with make_workspace(tmp_path, request.param, schema) as ws:
        engine = (
            f'type = "postgres"\nurl = "{POSTGRES_URL}"\nschema = "{schema}"'
            if schema
            else 'type = "duckdb"\npath = "customer360.duckdb"'
        )
        (tmp_path / SETTINGS_FILE).write_text(f"[engine]\n{engine}\n")  # for the CLI
        send_three_runs(ws, tmp_path)
        yield ws


def send_three_runs(ws: Workspace, tmp_path: Path) -> None:
    """Apply the campaign and run it three times (and once as a test send)."""
    load_tables(ws, 0)
    ws.apply_documents(load_text(documents(tmp_path / "out"), "results.yaml"))
    for number, due in enumerate(RUNS):
        load_tables(ws, number)
        run = ws.campaign_run(CAMPAIGN, now=due)
        assert run.status == "succeeded", run.error
    assert ws.campaign_run(CAMPAIGN, now=RUNS[2], test_records=5).status == "succeeded"


def test_results_on_spark_are_those_on_duckdb(tmp_path: Path) -> None:
    """The same runs give the same figures, group by group, over Spark's Parquet ledger."""
    answers = []
    for engine in ("duckdb", "spark"):
        (tmp_path / engine).mkdir()
        with make_workspace(tmp_path / engine, engine) as ws:
            send_three_runs(ws, tmp_path / engine)
            results = ws.results.campaign(CAMPAIGN)
            answers.append([(g.sub_audience, g.group, *figures(g)) for g in results.groups])
    assert answers[0] == answers[1]
    assert answers[0][0] == ("Gold", "Offer", 5, 4, 6, 201.0)


def figures(group: GroupResult) -> tuple[int, int, int, float]:
    return group.recipients, group.purchasers, group.orders, group.revenue


def by_group(results: CampaignResults) -> dict[str, GroupResult]:
    return {f"{g.sub_audience}/{g.group}": g for g in results.groups}


def test_results_count_each_customer_once_from_their_first_run(sent: Workspace) -> None:
    results = sent.results.campaign(CAMPAIGN)  # as of NOW (2026-11-23 15:30), 30 days
    groups = by_group(results)
    assert list(groups) == [
        "Gold/Offer",
        "Gold/Control",
        "Silver/Gift",
        "Silver/Control",
        "Rest/Standard",
    ]
    # g2 (o4, o5), g4 (o7), g7 (o10, o11), g9 (o14); g6's order is after the as-of time
    assert figures(groups["Gold/Offer"]) == (5, 4, 6, 201.0)
    offer = groups["Gold/Offer"]
    assert offer.conversion_rate == pytest.approx(0.8)
    assert offer.revenue_per_recipient == pytest.approx(40.2)
    assert offer.average_order_value == pytest.approx(33.5)
    # g1 (o2) and g8 (o12, at the run's very moment); g5's order was canceled
    assert figures(groups["Gold/Control"]) == (4, 2, 2, 95.0)
    assert groups["Gold/Control"].is_control and groups["Gold/Control"].versus_control is None
    assert figures(groups["Silver/Gift"]) == (1, 1, 1, 15.0)
    assert figures(groups["Silver/Control"]) == (0, 0, 0, 0.0)
    assert groups["Silver/Control"].conversion_rate is None
    # a treatment nobody bought from
    assert figures(groups["Rest/Standard"]) == (3, 0, 0, 0.0)
    assert groups["Rest/Standard"].conversion_rate == 0.0
    assert groups["Rest/Standard"].average_order_value is None

    versus = offer.versus_control
    assert versus is not None and versus.verdict == "too few customers to tell"
    assert versus.incremental_conversion is None and versus.lift is None
    assert "the treatment has 5 and the control has 4" in (versus.reason or "")
    silver = groups["Silver/Gift"].versus_control
    assert silver is not None and silver.verdict == "too few customers to tell"
    assert "the control has 0" in (silver.reason or "")
    rest = groups["Rest/Standard"].versus_control
    assert rest is not None and rest.verdict == "no control group"
    assert results.runs == 3  # the test send is not counted
    assert results.measured_from == datetime(2026, 11, 1, tzinfo=UTC)


def test_a_shorter_window_a_later_launch_and_an_earlier_as_of(
    sent: Workspace, tmp_path: Path
) -> None:
    short = by_group(sent.results.campaign(CAMPAIGN, window=timedelta(days=5)))
    # five days from each first run: g2 o4, g4 o7, g9 o14 (from 11-05); g8 o12
    assert figures(short["Gold/Offer"]) == (5, 3, 3, 81.0)
    assert figures(short["Gold/Control"]) == (4, 1, 1, 45.0)

    early = sent.results.campaign(CAMPAIGN, as_of=datetime(2026, 11, 4, 12, tzinfo=UTC))
    # only run 1 was due: g9 was not sent yet; g2 o4 and g4 o7 (08:00) so far; g8 o12
    assert early.runs == 1
    assert figures(by_group(early)["Gold/Offer"]) == (4, 2, 2, 70.0)
    assert figures(by_group(early)["Gold/Control"]) == (4, 1, 1, 45.0)

    sent.apply_documents(load_text(documents(tmp_path / "out", launch="2026-11-04"), "r.yaml"))
    later = by_group(sent.results.campaign(CAMPAIGN))
    # from 11-04 00:00 for runs before it: g2 o5, g4 o7, g7 o10 o11, g9 o14; g1 o2
    assert figures(later["Gold/Offer"]) == (5, 4, 5, 161.0)
    assert figures(later["Gold/Control"]) == (4, 1, 1, 50.0)


def test_the_cli_prints_writes_csv_and_json(sent: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "results.csv"
    done = runner.invoke(
        app,
        [
            "campaign",
            "results",
            CAMPAIGN,
            "-w",
            str(sent.directory),
            "--window",
            "5d",
            "--as-of",
            "2026-11-23T15:30:00Z",
            "--csv",
            str(target),
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["window_days"] == 5 and data["runs"] == 3
    assert [g["recipients"] for g in data["groups"]] == [5, 4, 1, 0, 3]
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sub_audience"], r["group"], r["purchasers"]) for r in rows] == [
        ("Gold", "Offer", "3"),
        ("Gold", "Control", "1"),
        ("Silver", "Gift", "0"),  # s1 bought on 11-08, past its five days
        ("Silver", "Control", "0"),
        ("Rest", "Standard", "0"),
    ]
    assert rows[0]["verdict"] == "too few customers to tell"
    table = runner.invoke(app, ["campaign", "results", CAMPAIGN, "-w", str(sent.directory)])
    assert table.exit_code == 0 and "Gold · Offer" in table.stdout
    assert "Rest · Standard: this sub-audience has no control" in table.stdout


@pytest.mark.parametrize("window", ["0d", "thirty", "-3d", "5y", "99999w"])
def test_a_bad_window_is_one_line_naming_it(sent: Workspace, window: str) -> None:
    done = CliRunner().invoke(
        app, ["campaign", "results", CAMPAIGN, "-w", str(sent.directory), "--window", window]
    )
    assert done.exit_code == 1
    assert "--window" in done.output and len(done.output.strip().splitlines()) == 1


def test_an_unknown_campaign_is_refused(sent: Workspace) -> None:
    done = CliRunner().invoke(app, ["campaign", "results", "Nope", "-w", str(sent.directory)])
    assert done.exit_code == 1 and "'Nope' does not exist" in done.output


def members(ws: Workspace, condition: str, now: datetime | None = None) -> list[str]:
    """Who a segment with this condition holds, as of `now`."""
    ws.apply_documents(load_text(f"kind: segment\nname: Probe\nwhere: {condition}\n", "p.yaml"))
    segment, _ = ws.segment("Probe")
    query = segment_ids(segment, ws.compile_context(now=now))
    return sorted(str(row["amperity_id"]) for row in ws.engine.rows(query))


def test_sent_conditions_pick_customers_contacted_by_an_activation(sent: Workspace) -> None:
    everyone = sorted(p[0] for p in PROFILES)
    treated = ["g2", "g4", "g6", "g7", "g9", "r1", "r2", "r3", "s1"]  # never the control
    assert members(sent, f"{{sent: {{activation: {CAMPAIGN}}}}}") == treated
    # within the last 20 days of 11-23: from 11-03, so runs 2 (g9 new) and 3 (g2 back)
    recent = f"{{sent: {{activation: {CAMPAIGN}, within_last: {{value: 20, unit: days}}}}}}"
    assert members(sent, recent) == ["g2", "g9"]
    assert members(sent, f"{{not: {recent}}}") == sorted(set(everyone) - {"g2", "g9"})
    by = f"{{sent: {{activation: {CAMPAIGN}, kind: campaign, treatment: Standard}}}}"
    assert members(sent, by) == ["r1", "r2", "r3"]
    silver = f"{{sent: {{activation: {CAMPAIGN}, sub_audience: Silver, destination: drop}}}}"
    assert members(sent, silver) == ["s1"]
    # as of before the first run, nobody had been sent anything
    assert members(sent, f"{{sent: {{activation: {CAMPAIGN}}}}}", RUNS[0].replace(day=1)) == []


@pytest.mark.parametrize(
    ("condition", "field", "message"),
    [
        ("{sent: {activation: Nope}}", "where.sent.activation", "no campaign or journey"),
        (
            f"{{sent: {{activation: {CAMPAIGN}, kind: journey}}}}",
            "where.sent.activation",
            "journey",
        ),
        (
            f"{{sent: {{activation: {CAMPAIGN}, treatment: Offr}}}}",
            "where.sent.treatment",
            "'Offer'",
        ),
        (
            f"{{sent: {{activation: {CAMPAIGN}, destination: elsewhere}}}}",
            "where.sent.destination",
            "'drop'",
        ),
        (f"{{sent: {{activation: {CAMPAIGN}, within_last: {{value: 0}}}}}}", "value", "greater"),
    ],
)
def test_a_sent_condition_naming_what_is_not_there_is_refused(
    sent: Workspace, condition: str, field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        members(sent, condition)
    assert field in str(raised.value) and message in str(raised.value)


def test_item_level_events_count_each_order_once(sent: Workspace) -> None:
    """With one row per item (events_one_row_per_order = false) orders are distinct order ids
    and revenue is the items' sum: o2 and o11 split into items give the same figures."""
    items = [
        piece
        for order in ORDERS
        for piece in (
            [(*order[:3], str(Decimal(order[3]) / 2), *order[4:])] * 2
            if order[1] in ("o2", "o11")
            else [order]
        )
    ]
    load_orders(sent, items)
    sent.settings.tables.events_one_row_per_order = False
    groups = by_group(sent.results.campaign(CAMPAIGN))
    assert figures(groups["Gold/Offer"]) == (5, 4, 6, 201.0)
    assert figures(groups["Gold/Control"]) == (4, 2, 2, 95.0)
    sent.settings.tables.events_one_row_per_order = True  # rows are orders: o2 counts twice
    assert figures(by_group(sent.results.campaign(CAMPAIGN))["Gold/Control"]) == (4, 2, 3, 95.0)


def test_a_journeys_control_path_is_never_sent_so_naming_it_is_refused(sent: Workspace) -> None:
    journey = """\
kind: journey
name: Nurture
include: [Chosen]
nodes:
  - name: Split
    type: percent_split
    paths:
      - {name: Offer, percent: 90, next: Offer email}
      - {name: Held back, percent: 10, control: true}
  - {name: Offer email, type: activate, destinations: [drop]}
"""
    sent.apply_documents(load_text(journey, "j.yaml"))
    assert members(sent, "{sent: {activation: Nurture, treatment: Offer}}") == []  # not run yet
    with pytest.raises(DefinitionError) as raised:
        members(sent, "{sent: {activation: Nurture, treatment: Held back}}")
    assert "where.sent.treatment" in str(raised.value) and "'Offer'" in str(raised.value)
