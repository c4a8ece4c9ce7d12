"""Accounts (users and their API tokens), secrets encrypted at rest, and the audit log.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audience_users",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_table(
        "audience_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column(
            "user_name",
            sa.String(200),
            sa.ForeignKey("audience_users.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("last_used_at", WHEN, nullable=True),
    )
    op.create_index("ix_audience_tokens_user_name", "audience_tokens", ["user_name"])
    op.create_table(
        "audience_secrets",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "audience_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audience_audit_at", "audience_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audience_audit_at", "audience_audit")
    op.drop_table("audience_audit")
    op.drop_table("audience_secrets")
    op.drop_index("ix_audience_tokens_user_name", "audience_tokens")
    op.drop_table("audience_tokens")
    op.drop_table("audience_users")
