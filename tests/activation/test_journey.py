"""Journeys over simulated weeks (issue 9): who enters, waits, splits, is sent, exits and
finishes, computed by hand from a small table the tests control, on DuckDB and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlglot import exp
from statsmodels.stats.proportion import confint_proportions_2indep
from typer.testing import CliRunner

from audience.cli.main import app
from audience.definitions.loader import validate_data
from audience.errors import DefinitionError, StateError, UnknownReference
from audience.settings import SETTINGS_FILE, render_settings
from audience.workspace import Workspace
from realservices import NOW, make_workspace

DAY = timedelta(days=1)


def apply(ws: Workspace, *documents: dict[str, Any]) -> None:
    ws.apply_documents([validate_data(d) for d in documents])


def ids(ws: Workspace, count: int) -> list[str]:
    rows = ws.engine.rows(
        exp.maybe_parse(f"select amperity_id from customer_360 order by amperity_id limit {count}")
    )
    return [str(r["amperity_id"]) for r in rows]


def set_flags(ws: Workspace, flags: dict[str, tuple[bool, bool]]) -> None:
    """The table the journey's segments read: who is new, who purchased."""
    customers = sorted(flags)
    ws.engine.replace_table(
        "journey_flags",
        pa.schema(
            [("amperity_id", pa.string()), ("is_new", pa.bool_()), ("purchased", pa.bool_())]
        ),
        [
            pa.record_batch(
                [
                    pa.array(customers),
                    pa.array([flags[c][0] for c in customers]),
                    pa.array([flags[c][1] for c in customers]),
                ],
                names=["amperity_id", "is_new", "purchased"],
            )
        ],
    )
    ws.forget_catalog()


def bucket(seed: str, customer: str) -> int:
    """The portable hash bucket, computed here independently of the SQL."""
    return int(hashlib.md5(f"{seed}:{customer}".encode()).hexdigest()[:8], 16) % 10_000


def welcome(folder: Path, **extra: Any) -> list[dict[str, Any]]:
    """SPEC Appendix A's journey, over the flags table, sending to a folder."""
    return [
        {
            "kind": "destination",
            "name": "drop",
            "type": "filesystem",
            "settings": {"path": str(folder)},
            "file": {"format": "csv"},
            "default_attributes": ["amperity_id", "email"],
        },
        {
            "kind": "segment",
            "name": "New customers",
            "sql": "select amperity_id from journey_flags where is_new",
        },
        {
            "kind": "segment",
            "name": "Purchased since entry",
            "sql": "select amperity_id from journey_flags where purchased",
        },
        {
            "kind": "journey",
            "name": "Welcome series",
            "include": ["New customers"],
            "exit": ["Purchased since entry"],
            "goals": ["Purchased since entry"],
            "allow_reentry": False,
            "schedule": {"every": {"value": 1, "unit": "days"}},
            "nodes": [
                {"name": "Welcome email", "type": "activate", "destinations": ["drop"]},
                {"name": "Wait 3 days", "type": "delay", "value": 3, "unit": "days"},
                {
                    "name": "Split",
                    "type": "percent_split",
                    "paths": [
                        {"name": "Offer", "percent": 90, "next": "Offer email"},
                        {"name": "Control", "percent": 10, "control": True},
                    ],
                },
                {"name": "Offer email", "type": "activate", "destinations": ["drop"]},
            ],
            **extra,
        },
    ]


def sent_ids(folder: Path, node: str, day: str) -> list[str]:
    (path,) = folder.glob(f"Welcome_series_{node.replace(' ', '_')}_{day}.csv")
    with path.open(newline="") as file:
        return sorted(row["amperity_id"] for row in csv.DictReader(file))


def tick(ws: Workspace, when: Any) -> dict[str, Any]:
    run = ws.run_now("journey", "Welcome series", now=when)
    assert run.status == "succeeded", run.error
    return run.counts


def at_nodes(ws: Workspace) -> dict[str, int]:
    counts = ws.journey_counts("Welcome series")
    return {n.node: n.now for n in counts.nodes if n.now}


@pytest.fixture(params=["duckdb", "postgres"])
def journey_workspace(
    request: pytest.FixtureRequest, tmp_path: Path, sample_database: Path
) -> Iterator[Workspace]:
    """A workspace of its own on each engine, with the sample loaded."""
    import shutil

    directory = tmp_path / "workspace"
    directory.mkdir()
    if request.param == "duckdb":
        shutil.copy(sample_database, directory / "customer360.duckdb")
        with make_workspace(directory, "duckdb") as ws:
            yield ws
        return
    schema = request.getfixturevalue("own_postgres_schema")
    with make_workspace(directory, "postgres", schema=schema) as ws:
        ws.load_sample(profiles=300, seed=7)
        yield ws


def test_the_welcome_series_over_a_week(journey_workspace: Workspace, tmp_path: Path) -> None:
    ws, out = journey_workspace, tmp_path / "out"
    customers = ids(ws, 20)
    set_flags(ws, {c: (True, False) for c in customers})
    apply(ws, *welcome(out))
    start = NOW.replace(hour=9, minute=0, second=0, microsecond=0)

    first = tick(ws, start)
    assert first["entered"] == 20 and first["sent"] == 20
    assert sent_ids(out, "Welcome email", start.strftime("%Y%m%d")) == sorted(customers)
    assert at_nodes(ws) == {"Wait 3 days": 20}

    # Two purchase on day 1: they leave at that day's run, from the delay.
    buyers = customers[:2]
    set_flags(ws, {c: (True, c in buyers) for c in customers})
    second = tick(ws, start + DAY)
    assert second["exited"] == 2 and second["entered"] == 0 and second["sent"] == 0
    assert at_nodes(ws) == {"Wait 3 days": 18}
    assert tick(ws, start + 2 * DAY)["moved"] == {}

    # Day 3: the wait is over; the split sends 90 % on to the offer, holds 10 % back.
    fourth = tick(ws, start + 3 * DAY)
    waiting = [c for c in customers if c not in buyers]
    control = sorted(c for c in waiting if bucket("Welcome series:Split", c) >= 9000)
    offered = sorted(c for c in waiting if c not in control)
    assert fourth["moved"] == {"Split": 18, "Offer email": len(offered)}
    assert fourth["finished"] == 18 and fourth["sent"] == len(offered)
    assert fourth["control"] == len(control)  # held back by the split, in the ledger
    assert sent_ids(out, "Offer email", (start + 3 * DAY).strftime("%Y%m%d")) == offered
    assert at_nodes(ws) == {}

    # Nobody enters twice without re-entry, though they still qualify.
    assert tick(ws, start + 4 * DAY)["entered"] == 0
    # Customers move forward in time: a run as of an earlier moment is refused, by hand before
    # any run is recorded, and at the run itself (a retry, the worker)
    runs = len(ws.runs("Welcome series"))
    with pytest.raises(StateError, match="back in time"):
        ws.journey_tick("Welcome series", now=start + DAY + timedelta(hours=1))
    assert len(ws.runs("Welcome series")) == runs
    late = ws.run_now("journey", "Welcome series", now=start + DAY + timedelta(hours=2))
    assert late.status == "failed" and "back in time" in (late.error or "")
    counts = ws.journey_counts("Welcome series")
    assert {n.node: n.entered for n in counts.nodes} == {
        "Welcome email": 20,
        "Wait 3 days": 20,
        "Split": 18,
        "Offer email": len(offered),
    }
    assert counts.exited == {"Purchased since entry": 2} and counts.finished == 18
    # The goal: who bought, per path, once everyone is through.
    bought = {*buyers, *offered[:3], *control[:1]}
    set_flags(ws, {c: (True, c in bought) for c in customers})
    goals = {(g.path, g.is_control): g for g in ws.journey_counts("Welcome series").goals}
    assert (goals[None, False].customers, goals[None, False].reached) == (20, len(bought))
    offer = goals["Offer", False]
    assert (offer.customers, offer.reached) == (len(offered), 3)
    if control:
        held = goals["Control", True]
        assert (held.customers, held.reached) == (len(control), 1)
    # a path of under 30 beside its control gets no figure, only the reason
    assert offer.versus_control is not None
    assert offer.versus_control.verdict in {"too few customers to tell", "no control group"}
    assert offer.versus_control.lift is None and offer.lift_over_control is None
    assert offer.versus_control.reason

    path = ws.journey_path("Welcome series", offered[0])
    assert [(s.node, s.event) for s in path] == [
        ("Welcome email", "entered"),
        ("Wait 3 days", "entered"),
        ("Split", "entered"),
        ("Offer email", "entered"),
        ("Offer email", "finished"),
    ]
    assert path[-1].path == "Offer" and not path[-1].is_control
    ledger = ws.engine.rows(
        exp.maybe_parse(
            "select treatment, is_control, destination, count(*) as n from audience_recipients "
            "where activation_kind = 'journey' group by 1, 2, 3 order by 1, 2, 3"
        )
    )
    assert [(r["treatment"], r["is_control"], r["destination"], r["n"]) for r in ledger] == sorted(
        [(None, False, "drop", 20), ("Offer", False, "drop", len(offered))]
        + ([("Control", True, None, len(control))] if control else []),
        key=lambda row: (row[0] or "", row[1], row[2] or ""),
    )


def graph(nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"kind": "journey", "name": "J", "include": ["New customers"], "nodes": nodes, **extra}


SEND = {"type": "activate", "destinations": ["drop"]}
BAD_GRAPHS = [
    (
        [{"name": "A", **SEND}, {"name": "A", "type": "merge"}],
        "node names must be unique",
        "nodes.1",
    ),
    (
        [{"name": "A", **SEND, "next": "Nowhere"}],
        "next names 'Nowhere', which is not a node",
        "nodes.0.next",
    ),
    (
        [{"name": "A", **SEND}, {"name": "B", "type": "merge", "next": "A"}],
        "the nodes loop (A → B → A)",
        "nodes",
    ),
    (
        [{"name": "A", **SEND, "next": "end"}, {"name": "B", "type": "merge"}],
        "node 'B' cannot be reached from the first node",
        "nodes.1",
    ),
    (
        [
            {
                "name": "S",
                "type": "percent_split",
                "paths": [{"name": "x", "percent": 50}, {"name": "y", "percent": 45}],
            }
        ],
        "paths total 95, not 100",
        "nodes.0.paths",
    ),
    (
        [
            {
                "name": "S",
                "type": "conditional_split",
                "paths": [{"name": "x", "segment": "New customers"}],
            }
        ],
        "ends with a path for everyone else",
        "nodes.0",
    ),
    (
        [{"name": "W", "type": "delay", "value": 0, "unit": "days"}],
        "greater than 0",
        "nodes.0.value",
    ),
    (
        [{"name": "W", "type": "delay", "unit": "days"}],
        "a delay waits `value` and `unit`",
        "nodes.0",
    ),
    ([{"name": "A", **SEND, "value": 3}], "an activate node takes no value", "nodes.0"),
    (
        [
            {
                "name": "S",
                "type": "percent_split",
                "paths": [
                    {"name": "x", "percent": 90, "next": "T"},
                    {"name": "held", "percent": 10, "control": True, "next": "T"},
                ],
            },
            {"name": "T", **SEND},
        ],
        "the control path is held back, so it ends at the split",
        "nodes.0",
    ),
    (
        [{"name": "Offer/1", **SEND}, {"name": "Offer_1", **SEND}],
        "rename one of them (their names read the same once made safe",
        "nodes",
    ),
    (
        [{"name": "A", "type": "activate", "destinations": ["drop", "drop"]}],
        "each destination once; listed twice: drop",
        "nodes.0.destinations",
    ),
    ([{"name": "end", "type": "merge"}], "means the end of a path", "nodes.0.name"),
]


@pytest.mark.parametrize(("nodes", "message", "field"), BAD_GRAPHS)
def test_a_bad_graph_is_refused_naming_the_node_and_field(
    fresh_workspace: Workspace,
    tmp_path: Path,
    nodes: list[dict[str, Any]],
    message: str,
    field: str,
) -> None:
    ws = fresh_workspace
    set_flags(ws, {})
    apply(ws, *welcome(tmp_path)[:2])
    with pytest.raises(DefinitionError) as caught:
        apply(ws, graph(nodes))
    assert message in str(caught.value)
    assert caught.value.field is not None and caught.value.field.startswith(field)


def test_what_a_journey_uses_must_exist(fresh_workspace: Workspace, tmp_path: Path) -> None:
    ws = fresh_workspace
    set_flags(ws, {})
    apply(ws, *welcome(tmp_path)[:2])
    with pytest.raises(UnknownReference, match="destination 'nope' does not exist"):
        apply(ws, graph([{"name": "A", "type": "activate", "destinations": ["nope"]}]))
    with pytest.raises(UnknownReference, match="segment 'Ghosts' does not exist"):
        apply(ws, graph([{"name": "A", **SEND}], exit=["Ghosts"]))
    with pytest.raises(DefinitionError, match="no_such_column"):
        apply(ws, graph([{"name": "A", **SEND, "attributes": {"drop": ["no_such_column"]}}]))


def test_splits_waits_until_and_merges(journey_workspace: Workspace, tmp_path: Path) -> None:
    """Gold members go one way, the rest another; both wait until they purchase (at most two
    days); the paths merge and the merged path sends once."""
    ws, out = journey_workspace, tmp_path / "out"
    customers = ids(ws, 12)
    gold = customers[:4]
    set_flags(ws, {c: (True, False) for c in customers})
    apply(
        ws,
        *welcome(out)[:3],
        {"kind": "segment", "name": "Gold few", "sql": _members_sql(gold)},
        {
            "kind": "journey",
            "name": "Welcome series",
            "include": ["New customers"],
            "nodes": [
                {
                    "name": "Tier",
                    "type": "conditional_split",
                    "paths": [
                        {"name": "Gold", "segment": "Gold few", "next": "Gold note"},
                        {"name": "Everyone else", "next": "Wait for purchase"},
                    ],
                },
                {"name": "Gold note", **SEND, "next": "Together"},
                {
                    "name": "Wait for purchase",
                    "type": "delay",
                    "until": "Purchased since entry",
                    "at_most": {"value": 2, "unit": "days"},
                    "matched": "Thanks",
                    "timed_out": "Together",
                },
                {"name": "Thanks", **SEND, "next": "end"},
                {"name": "Together", "type": "merge"},
                {"name": "Last word", **SEND},
            ],
        },
    )
    start = NOW.replace(hour=6, minute=0, second=0, microsecond=0)
    day = [(start + n * DAY).strftime("%Y%m%d") for n in range(4)]
    first = tick(ws, start)
    assert first["moved"] == {
        "Tier": 12,
        "Gold note": 4,
        "Wait for purchase": 8,
        "Together": 4,
        "Last word": 4,
    }
    assert sent_ids(out, "Gold note", day[0]) == sorted(gold)
    assert sent_ids(out, "Last word", day[0]) == sorted(gold)
    buyer = customers[5]
    set_flags(ws, {c: (True, c == buyer) for c in customers})
    second = tick(ws, start + DAY)
    assert second["moved"] == {"Thanks": 1} and second["finished"] == 1
    assert sent_ids(out, "Thanks", day[1]) == [buyer]
    third = tick(ws, start + 2 * DAY)  # two days: the wait times out for the other seven
    assert third["moved"] == {"Together": 7, "Last word": 7}
    later = sorted(c for c in customers[4:] if c != buyer)
    assert sent_ids(out, "Last word", day[2]) == later
    assert ws.journey_counts("Welcome series").in_journey == 0
    assert [s.node for s in ws.journey_path("Welcome series", later[0])] == [
        "Tier",
        "Wait for purchase",
        "Together",
        "Last word",
        "Last word",
    ]


def _members_sql(members: list[str]) -> str:
    quoted = ", ".join(f"'{m}'" for m in members)
    return f"select amperity_id from customer_360 where amperity_id in ({quoted})"


def test_reentry_after_leaving_only_when_allowed_and_qualifying_anew(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws, out = fresh_workspace, tmp_path / "out"
    customers = ids(ws, 3)
    set_flags(ws, {c: (True, False) for c in customers})
    documents = welcome(out, allow_reentry=True)
    documents[-1]["nodes"] = [{"name": "Welcome email", **SEND}]
    apply(ws, *documents)
    start = NOW.replace(hour=6, minute=0, second=0, microsecond=0)
    assert tick(ws, start)["entered"] == 3  # and finish at once
    assert tick(ws, start + DAY)["entered"] == 0  # still qualify, but not anew
    set_flags(ws, {c: (c != customers[0], False) for c in customers})
    assert tick(ws, start + 2 * DAY)["entered"] == 0  # customers[0] left the segment
    set_flags(ws, {c: (True, False) for c in customers})
    again = tick(ws, start + 3 * DAY)
    assert again["entered"] == 1  # came back: qualifies anew
    assert sent_ids(out, "Welcome email", (start + 3 * DAY).strftime("%Y%m%d")) == [customers[0]]
    documents[-1]["allow_reentry"] = False
    apply(ws, *documents[2:])
    set_flags(ws, {c: (c != customers[1], False) for c in customers})
    tick(ws, start + 4 * DAY)
    set_flags(ws, {c: (True, False) for c in customers})
    assert tick(ws, start + 5 * DAY)["entered"] == 0  # without re-entry, never again


APPENDIX_A = """\
kind: destination
name: marketing-s3
type: filesystem
settings: {path: out}
file: {format: csv, filename: "{{ activation_name }}_{{ group_name }}_{{ now | format('%Y%m%d') }}"}
default_attributes: [amperity_id, email]
---
kind: segment
name: New customers
sql: select amperity_id from journey_flags where is_new
---
kind: segment
name: Purchased since entry
sql: select amperity_id from journey_flags where purchased
---
kind: journey
name: Welcome series
include: [New customers]
exit: [Purchased since entry]
allow_reentry: false
schedule: {every: {value: 1, unit: days}}
nodes:
  - {name: Welcome email, type: activate, destinations: [marketing-s3]}
  - {name: Wait 3 days, type: delay, value: 3, unit: days}
  - name: Split
    type: percent_split
    paths:
      - {name: Offer, percent: 90, next: Offer email}
      - {name: Control, percent: 10, control: true}
  - {name: Offer email, type: activate, destinations: [marketing-s3]}
"""


def test_the_cli_runs_the_appendix_a_journey_on_the_worker(
    fresh_workspace: Workspace,
) -> None:
    ws = fresh_workspace
    customers = ids(ws, 10)
    set_flags(ws, {c: (True, False) for c in customers})
    ws.close()
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    (ws.directory / "journey.yaml").write_text(APPENDIX_A)
    where = ["-w", str(ws.directory)]
    cli = CliRunner()

    def run(*args: str) -> Any:
        result = cli.invoke(app, [*args, *where])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result

    run("apply", "-f", str(ws.directory / "journey.yaml"))
    start = "2026-12-01T08:00:00+00:00"
    assert run("journey", "activate", "Welcome series", "--now", start, "--json")["status"] == (
        "active"
    )
    for day in range(5):
        run("worker", "--once", "--now", f"2026-12-0{1 + day}T08:00:00+00:00")
    shown = run("journey", "status", "Welcome series", "--json")
    entered = {n["node"]: n["entered"] for n in shown["nodes"]}
    assert entered["Welcome email"] == entered["Wait 3 days"] == entered["Split"] == 10
    assert shown["finished"] == 10 and shown["in_journey"] == 0
    out = ws.directory / "out"
    assert sorted(p.name for p in out.glob("*.csv")) == [
        "Welcome_series_Offer_email_20261204.csv",
        "Welcome_series_Welcome_email_20261201.csv",
    ]
    steps = run("journey", "path", "Welcome series", customers[0], "--json")
    assert [s["node"] for s in steps][:3] == ["Welcome email", "Wait 3 days", "Split"]
    statuses = run("status", "--kind", "journey", "--json")
    assert [(s["name"], s["status"]) for s in statuses] == [("Welcome series", "active")]
    # goals are segments as of --now: here, whoever the offer run (due 12-04) had reached
    offered = "sent: {activation: Welcome series, sub_audience: Offer email}"
    goal = f"---\nkind: segment\nname: Got the offer\nwhere: {{{offered}}}\n"
    with_goal = APPENDIX_A.replace(
        "allow_reentry: false", "allow_reentry: false\ngoals: [Got the offer]"
    )
    (ws.directory / "journey.yaml").write_text(with_goal + goal)
    run("apply", "-f", str(ws.directory / "journey.yaml"))

    def reached(now: str) -> int:
        goals = run("journey", "status", "Welcome series", "--now", now, "--json")["goals"]
        return next(g["reached"] for g in goals if g["path"] == "Offer")

    assert reached("2026-12-03T08:00:00+00:00") == 0 < reached("2026-12-06T08:00:00+00:00")

    assert run("journey", "pause", "Welcome series", "--json")["status"] == "paused"
    refused = cli.invoke(app, ["journey", "tick", "Welcome series", *where])
    assert refused.exit_code == 1
    assert "paused" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    run("journey", "resume", "Welcome series")
    ended = run("journey", "end", "Welcome series", "--release", "--json")
    assert ended["status"] == "ended"
    again = cli.invoke(app, ["journey", "tick", "Welcome series", *where])
    assert again.exit_code == 1 and "ended" in again.stderr


def test_an_ending_journey_admits_no_one_and_lets_those_inside_finish(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws, out = fresh_workspace, tmp_path / "out"
    customers = ids(ws, 6)
    set_flags(ws, {c: (c in customers[:3], False) for c in customers})
    apply(ws, *welcome(out))
    start = NOW.replace(hour=6, minute=0, second=0, microsecond=0)
    ws.activations.schedule("journey", "Welcome series")
    assert tick(ws, start)["entered"] == 3
    assert ws.activations.end("Welcome series", release=False).status == "ended"
    set_flags(ws, {c: (True, False) for c in customers})  # three more qualify: not admitted
    assert tick(ws, start + DAY)["entered"] == 0
    last = tick(ws, start + 3 * DAY)
    assert last["finished"] == 3 and last["in_journey"] == 0
    assert ws.store.activations.get("journey", "Welcome series").state == "canceled"
    with pytest.raises(StateError, match="ended"):
        ws.journey_tick("Welcome series", now=start + 4 * DAY)


def test_a_run_that_fails_after_sending_sends_nothing_twice_when_retried(
    journey_workspace: Workspace, tmp_path: Path
) -> None:
    """The files are out, then recording the moves fails: nothing moved, and the retry
    recognises the files, moves everyone once and writes the ledger once."""
    ws, out = journey_workspace, tmp_path / "out"
    customers = ids(ws, 8)
    set_flags(ws, {c: (True, False) for c in customers})
    apply(ws, *welcome(out))
    start = NOW.replace(hour=6, minute=0, second=0, microsecond=0)
    tick(ws, start)  # lays the tables out
    # Break the travel log so the run's last step, after sending, fails.
    ws.engine.execute(
        exp.maybe_parse("alter table audience_journey_log rename column reason to why")
    )
    more = ids(ws, 12)[8:]
    set_flags(ws, {c: (True, False) for c in more + customers})
    failed = ws.run_now("journey", "Welcome series", now=start + DAY)
    assert failed.status == "failed" and "reason" in (failed.error or "")
    day = (start + DAY).strftime("%Y%m%d")
    assert sent_ids(out, "Welcome email", day) == sorted(more)  # sent before it failed
    written = (out / f"Welcome_series_Welcome_email_{day}.csv").stat().st_mtime_ns
    inside = "select count(*) as n from audience_journey_positions"
    assert ws.engine.rows(exp.maybe_parse(inside)) == [{"n": 8}]  # nothing moved
    ws.engine.execute(
        exp.maybe_parse("alter table audience_journey_log rename column why to reason")
    )
    retried = ws.activations.retry(failed.id)
    assert retried.status == "succeeded", retried.error
    assert retried.counts["entered"] == 4 and retried.counts["sent"] == 4
    assert (out / f"Welcome_series_Welcome_email_{day}.csv").stat().st_mtime_ns == written
    assert ws.journey_counts("Welcome series").in_journey == 12
    ledger = ws.engine.rows(
        exp.maybe_parse(
            "select count(*) as n, count(distinct customer_id) as d from audience_recipients "
            f"where run_id = '{failed.id}'"
        )
    )
    assert ledger == [{"n": 4, "d": 4}]


def test_editing_an_active_journey_keeps_customers_or_asks_where_they_go(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws, out = fresh_workspace, tmp_path / "out"
    customers = ids(ws, 5)
    set_flags(ws, {c: (True, False) for c in customers})
    documents = welcome(out)
    apply(ws, *documents)
    start = NOW.replace(hour=6, minute=0, second=0, microsecond=0)
    tick(ws, start)  # everyone waits at "Wait 3 days"
    journey = documents[-1]
    # A new version that keeps the node keeps everyone where they are.
    journey["nodes"][-1]["name"] = "Offer mail"
    journey["nodes"][2]["paths"][0]["next"] = "Offer mail"
    apply(ws, journey)
    assert at_nodes(ws) == {"Wait 3 days": 5}
    # One that drops it is refused until it says where they go.
    journey["nodes"][1] = {"name": "Wait 5 days", "type": "delay", "value": 5, "unit": "days"}
    with pytest.raises(DefinitionError, match=r"'Wait 3 days' \(5\), which this version removes"):
        apply(ws, journey)
    assert at_nodes(ws) == {"Wait 3 days": 5}
    with pytest.raises(DefinitionError, match="'Nowhere', which is not a node"):
        apply(ws, {**journey, "removed_nodes": {"Wait 3 days": "Nowhere"}})
    apply(ws, {**journey, "removed_nodes": {"Wait 3 days": "Wait 5 days"}})
    assert at_nodes(ws) == {"Wait 5 days": 5}
    # The new wait counts from the move, at the workspace's clock (NOW, 15:30 that day).
    assert tick(ws, start + 5 * DAY)["moved"] == {}
    assert tick(ws, start + 6 * DAY)["moved"]["Split"] == 5
    assert ws.journey_path("Welcome series", customers[0])[2].reason == "node 'Wait 3 days' removed"


def test_the_demo_ticks_its_welcome_journey(fresh_workspace: Workspace) -> None:
    ws = fresh_workspace
    ws.close()
    (ws.directory / SETTINGS_FILE).write_text(render_settings("duckdb", None))
    shown = CliRunner().invoke(
        app, ["demo", "--profiles", "10000", "--json", "-w", str(ws.directory)]
    )
    assert shown.exit_code == 0, shown.output
    journey = json.loads(shown.stdout)["journey"]
    entered = {n["node"]: n["entered"] for n in journey["nodes"]}
    assert entered["Welcome email"] == entered["Split"] > 0  # all waited two days, then split
    assert 0 < entered["Offer email"] < entered["Split"]  # 10 % held back
    assert journey["finished"] == entered["Welcome email"]
    offers = list((ws.directory / "exports").glob("Welcome_series*Offer_email*.csv.gz"))
    assert len(offers) == 1
    # the offer path against the control path, with Newcombe's interval on the goal's rate
    goals = {g["path"]: g for g in journey["goals"]}
    offer, held = goals["Offer"], goals["Control"]
    assert held["customers"] >= 30 and held["versus_control"] is None
    low, high = confint_proportions_2indep(
        offer["reached"], offer["customers"], held["reached"], held["customers"], method="newcomb"
    )
    found = offer["versus_control"]["incremental_conversion"]
    assert (found["low"], found["high"]) == pytest.approx((low, high))
    ratio = (offer["reached"] / offer["customers"]) / (held["reached"] / held["customers"])
    assert offer["lift_over_control"] == pytest.approx(ratio - 1)
    assert offer["versus_control"]["lift"]["estimate"] == pytest.approx(ratio - 1)
    assert offer["versus_control"]["verdict"] in {
        "better than control",
        "no detectable difference",
        "worse than control",
    }
    results = json.loads(shown.stdout)["results"]
    assert results["campaign"] == "Win back lapsed customers" and results["runs"] == 1
    assert sum(g["purchasers"] for g in results["groups"]) > 0  # the simulated orders


def test_a_journey_ticked_by_hand_is_still_a_draft(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    ws = fresh_workspace
    set_flags(ws, {c: (True, False) for c in ids(ws, 2)})
    apply(ws, *welcome(tmp_path / "out"))
    tick(ws, NOW)
    assert [s.status for s in ws.activations.status("journey")] == ["draft"]
    assert ws.activations.schedule("journey", "Welcome series").status == "active"


def test_the_same_journey_gives_the_same_paths_and_files_on_every_engine(
    tmp_path: Path, own_postgres_schema: str
) -> None:
    logs, files = [], []
    for engine in ("duckdb", "postgres", "spark"):
        directory = tmp_path / engine
        directory.mkdir()
        schema = {"schema": own_postgres_schema} if engine == "postgres" else {}
        with make_workspace(directory, engine, **schema) as ws:
            ws.load_sample(profiles=400, seed=11)
            customers = ids(ws, 60)
            set_flags(ws, {c: (True, False) for c in customers})
            apply(ws, *welcome(directory / "out"))
            start = NOW.replace(hour=6, minute=0, second=0, microsecond=0)
            tick(ws, start)
            set_flags(ws, {c: (True, c in customers[:7]) for c in customers})
            for day in range(1, 5):
                tick(ws, start + day * DAY)
            logs.append(
                ws.engine.rows(
                    exp.maybe_parse(
                        "select customer_id, node, event, at, path, is_control, reason "
                        "from audience_journey_log order by customer_id, at, node, event"
                    )
                )
            )
            files.append(
                {
                    p.name: sorted(p.read_text().splitlines())
                    for p in (directory / "out").glob("*.csv")
                }
            )
    assert logs[0] == logs[1] == logs[2] and len(logs[0]) > 100
    assert files[0] == files[1] == files[2] and len(files[0]) == 2


def test_goals_compare_a_percent_splits_paths_only_with_its_own_control(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    """A conditional split's paths are chosen by who the customers are, not at random: they
    get no comparison with the percent split's control, whose own paths do."""
    ws = fresh_workspace
    customers = ids(ws, 300)
    set_flags(ws, {c: (True, False) for c in customers})
    documents = welcome(tmp_path / "out")
    journey = documents[-1]
    del journey["exit"]
    journey["nodes"] = [
        {
            "name": "Tier",
            "type": "conditional_split",
            "paths": [
                {
                    "name": "Gold",
                    "where": {"attribute": "loyalty_tier", "op": "=", "value": "gold"},
                    "next": "Gold offer",
                },
                {"name": "Everyone else", "next": "Split"},
            ],
        },
        {"name": "Gold offer", **SEND, "next": "end"},
        {
            "name": "Split",
            "type": "percent_split",
            "paths": [
                {"name": "Offer", "percent": 50, "next": "Offer email"},
                {"name": "Control", "percent": 50, "control": True},
            ],
        },
        {"name": "Offer email", **SEND},
    ]
    apply(ws, *documents)
    tick(ws, NOW)
    set_flags(ws, {c: (True, i % 3 == 0) for i, c in enumerate(customers)})
    goals = {g.path: g for g in ws.journey_counts("Welcome series").goals}
    gold, offer, held = goals["Gold"], goals["Offer"], goals["Control"]
    assert gold.customers > 0 and offer.customers >= 30 and held.customers >= 30
    assert gold.versus_control is not None and gold.versus_control.verdict == "no control group"
    assert "holds no control back" in (gold.versus_control.reason or "")
    assert gold.lift_over_control is None
    assert offer.versus_control is not None and offer.versus_control.lift is not None


def test_customers_moved_by_an_edit_enter_as_of_the_latest_simulated_run(
    fresh_workspace: Workspace, tmp_path: Path
) -> None:
    """Ticked ten days ahead (`--now`), then edited: the moved customers' new wait counts from
    that latest run, not from the real clock days before it."""
    ws = fresh_workspace
    set_flags(ws, {c: (True, False) for c in ids(ws, 4)})
    documents = welcome(tmp_path / "out")
    apply(ws, *documents)
    ahead = NOW.replace(hour=6, minute=0, second=0, microsecond=0) + 10 * DAY
    tick(ws, ahead)  # everyone waits at "Wait 3 days"
    journey = documents[-1]
    journey["nodes"][1] = {"name": "Wait 5 days", "type": "delay", "value": 5, "unit": "days"}
    apply(ws, {**journey, "removed_nodes": {"Wait 3 days": "Wait 5 days"}})
    assert tick(ws, ahead + 4 * DAY)["moved"] == {}  # from NOW they would have waited 5 days
    assert tick(ws, ahead + 5 * DAY)["moved"]["Split"] == 4
