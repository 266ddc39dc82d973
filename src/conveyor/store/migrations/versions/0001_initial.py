"""Runs, step runs, artifacts, their edges, params, metrics and tags.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=False),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("git_dirty", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("git_diff_digest", sa.String(64)),
        sa.Column("project_subdir", sa.String(500), nullable=False, server_default=""),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("reproduces", sa.String(40)),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_pipeline_started", "runs", ["pipeline", "started_at"])
    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cache_key", sa.String(64)),
        sa.Column("key_parts", sa.JSON),
        sa.Column("started_at", TS),
        sa.Column("ended_at", TS),
        sa.Column("duration_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("logs_digest", sa.String(64)),
        sa.Column("cached_from", sa.Integer),
        sa.UniqueConstraint("run_id", "name", name="uq_step_runs_run_name"),
    )
    op.create_index("ix_step_runs_cache_key", "step_runs", ["cache_key"])
    op.create_table(
        "artifacts",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("materializer", sa.String(100), nullable=False),
        sa.Column("type_name", sa.String(300), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    for table in ("step_inputs", "step_outputs"):
        op.create_table(
            table,
            sa.Column(
                "step_run_id",
                sa.Integer,
                sa.ForeignKey("step_runs.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("digest", sa.String(64), sa.ForeignKey("artifacts.digest"), nullable=False),
        )
        op.create_index(f"ix_{table}_digest", table, ["digest"])
    op.create_table(
        "params",
        sa.Column(
            "run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.JSON),
    )
    op.create_table(
        "metrics",
        sa.Column(
            "run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("step", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_table(
        "tags",
        sa.Column(
            "run_id", sa.String(40), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "tags",
        "metrics",
        "params",
        "step_outputs",
        "step_inputs",
        "artifacts",
        "step_runs",
        "runs",
    ):
        op.drop_table(table)
