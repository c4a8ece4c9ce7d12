"""Alembic environment: migrations run on the connection (and in the transaction, under the
lock) that `audience.store.migrate.upgrade` hands over."""

from __future__ import annotations

from alembic import context

from audience.store.models import VERSION_TABLE, Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
