"""Delivery: promotions and their events, environments' desired state, local deployments,
the audit log and API tokens.

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

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(40), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("open_slot", sa.String(40), unique=True),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires", TS),
    )
    op.create_index("ix_promotions_env", "promotions", ["environment", "id"])
    op.create_table(
        "promotion_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "promotion_id",
            sa.Integer,
            sa.ForeignKey("promotions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_promotion_events_promotion", "promotion_events", ["promotion_id", "id"])
    op.create_table(
        "environment_state",
        sa.Column("environment", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(100)),
        sa.Column("live_version", sa.Integer),
        sa.Column("live_promotion", sa.Integer),
        sa.Column("candidate_version", sa.Integer),
        sa.Column("candidate_promotion", sa.Integer),
        sa.Column("mode", sa.String(16)),
        sa.Column("traffic", sa.Integer, nullable=False, server_default="0"),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("environment", sa.String(40), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("supervisor_pid", sa.Integer),
        sa.Column("server_pid", sa.Integer),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS),
        sa.Column("observed", sa.JSON, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_log")
    op.drop_table("deployments")
    op.drop_table("environment_state")
    op.drop_index("ix_promotion_events_promotion", "promotion_events")
    op.drop_table("promotion_events")
    op.drop_index("ix_promotions_env", "promotions")
    op.drop_table("promotions")
