"""The metadata store on both backends: SQLite (a file of the test's own) and PostgreSQL (a
schema of the test's own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audience.store.metadata import MetadataStore, resolve_url


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
