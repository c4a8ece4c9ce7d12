"""The metadata store on SQLite and on PostgreSQL: migrations, versions, insight history."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, literal, select, text
from sqlalchemy.exc import StatementError

from audience.activation.recording import HELD_JUST_NOW, RunRecording
from audience.errors import LeaseLost, NotFound, WorkspaceError
from audience.store import metadata
from audience.store.metadata import MetadataStore, resolve_url
from audience.store.migrate import HEAD, MIGRATIONS
from audience.store.run_statements import WITHOUT_WAITING_FOR_DISK, HotPath
from audience.store.runs import DeliveredFile, DueRun, Holder, LeaseTerms, NextClaim

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_migrations_create_the_schema(store: MetadataStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "audience_alembic_version",
        "audience_definition_versions",
        "audience_insight_snapshots",
        "audience_runs",
        "audience_deliveries",
    } <= tables
    assert all(name.startswith("audience_") for name in tables)


def test_versions_grow_only_on_change(store: MetadataStore) -> None:
    body = {"where": {"attribute": "state", "op": "=", "value": "WA"}}
    first = store.save_definitions([("segment", "WA", body)], T0)
    same = store.save_definitions([("segment", "WA", body)], T0 + timedelta(days=1))
    changed = store.save_definitions(
        [("segment", "WA", {"where": {"attribute": "state", "op": "=", "value": "OR"}})],
        T0 + timedelta(days=2),
    )
    assert [c.version for c in (*first, *same, *changed)] == [1, 1, 2]
    assert [c.changed for c in (*first, *same, *changed)] == [True, False, True]
    current = store.definition("segment", "WA")
    assert current is not None and current.version == 2
    assert current.body["where"]["value"] == "OR"
    assert current.applied_at == T0 + timedelta(days=2)
    assert [d.name for d in store.definitions("segment")] == ["WA"]


def test_insight_history_is_kept_in_order(store: MetadataStore) -> None:
    for day in (3, 1, 2):
        store.record_insights("WA", 1, T0 + timedelta(days=day), {"customers": day})
    assert [h["customers"] for h in store.insight_history("WA")] == [1, 2, 3]
    assert store.insight_history("OR") == []


def _schema_url(postgres_url: str, schema: str, tmp_path: Path) -> str:
    return resolve_url(f"{postgres_url}?options=-csearch_path%3D{schema}", tmp_path)


def test_another_applications_tables_are_left_alone(
    own_postgres_schema: str, postgres_url: str, tmp_path: Path
) -> None:
    """Another application's `runs` and `alembic_version` in the same schema: Audience's store
    opens beside them, works, and neither reads nor changes them."""
    theirs = create_engine(_schema_url(postgres_url, own_postgres_schema, tmp_path))
    with theirs.begin() as connection:
        connection.execute(text("create table alembic_version (version_num varchar(32))"))
        connection.execute(text("insert into alembic_version values ('0001')"))
        connection.execute(text("create table runs (id integer primary key, note text)"))
        connection.execute(text("insert into runs values (1, 'their run')"))
    store = MetadataStore(_schema_url(postgres_url, own_postgres_schema, tmp_path))
    try:
        store.save_definitions([("segment", "WA", {"sql": "select 1"})], T0)
        assert [d.name for d in store.definitions()] == ["WA"]
        again = MetadataStore(_schema_url(postgres_url, own_postgres_schema, tmp_path))
        again.close()
    finally:
        store.close()
    with theirs.connect() as connection:
        assert connection.execute(text("select * from alembic_version")).all() == [("0001",)]
        assert connection.execute(text("select * from runs")).all() == [(1, "their run")]
    theirs.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_store_made_before_the_prefix_is_refused(
    backend: str, tmp_path: Path, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = resolve_url("sqlite:///old.db", tmp_path)
    else:
        url = _schema_url(postgres_url, request.getfixturevalue("own_postgres_schema"), tmp_path)
    old = create_engine(url)
    with old.begin() as connection:
        for statement in (
            "create table alembic_version (version_num varchar(32) primary key)",
            "insert into alembic_version values ('0002')",
            "create table definition_versions (id integer primary key, kind text, name text)",
            "create table insight_snapshots (id integer primary key, segment text)",
            "create table runs (id text primary key)",
        ):
            connection.execute(text(statement))
    with pytest.raises(WorkspaceError, match=r"earlier Audience.*definition_versions"):
        MetadataStore(url)
    assert "audience_definition_versions" not in inspect(old).get_table_names()
    old.dispose()


def _open_when_all_are_ready(url: str, ready: Any) -> None:
    ready.wait()
    MetadataStore(url).close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_opening_a_new_store_together_migrate_it_once(
    backend: str, tmp_path: Path, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = resolve_url("sqlite:///.audience/state.db", tmp_path)
    else:
        url = _schema_url(postgres_url, request.getfixturevalue("own_postgres_schema"), tmp_path)
    processes = multiprocessing.get_context("fork")
    ready = processes.Barrier(4)
    openers = [
        processes.Process(target=_open_when_all_are_ready, args=(url, ready)) for _ in range(4)
    ]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(60)
    assert [opener.exitcode for opener in openers] == [0, 0, 0, 0]
    engine = create_engine(url)
    with engine.connect() as connection:
        versions = connection.execute(text("select version_num from audience_alembic_version"))
        assert len(versions.all()) == 1
    engine.dispose()


def test_threads_opening_a_new_store_together_migrate_it_once(tmp_path: Path) -> None:
    url = resolve_url("sqlite:///.audience/state.db", tmp_path)
    ready = threading.Barrier(4)

    def open_store(_: int) -> int:
        ready.wait()
        store = MetadataStore(url)
        store.close()
        return len(store.definitions())

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(open_store, range(4))) == [0, 0, 0, 0]


def test_head_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_opening_a_current_store_does_not_load_alembic(tmp_path: Path) -> None:
    """A store at HEAD is recognised by one query; Alembic is loaded only to migrate."""
    url = resolve_url("sqlite:///.audience/state.db", tmp_path)
    MetadataStore(url).close()  # made and migrated here
    probe = (
        "import sys\n"
        "from audience.store.metadata import MetadataStore\n"
        f"MetadataStore({url!r}).close()\n"
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_an_attempt_taken_over_records_nothing_more(store: MetadataStore) -> None:
    """Runs are queued once per due time and claimed once; an attempt whose run another worker
    took over (its lease expired) gets LeaseLost for every write, and the new attempt's stand."""
    runs, minute = store.runs, timedelta(minutes=1)
    lease, later = LeaseTerms(minute, lambda: T0), LeaseTerms(minute, lambda: T0 + 2 * minute)
    with store.session() as session, session.begin():
        due = DueRun("campaign", "A", 1, T0)
        assert runs.enqueue(session, [due]) == 1
        assert runs.enqueue(session, [due]) == 0
    first = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert first is not None and first.attempt == 1
    assert runs.claim(worker="w2", now=T0, lease=lease, max_attempts=3) is None  # still held
    second = runs.claim(worker="w2", now=T0, lease=later, max_attempts=3)
    assert second is not None and (second.id, second.attempt) == (first.id, 2)

    file = DeliveredFile("out", "file:///out/a.csv", rows=3, bytes=10, sha256="0" * 64)
    old, new = Holder("w1", 1), Holder("w2", 2)
    with pytest.raises(LeaseLost):
        runs.add_delivery(first.id, file, T0, holder=old)
    with pytest.raises(LeaseLost):
        runs.confirm(first.id, old)
    with pytest.raises(LeaseLost):
        runs.finish(first.id, status="succeeded", now=T0, holder=old)
    runs.confirm(first.id, new)
    runs.add_delivery(first.id, file, T0, holder=new)
    done = runs.finish(first.id, status="succeeded", now=T0, counts={"sent": 3}, holder=new)
    assert (done.status, done.attempt, done.counts, done.deliveries) == (
        "succeeded",
        2,
        {"sent": 3},
        [file],
    )
    with pytest.raises(LeaseLost):
        runs.add_delivery(first.id, file, T0, holder=new)  # ended: nobody holds it now
    with pytest.raises(NotFound):
        runs.add_delivery("nothere", file, T0, holder=new)
    with pytest.raises(NotFound):
        runs.finish("nothere", status="failed", now=T0)


def test_a_recording_asks_the_run_log_unless_a_file_was_just_recorded(
    store: MetadataStore,
) -> None:
    """`confirm` stands on a file record the run log accepted a moment ago; once that moment
    has passed it asks again, and an attempt taken over meanwhile gets LeaseLost."""
    runs, minute = store.runs, timedelta(minutes=1)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    first = runs.claim(worker="w1", now=T0, lease=LeaseTerms(minute, lambda: T0), max_attempts=3)
    assert first is not None
    recording = RunRecording(runs, first, lambda: T0, "w1", LeaseTerms(minute, lambda: T0))
    recording.delivered(DeliveredFile("out", "file:///out/a.csv", 3, 10, "0" * 64))
    recording.settle()  # the record, written on a thread of its own, is in
    later = LeaseTerms(minute, lambda: T0 + 2 * minute)
    assert runs.claim(worker="w2", now=T0, lease=later, max_attempts=3) is not None
    recording.confirm()  # the file's record, a moment ago, answers
    assert recording.held_at is not None
    recording.held_at -= HELD_JUST_NOW
    with pytest.raises(LeaseLost):
        recording.confirm()


def test_a_file_record_refused_meanwhile_stops_the_attempt_and_records_nothing(
    store: MetadataStore,
) -> None:
    """A file's record is written while the run goes on: a run taken over before it lands is
    told at the attempt's next step (here its end), which records nothing — not the file, not
    the outcome — and returns the run as the attempt that took it over holds it."""
    runs, minute = store.runs, timedelta(minutes=1)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    first = runs.claim(worker="w1", now=T0, lease=LeaseTerms(minute, lambda: T0), max_attempts=3)
    assert first is not None
    later = LeaseTerms(minute, lambda: T0 + 2 * minute)
    assert runs.claim(worker="w2", now=T0, lease=later, max_attempts=3) is not None
    recording = RunRecording(runs, first, lambda: T0, "w1", LeaseTerms(minute, lambda: T0))
    sent = DeliveredFile("out", "file:///out/a.csv", 3, 10, "0" * 64)

    def work(recording: RunRecording) -> dict[str, Any]:
        recording.delivered(sent)  # does not wait for the run log's answer
        return {"rows": 3}

    ended = recording.record(work)
    assert (ended.status, ended.attempt, ended.claimed_by) == ("running", 2, "w2")
    assert ended.deliveries == [] and runs.get(first.id).deliveries == []
    assert recording.recorded == []


def test_the_migrations_make_what_the_models_describe(store: MetadataStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from audience.store.models import Base

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    # Tables of other applications sharing the schema are not Audience's business.
    assert [d for d in differences if d[0] != "remove_table"] == []


def test_the_next_run_waits_while_an_earlier_one_is_being_taken_over(
    store: MetadataStore,
) -> None:
    """A run whose worker died is taken over before its activation's next run starts, even by
    a worker that finds it locked by the worker taking it over (PostgreSQL's SKIP LOCKED)."""
    runs, minute = store.runs, timedelta(minutes=1)
    lease, later = LeaseTerms(minute, lambda: T0), LeaseTerms(minute, lambda: T0 + 2 * minute)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    dead = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert dead is not None
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0 + minute)])
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as holder, holder.begin():
            # Another worker holds the dead run's row, taking it over.
            holder.execute(
                text("select id from audience_runs where id = :id for update"), {"id": dead.id}
            )
            assert runs.claim(worker="w2", now=T0 + 2 * minute, lease=later, max_attempts=3) is None
    taken = runs.claim(worker="w2", now=T0 + 2 * minute, lease=later, max_attempts=3)
    assert taken is not None and (taken.id, taken.attempt) == (dead.id, 2)
    assert runs.claim(worker="w3", now=T0 + 2 * minute, lease=later, max_attempts=3) is None


def test_a_runs_hot_writes_leave_the_connection_waiting_for_the_disk(store: MetadataStore) -> None:
    """The claim and a file's record commit without waiting for the disk on PostgreSQL, for
    their own transaction only: the run's end, heartbeats and everything after them still wait
    (`synchronous_commit` stays on)."""
    runs, lease = store.runs, LeaseTerms(timedelta(minutes=1), lambda: T0)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    run = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert run is not None
    holder = Holder("w1", 1)
    file = DeliveredFile("out", "file:///out/a.csv", rows=3, bytes=10, sha256="0" * 64)
    runs.add_delivery(run.id, file, T0, holder=holder)
    done = runs.finish(run.id, status="succeeded", now=T0, holder=holder)
    assert done.status == "succeeded" and done.deliveries == [file]
    if store.engine.dialect.name == "postgresql":
        with store.one_statement_writes.connect() as connection:  # its one, used above
            assert connection.execute(text("show synchronous_commit")).scalar() == "on"
        with store.engine.connect() as connection:
            with connection.begin():  # what the condition does to the transaction it is in
                connection.execute(select(literal(1)).where(WITHOUT_WAITING_FOR_DISK))
                assert connection.execute(text("show synchronous_commit")).scalar() == "off"
            assert connection.execute(text("show synchronous_commit")).scalar() == "on"


def test_a_workers_statements_stay_prepared_and_planned_once(store: MetadataStore) -> None:
    """On PostgreSQL the run log's statements run on connections of their own, which the
    store's read sessions (each ending with a rollback, which makes psycopg forget what it
    prepared) never touch: run after run, a worker's end-and-claim and file records stay
    prepared, with one generic plan each."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite prepares nothing on a server")
    runs, lease = store.runs, LeaseTerms(timedelta(minutes=1), lambda: T0)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", f"C{n}", 1, T0) for n in range(12)])
    run = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    while run is not None:
        holder = Holder("w1", run.attempt)
        file = DeliveredFile("out", f"file:///out/{run.id}.csv", rows=3, bytes=10, sha256="0" * 64)
        runs.add_delivery(run.id, file, T0, holder=holder)
        assert runs.get(run.id).deliveries == [file]  # a read session, ended by a rollback
        claim = NextClaim("w1", lambda: T0, lease)
        runs.finish(
            run.id,
            status="succeeded",
            now=T0,
            counts={"sent": 3},
            holder=holder,
            deliveries=[file],
            then_claim=claim,
        )
        run = claim.claimed
    with store.one_statement_writes.connect() as connection:
        prepared = connection.execute(
            text("select statement, generic_plans, custom_plans from pg_prepared_statements")
        ).all()
    plans = {statement.split()[0]: (generic, custom) for statement, generic, custom in prepared}
    # Twelve runs: prepared after the fifth, planned once (generically) for the rest.
    assert plans == {"INSERT": (7, 0), "WITH": (7, 0)}


def test_a_file_recorded_twice_is_kept_once(store: MetadataStore) -> None:
    """Recording a file again (its answer lost on the way, the statement run once more) keeps
    one record, and no error."""
    runs, lease = store.runs, LeaseTerms(timedelta(minutes=1), lambda: T0)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    run = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert run is not None
    file = DeliveredFile("out", "file:///out/a.csv", rows=3, bytes=10, sha256="0" * 64)
    other = DeliveredFile("out", "file:///out/b.csv", rows=3, bytes=10, sha256="1" * 64)
    for each in (file, file, other):
        runs.add_delivery(run.id, each, T0, holder=Holder("w1", 1))
    assert runs.get(run.id).deliveries == [file, other]
    with pytest.raises(LeaseLost):
        runs.add_delivery(run.id, file, T0, holder=Holder("w2", 1))  # recorded, but not its


def _drop_connections(postgres_url: str, application: str) -> int:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        return len(
            admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name = %s and pid <> pg_backend_pid()",
                (application,),
            ).fetchall()
        )


@pytest.mark.parametrize("rested", [False, True])
def test_connections_the_server_dropped_are_replaced(
    postgres_url: str,
    own_postgres_schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rested: bool,
) -> None:
    """A pooled connection the server dropped is replaced: pinged when it has rested in the
    pool (any statement then works), and otherwise found by the worker's statements, which run
    once more on a new connection."""
    application = f"audience-drop-{uuid.uuid4().hex[:8]}"
    schema = f"options=-csearch_path%3D{own_postgres_schema}"
    url = f"{postgres_url}?application_name={application}&{schema}"
    monkeypatch.setattr(metadata, "PING_AFTER_IDLE", 0.0 if rested else 3600.0)
    store = MetadataStore(resolve_url(url, tmp_path))
    runs, lease = store.runs, LeaseTerms(timedelta(minutes=1), lambda: T0)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    # The store's pool and the run log's own (see `one_statement_writes`).
    assert _drop_connections(postgres_url, application) == 1
    run = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert run is not None and run.status == "running"
    assert _drop_connections(postgres_url, application) == 1
    file = DeliveredFile("out", "file:///out/a.csv", rows=3, bytes=10, sha256="0" * 64)
    runs.add_delivery(run.id, file, T0, holder=Holder("w1", 1))
    assert _drop_connections(postgres_url, application) == 1
    done = runs.finish(run.id, status="succeeded", now=T0, holder=Holder("w1", 1))
    assert done.status == "succeeded" and done.deliveries == [file]
    if rested:
        assert _drop_connections(postgres_url, application) == 2
        assert store.definitions("segment") == []
    store.close()


def test_a_dropped_store_replaces_every_connection_the_run_log_pooled(
    postgres_url: str,
    own_postgres_schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads sharing a store leave two connections in the run log's pool; the server drops
    them all. The next statement fails on one and runs again on a new connection, not on the
    other dead one."""
    application = f"audience-drop-{uuid.uuid4().hex[:8]}"
    schema = f"options=-csearch_path%3D{own_postgres_schema}"
    monkeypatch.setattr(metadata, "PING_AFTER_IDLE", 3600.0)
    store = MetadataStore(
        resolve_url(f"{postgres_url}?application_name={application}&{schema}", tmp_path)
    )
    runs, lease = store.runs, LeaseTerms(timedelta(minutes=1), lambda: T0)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0)])
    run = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert run is not None
    with store.one_statement_writes.connect() as one, store.one_statement_writes.connect() as two:
        one.execute(text("select 1"))
        two.execute(text("select 1"))
    assert _drop_connections(postgres_url, application) == 3  # and the store's own
    runs.confirm(run.id, Holder("w1", 1))
    assert runs.get(run.id).status == "running"
    store.close()


def test_a_worker_statement_run_without_a_value_it_needs_is_refused(store: MetadataStore) -> None:
    """A parameter left out is an error, not a NULL that a fence would compare with (and
    match nothing)."""
    with (
        store.one_statement_writes.connect() as connection,
        pytest.raises((TypeError, StatementError), match="run_id"),
    ):
        HotPath(connection.dialect).holder.rows(connection, {})


def _lose_the_answer_to(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, application: str, marker: str
) -> list[bool]:
    """Once: the next statement holding `marker` runs (and commits), then its connection is
    cut before the answer is read, as when the network fails at that moment (the run log runs
    its statements on psycopg's cursor)."""
    armed = [True]
    execute = psycopg.Cursor.execute

    def cut(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        done = execute(cursor, query, *args, **kwargs)
        if armed[0] and marker in str(query):
            armed[0] = False
            _drop_connections(postgres_url, application)
            cursor.connection.close()  # what psycopg does when it finds out
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return done

    monkeypatch.setattr(psycopg.Cursor, "execute", cut)
    return armed


def test_a_claim_file_record_or_end_whose_answer_was_lost_is_done_once(
    postgres_url: str, own_postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store did the write but the worker never heard back: asking again finds the write
    (the run claimed, the file recorded, the run ended) instead of doing it twice — or taking
    the next run, or failing an attempt that in fact holds its run."""
    application = f"audience-lost-{uuid.uuid4().hex[:8]}"
    schema = f"options=-csearch_path%3D{own_postgres_schema}"
    store = MetadataStore(
        resolve_url(f"{postgres_url}?application_name={application}&{schema}", tmp_path)
    )
    runs, lease = store.runs, LeaseTerms(timedelta(minutes=1), lambda: T0)
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "A", 1, T0), DueRun("campaign", "B", 1, T0)])

    lost = _lose_the_answer_to(monkeypatch, postgres_url, application, "SKIP LOCKED")
    run = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert not lost[0] and run is not None and (run.status, run.attempt) == ("running", 1)
    assert sorted((r.id == run.id, r.status) for r in runs.history()) == [
        (False, "queued"),  # the other run was not taken instead
        (True, "running"),
    ]

    holder = Holder("w1", 1)
    file = DeliveredFile("out", "file:///out/a.csv", rows=3, bytes=10, sha256="0" * 64)
    lost = _lose_the_answer_to(
        monkeypatch, postgres_url, application, "INSERT INTO audience_deliveries"
    )
    runs.add_delivery(run.id, file, T0, holder=holder)
    assert not lost[0]

    lost = _lose_the_answer_to(monkeypatch, postgres_url, application, "UPDATE audience_runs")
    done = runs.finish(run.id, status="succeeded", now=T0, counts={"sent": 3}, holder=holder)
    assert not lost[0] and (done.status, done.attempt, done.deliveries) == ("succeeded", 1, [file])
    assert runs.get(run.id).deliveries == [file]

    # A run's end that claims the next run in the same statement, its answer lost.
    with store.session() as session, session.begin():
        runs.enqueue(session, [DueRun("campaign", "C", 1, T0 + timedelta(hours=1))])
    other = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert other is not None
    claim = NextClaim("w1", lambda: T0 + timedelta(hours=2), lease)
    lost = _lose_the_answer_to(monkeypatch, postgres_url, application, "WITH ended")
    ended = runs.finish(
        other.id,
        status="succeeded",
        now=T0,
        counts={},
        holder=Holder("w1", 1),
        deliveries=[],
        then_claim=claim,
    )
    assert not lost[0] and ended.status == "succeeded"
    assert claim.claimed is not None and claim.claimed.activation_name == "C"
    assert claim.claimed.attempt == 1
    store.close()


def test_a_runs_end_claims_the_next_queued_run_in_the_same_statement(
    store: MetadataStore,
) -> None:
    """On PostgreSQL a worker's successful run ends and claims its next queued run at once;
    an attempt that lost its run claims nothing; a claimed run given back is queued as before."""
    runs, minute = store.runs, timedelta(minutes=1)
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite claims in a transaction of its own")
    lease = LeaseTerms(minute, lambda: T0)
    with store.session() as session, session.begin():
        due = [DueRun("campaign", name, 1, T0 + n * minute) for n, name in enumerate("ABC")]
        runs.enqueue(session, due)
    first = runs.claim(worker="w1", now=T0, lease=lease, max_attempts=3)
    assert first is not None and first.activation_name == "A"
    claim = NextClaim("w1", lambda: T0 + 5 * minute, lease)
    done = runs.finish(
        first.id,
        status="succeeded",
        now=T0,
        counts={"sent": 1},
        holder=Holder("w1", 1),
        deliveries=[],
        then_claim=claim,
    )
    assert (done.status, done.counts) == ("succeeded", {"sent": 1})
    second = claim.claimed
    assert second is not None and (second.activation_name, second.status) == ("B", "running")
    assert (second.claimed_by, second.attempt) == ("w1", 1)

    runs.release(second, "w1")  # the worker stops before running it
    given_back = runs.get(second.id)
    assert (given_back.status, given_back.attempt, given_back.claimed_by) == ("queued", 0, None)

    lost = NextClaim("w2", lambda: T0 + 5 * minute, lease)
    with pytest.raises(LeaseLost):  # run A ended already: no end, and no claim
        runs.finish(
            first.id,
            status="succeeded",
            now=T0,
            counts={},
            holder=Holder("w1", 1),
            deliveries=[],
            then_claim=lost,
        )
    assert lost.claimed is None
    assert {r.activation_name: r.status for r in runs.history()} == {
        "A": "succeeded",
        "B": "queued",
        "C": "queued",
    }
