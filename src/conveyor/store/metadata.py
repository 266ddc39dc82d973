"""Writes of runs and step runs, and the cache lookup. Reads live in ``store/queries.py``."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from conveyor.core.checks import CheckResult, Severity
from conveyor.core.records import ArtifactInfo, RunStatus, StepStatus
from conveyor.errors import LeaseLostError
from conveyor.store import tables as t


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """A step run to write: cached and skipped steps are written in batches."""

    name: str
    position: int
    status: StepStatus
    cache_key: str | None = None
    key_parts: Mapping[str, Any] | None = None
    inputs: Mapping[str, ArtifactInfo] = field(default_factory=dict)
    outputs: Mapping[str, ArtifactInfo] = field(default_factory=dict)
    cached_from: int | None = None
    error: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    checks: Sequence[CheckResult] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedStep:
    step_run_id: int
    outputs: dict[str, ArtifactInfo]
    metrics: dict[str, float]
    checks: list[CheckResult]


def check_from_row(row: Any) -> CheckResult:
    return CheckResult(
        name=row.name,
        kind=row.kind,
        passed=bool(row.passed),
        severity=Severity(row.severity),
        metrics=dict(row.metrics or {}),
        message=row.message,
        details=dict(row.details or {}),
    )


class MetadataStore:
    """Runs, step runs and artifacts in the metadata database (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # Writes go through this engine: on SQLite it opens BEGIN IMMEDIATE (see store/db.py).
        self.writer = engine.execution_options(conveyor_write=True)

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table).on_conflict_do_nothing()
        return table.insert().prefix_with("IGNORE")

    # -- runs ------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        project: str,
        pipeline: str,
        owner: str,
        git: Mapping[str, Any],
        params: Mapping[str, Any],
        step_params: Mapping[str, Mapping[str, Any]],
        environment: Mapping[str, Any],
        reproduces: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        stamp = now()
        with self.writer.begin() as conn:
            conn.execute(
                t.runs.insert().values(
                    id=run_id,
                    project=project,
                    pipeline=pipeline,
                    status=RunStatus.RUNNING,
                    started_at=stamp,
                    heartbeat_at=stamp,
                    lease_owner=owner,
                    git_commit=git.get("commit"),
                    git_dirty=bool(git.get("dirty")),
                    git_diff_digest=git.get("diff_digest"),
                    project_subdir=git.get("subdir", ""),
                    params=dict(params),
                    environment=dict(environment),
                    reproduces=reproduces,
                )
            )
            rows = [
                {"run_id": run_id, "scope": "", "key": k, "value": v} for k, v in params.items()
            ]
            rows += [
                {"run_id": run_id, "scope": step, "key": k, "value": v}
                for step, values in step_params.items()
                for k, v in values.items()
            ]
            if rows:
                conn.execute(t.params.insert(), rows)
            if tags:
                conn.execute(
                    t.tags.insert(),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )

    @staticmethod
    def _owned(run_id: str, owner: str) -> Any:
        """An update of the run that applies only while it is running under our lease."""
        runs = t.runs
        return runs.update().where(
            runs.c.id == run_id, runs.c.lease_owner == owner, runs.c.status == RunStatus.RUNNING
        )

    @staticmethod
    def _end_running_steps(
        conn: sa.Connection, run_id: str, status: StepStatus, error: str | None = None
    ) -> None:
        sr = t.step_runs
        conn.execute(
            sr.update()
            .where(sr.c.run_id == run_id, sr.c.status == StepStatus.RUNNING)
            .values(status=status, ended_at=now(), error=error)
        )

    def heartbeat(self, run_id: str, owner: str) -> bool:
        """Renew the lease; False when the run is no longer ours (it was reaped)."""
        with self.writer.begin() as conn:
            res = conn.execute(self._owned(run_id, owner).values(heartbeat_at=now()))
            return bool(res.rowcount)

    def _claim(self, conn: sa.Connection, run_id: str, owner: str) -> None:
        """Inside a write transaction: the run must still be running under our lease.

        The row is locked (on PostgreSQL) so the reaper cannot fail the run half-way through
        our write; SQLite's BEGIN IMMEDIATE already serializes writers.
        """
        row = conn.execute(self._stmts["claim"], {"run_id": run_id}).first()
        if row is None or row.status != RunStatus.RUNNING or row.lease_owner != owner:
            why = f" ({row.error})" if row is not None and row.error else ""
            raise LeaseLostError(
                f"run {run_id} lost its lease: another process marked it "
                f"{row.status if row else 'deleted'}{why}; its results are discarded",
                hint="check that the machine running it is not overloaded or suspended, or "
                "raise heartbeat_seconds in conveyor.yaml",
            )

    def finish_run(
        self, run_id: str, status: RunStatus, error: str | None = None, *, owner: str
    ) -> bool:
        """End a run we own; False (and nothing written) when it is no longer ours."""
        with self.writer.begin() as conn:
            res = conn.execute(
                self._owned(run_id, owner).values(status=status, ended_at=now(), error=error)
            )
            if not res.rowcount:
                return False
            if status != RunStatus.SUCCEEDED:
                cancelled = status == RunStatus.CANCELLED
                self._end_running_steps(
                    conn, run_id, StepStatus.CANCELLED if cancelled else StepStatus.FAILED
                )
            return True

    def reap_dead_runs(self, *, host: str, alive: Any, ttl_s: float) -> list[str]:
        """Mark failed every running run whose owner is gone: no heartbeat within ``ttl_s``,
        or an owner process on this host that no longer exists (``alive(pid) -> bool``)."""
        cutoff = now() - timedelta(seconds=ttl_s)
        reaped: list[str] = []
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.runs.c.id, t.runs.c.lease_owner, t.runs.c.heartbeat_at).where(
                    t.runs.c.status == RunStatus.RUNNING
                )
            ).all()
        for run_id, owner, beat in rows:
            parts = owner.split(":")  # host:pid:token
            owner_host = ":".join(parts[:-2]) if len(parts) >= 3 else ""
            pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else -1
            stale = as_utc(beat) is not None and as_utc(beat) < cutoff  # type: ignore[operator]
            dead = owner_host == host and pid > 0 and not alive(pid)
            if not (stale or dead):
                continue
            why = (
                "its process is gone"
                if dead
                else f"no heartbeat since {as_utc(beat):%Y-%m-%d %H:%M:%S} UTC"
            )
            with self.writer.begin() as conn:
                res = conn.execute(
                    self._owned(run_id, owner).values(
                        status=RunStatus.FAILED,
                        ended_at=now(),
                        error=f"the run stopped without finishing: {why}",
                    )
                )
                if res.rowcount:
                    self._end_running_steps(conn, run_id, StepStatus.FAILED, f"interrupted: {why}")
                    reaped.append(run_id)
        return reaped

    # -- step runs -------------------------------------------------------------------------
    # Statements on the hot path are built once; only parameters change per step.
    @functools.cached_property
    def _stmts(self) -> dict[str, Any]:
        sr, so = t.step_runs, t.step_outputs
        key: Any = sa.bindparam("key")
        latest = (
            sa.select(sr.c.id)
            .where(sr.c.cache_key == key, sr.c.status == StepStatus.SUCCEEDED)
            .order_by(sr.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        return {
            "insert_step": sr.insert().returning(sr.c.id, sort_by_parameter_order=True),
            "insert_artifacts": self._insert_ignore(t.artifacts),
            "insert_inputs": t.step_inputs.insert(),
            "insert_outputs": so.insert(),
            "insert_metrics": t.metrics.insert(),
            "claim": sa.select(t.runs.c.status, t.runs.c.lease_owner, t.runs.c.error)
            .where(t.runs.c.id == sa.bindparam("run_id"))
            .with_for_update(),
            "finish_step": sr.update().where(sr.c.id == sa.bindparam("step_id")),
            "cached": sa.select(
                sr.c.id, sr.c.run_id, sr.c.name, so.c.name.label("output"), t.artifacts
            )
            .select_from(
                sr.outerjoin(so, so.c.step_run_id == sr.c.id).outerjoin(
                    t.artifacts, t.artifacts.c.digest == so.c.digest
                )
            )
            .where(sr.c.id == latest),
            "metrics": sa.select(t.metrics.c.key, t.metrics.c.value).where(
                t.metrics.c.run_id == sa.bindparam("run_id"),
                t.metrics.c.step == sa.bindparam("step"),
            ),
            "checks": sa.select(t.check_results)
            .where(
                t.check_results.c.run_id == sa.bindparam("run_id"),
                t.check_results.c.step == sa.bindparam("step"),
            )
            .order_by(t.check_results.c.id),
            "insert_checks": t.check_results.insert(),
        }

    def start_step(
        self,
        *,
        run_id: str,
        name: str,
        position: int,
        cache_key: str | None,
        key_parts: Mapping[str, Any] | None,
        inputs: Mapping[str, ArtifactInfo],
        owner: str,
    ) -> int:
        record = StepRecord(
            name=name,
            position=position,
            status=StepStatus.RUNNING,
            cache_key=cache_key,
            key_parts=key_parts,
            inputs=dict(inputs),
        )
        return self.record_steps(run_id=run_id, owner=owner, records=[record], finished=False)[0]

    def finish_step(
        self,
        step_id: int,
        *,
        run_id: str,
        owner: str,
        status: StepStatus,
        duration_s: float | None,
        outputs: Mapping[str, ArtifactInfo] | None = None,
        error: str | None = None,
        logs_digest: str | None = None,
        step_name: str | None = None,
        metrics: Mapping[str, float] | None = None,
        checks: Sequence[CheckResult] = (),
    ) -> None:
        st = self._stmts
        with self.writer.begin() as conn:
            self._claim(conn, run_id, owner)
            if outputs:
                self._edges(conn, "insert_outputs", [(step_id, outputs)])
            if metrics and step_name:
                conn.execute(
                    st["insert_metrics"],
                    [
                        {"run_id": run_id, "step": step_name, "key": k, "value": float(v)}
                        for k, v in metrics.items()
                    ],
                )
            if checks and step_name:
                self._checks(conn, run_id, [(step_name, c) for c in checks])
            conn.execute(
                st["finish_step"],
                {
                    "step_id": step_id,
                    "status": status,
                    "ended_at": now(),
                    "duration_s": duration_s,
                    "error": error,
                    "logs_digest": logs_digest,
                },
            )

    def record_step(self, *, run_id: str, owner: str, **fields: Any) -> int:
        """One finished step run (cached or skipped) in one transaction."""
        return self.record_steps(run_id=run_id, owner=owner, records=[StepRecord(**fields)])[0]

    def record_steps(
        self, *, run_id: str, owner: str, records: list[StepRecord], finished: bool = True
    ) -> list[int]:
        """Several step runs with their edges and metrics in one transaction."""
        if not records:
            return []
        st = self._stmts
        stamp = now()
        rows = [
            {
                "run_id": run_id,
                "name": r.name,
                "position": r.position,
                "status": r.status,
                "cache_key": r.cache_key,
                "key_parts": r.key_parts,
                "started_at": stamp,
                "ended_at": stamp if finished else None,
                "duration_s": 0.0 if finished else None,
                "cached_from": r.cached_from,
                "error": r.error,
                "logs_digest": None,
            }
            for r in records
        ]
        with self.writer.begin() as conn:
            self._claim(conn, run_id, owner)
            ids = [int(i) for i in conn.execute(st["insert_step"], rows).scalars()]
            self._edges(
                conn, "insert_inputs", [(i, r.inputs) for i, r in zip(ids, records, strict=True)]
            )
            self._edges(
                conn, "insert_outputs", [(i, r.outputs) for i, r in zip(ids, records, strict=True)]
            )
            metric_rows = [
                {"run_id": run_id, "step": r.name, "key": k, "value": float(v)}
                for r in records
                for k, v in r.metrics.items()
            ]
            if metric_rows:
                conn.execute(st["insert_metrics"], metric_rows)
            self._checks(conn, run_id, [(r.name, c) for r in records for c in r.checks])
        return ids

    def _checks(
        self, conn: sa.Connection, run_id: str, items: list[tuple[str, CheckResult]]
    ) -> None:
        if not items:
            return
        stamp = now()
        conn.execute(
            self._stmts["insert_checks"],
            [
                {
                    "run_id": run_id,
                    "step": step,
                    "name": c.name,
                    "kind": c.kind,
                    "passed": c.passed,
                    "severity": str(c.severity),
                    "metrics": dict(c.metrics),
                    "message": c.message,
                    "details": dict(c.details),
                    "created_at": stamp,
                }
                for step, c in items
            ],
        )

    def _edges(
        self, conn: sa.Connection, stmt: str, items: list[tuple[int, Mapping[str, ArtifactInfo]]]
    ) -> None:
        artifacts = {a.digest: a for _, edges in items for a in edges.values()}
        if not artifacts:
            return
        stamp = now()
        conn.execute(
            self._stmts["insert_artifacts"],
            [
                {
                    "digest": a.digest,
                    "materializer": a.materializer,
                    "type_name": a.type_name,
                    "size": a.size,
                    "meta": a.meta,
                    "created_at": stamp,
                }
                for a in artifacts.values()
            ],
        )
        conn.execute(
            self._stmts[stmt],
            [
                {"step_run_id": step_id, "name": name, "digest": a.digest}
                for step_id, edges in items
                for name, a in edges.items()
            ],
        )

    # -- cache -----------------------------------------------------------------------------
    def find_cached(self, cache_key: str) -> CachedStep | None:
        """The newest successful step run with this key, its outputs, metrics and checks."""
        st = self._stmts
        with self.engine.connect() as conn:
            rows = conn.execute(st["cached"], {"key": cache_key}).all()
            if not rows:
                return None
            first = rows[0]
            where = {"run_id": first.run_id, "step": first.name}
            mets = conn.execute(st["metrics"], where).all()
            checks = conn.execute(st["checks"], where).all()
        outputs = {
            r.output: ArtifactInfo(
                digest=r.digest,
                materializer=r.materializer,
                type_name=r.type_name,
                size=r.size,
                meta=r.meta or {},
            )
            for r in rows
            if r.output is not None
        }
        return CachedStep(
            step_run_id=first.id,
            outputs=outputs,
            metrics={m.key: m.value for m in mets},
            checks=[check_from_row(c) for c in checks],
        )

    def previous_key_parts(
        self, pipeline: str, step: str, before_run: str
    ) -> dict[str, Any] | None:
        """Key parts of the latest earlier run of this step in this pipeline (for --explain)."""
        sr = t.step_runs
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sr.c.key_parts)
                .join(t.runs, t.runs.c.id == sr.c.run_id)
                .where(
                    t.runs.c.pipeline == pipeline,
                    sr.c.name == step,
                    sr.c.run_id != before_run,
                    sr.c.key_parts.is_not(None),
                )
                .order_by(sr.c.id.desc())
                .limit(1)
            ).first()
        return dict(row[0]) if row and row[0] else None
