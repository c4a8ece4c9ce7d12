"""The runtime: runs keyed by (kind, name, due time), queued and claimed with a lease, typed
errors and retries; activations put on their schedule.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audience_runs") as batch:
        batch.drop_column("run_key")
        batch.alter_column("started_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.add_column(sa.Column("error_kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("trigger", sa.String(16), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retries", sa.JSON, nullable=True))
    op.create_index(
        "audience_runs_due",
        "audience_runs",
        ["activation_kind", "activation_name", "scheduled_for"],
        unique=True,
        sqlite_where=sa.text("NOT is_test"),
        postgresql_where=sa.text("NOT is_test"),
    )
    op.create_index("audience_runs_status", "audience_runs", ["status"])
    op.create_table(
        "audience_activations",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audience_activations")
    op.drop_index("audience_runs_status", "audience_runs")
    op.drop_index("audience_runs_due", "audience_runs")
    with op.batch_alter_table("audience_runs") as batch:
        for column in ("retries", "not_before", "lease_expires_at", "claimed_by", "trigger"):
            batch.drop_column(column)
        batch.drop_column("error_kind")
        batch.add_column(sa.Column("run_key", sa.String(600), nullable=True))
