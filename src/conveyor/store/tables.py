"""The metadata schema as the code expects it. Alembic migrations must produce exactly this."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(40)
DIGEST = sa.String(64)
NAME = sa.String(200)
TS = sa.DateTime(timezone=True)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("pipeline", NAME, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("ended_at", TS),
    sa.Column("heartbeat_at", TS, nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=False),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("git_dirty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("git_diff_digest", DIGEST),
    sa.Column("project_subdir", sa.String(500), nullable=False, server_default=""),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("environment", sa.JSON, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("reproduces", ID),
    sa.Index("ix_runs_status", "status"),
    sa.Index("ix_runs_pipeline_started", "pipeline", "started_at"),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cache_key", DIGEST),
    sa.Column("key_parts", sa.JSON),
    sa.Column("started_at", TS),
    sa.Column("ended_at", TS),
    sa.Column("duration_s", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("logs_digest", DIGEST),
    sa.Column("cached_from", sa.Integer),
    sa.UniqueConstraint("run_id", "name", name="uq_step_runs_run_name"),
    sa.Index("ix_step_runs_cache_key", "cache_key"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("digest", DIGEST, primary_key=True),
    sa.Column("materializer", sa.String(100), nullable=False),
    sa.Column("type_name", sa.String(300), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

step_inputs = sa.Table(
    "step_inputs",
    metadata,
    sa.Column(
        "step_run_id",
        sa.Integer,
        sa.ForeignKey("step_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", NAME, primary_key=True),
    sa.Column("digest", DIGEST, sa.ForeignKey("artifacts.digest"), nullable=False),
    sa.Index("ix_step_inputs_digest", "digest"),
)

step_outputs = sa.Table(
    "step_outputs",
    metadata,
    sa.Column(
        "step_run_id",
        sa.Integer,
        sa.ForeignKey("step_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", NAME, primary_key=True),
    sa.Column("digest", DIGEST, sa.ForeignKey("artifacts.digest"), nullable=False),
    sa.Index("ix_step_outputs_digest", "digest"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("scope", NAME, primary_key=True),  # "" for the pipeline, else the step name
    sa.Column("key", NAME, primary_key=True),
    sa.Column("value", sa.JSON),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", NAME, primary_key=True),
    sa.Column("key", NAME, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", NAME, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

check_results = sa.Table(
    "check_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE")),
    sa.Column("step", NAME),
    sa.Column("name", NAME, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_check_results_run", "run_id"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("step", NAME, nullable=False),
    sa.Column("output", NAME, nullable=False),
    sa.Column("digest", DIGEST, sa.ForeignKey("artifacts.digest"), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("package_digest", DIGEST),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    sa.Index("ix_model_versions_digest", "digest"),
)

# -- delivery: promotions, environments' desired state, deployments, audit ----------------

promotions = sa.Table(
    "promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(40), nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # promote | rollback
    sa.Column("strategy", sa.String(16), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("requested_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    # The environment's name while the promotion is open, NULL once it has ended: the unique
    # constraint lets one promotion at a time be open per environment, on any database.
    sa.Column("open_slot", sa.String(40), unique=True),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires", TS),
    sa.Index("ix_promotions_env", "environment", "id"),
)

promotion_events = sa.Table(
    "promotion_events",
    metadata,
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
    sa.Index("ix_promotion_events_promotion", "promotion_id", "id"),
)

environment_state = sa.Table(
    "environment_state",
    metadata,
    sa.Column("environment", sa.String(40), primary_key=True),
    sa.Column("model", sa.String(100)),
    sa.Column("live_version", sa.Integer),
    sa.Column("live_promotion", sa.Integer),
    sa.Column("candidate_version", sa.Integer),
    sa.Column("candidate_promotion", sa.Integer),
    sa.Column("mode", sa.String(16)),  # replace | canary | shadow, while a candidate is set
    sa.Column("traffic", sa.Integer, nullable=False, server_default="0"),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", TS, nullable=False),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("environment", sa.String(40), primary_key=True),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("url", sa.String(300), nullable=False),
    sa.Column("supervisor_pid", sa.Integer),
    sa.Column("server_pid", sa.Integer),
    sa.Column("token_digest", DIGEST, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("heartbeat_at", TS),
    sa.Column("observed", sa.JSON, nullable=False),  # what the server reports it serves
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index("ix_audit_log_at", "at"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("digest", DIGEST, primary_key=True),  # sha256 of the token; the token is not kept
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
)
