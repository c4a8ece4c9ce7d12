"""The metadata store on SQLite and on PostgreSQL: migrations, versions, insight history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from audience.store.metadata import MetadataStore, resolve_url

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        url = resolve_url("sqlite:///.audience/state.db", tmp_path)
        opened = MetadataStore(url)
        assert (tmp_path / ".audience" / "state.db").is_file()
        yield opened
        opened.close()
        return
    schema = request.getfixturevalue("own_postgres_schema")
    opened = MetadataStore(
        resolve_url(f"{postgres_url}?options=-csearch_path%3D{schema}", tmp_path)
    )
    yield opened
    opened.close()


def test_migrations_create_the_schema(store: MetadataStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"definition_versions", "insight_snapshots", "alembic_version"} <= tables


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
