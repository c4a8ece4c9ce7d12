"""Indexes for the worker's claim: the active runs (queued or running) in due order, and per
activation. They hold only active runs, so a claim costs the same however long the history;
they replace the index on status, whose every lookup by an active status they cover.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('queued', 'running')")
ACTIVE_REAL = sa.text("status IN ('queued', 'running') AND NOT is_test")


def upgrade() -> None:
    op.create_index(
        "audience_runs_ready",
        "audience_runs",
        ["scheduled_for", "id"],
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index(
        "audience_runs_active",
        "audience_runs",
        ["activation_kind", "activation_name", "scheduled_for"],
        sqlite_where=ACTIVE_REAL,
        postgresql_where=ACTIVE_REAL,
    )
    op.drop_index("audience_runs_status", "audience_runs")


def downgrade() -> None:
    op.create_index("audience_runs_status", "audience_runs", ["status"])
    op.drop_index("audience_runs_active", "audience_runs")
    op.drop_index("audience_runs_ready", "audience_runs")
