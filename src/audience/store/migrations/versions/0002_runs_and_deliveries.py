"""Runs of activations and the files they delivered.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audience_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_key", sa.String(600), nullable=False, unique=True),
        sa.Column("activation_kind", sa.String(32), nullable=False),
        sa.Column("activation_name", sa.String(200), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("is_test", sa.Boolean, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "audience_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("audience_runs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("sub_audience", sa.String(200), nullable=True),
        sa.Column("group_name", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audience_deliveries")
    op.drop_table("audience_runs")
