"""Writes of runs and step runs, and the cache lookup. Reads live in ``store/queries.py``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from conveyor.core.checks import CheckResult
from conveyor.core.records import ArtifactInfo, RunStatus, StepStatus
from conveyor.errors import LeaseLostError
from conveyor.store import tables as t


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class MetadataStore:
    """Runs, step runs and artifacts in the metadata database (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
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
        with self.engine.begin() as conn:
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

    def heartbeat(self, run_id: str, owner: str) -> bool:
        """Renew the lease; False when the run is no longer ours (it was reaped)."""
        with self.engine.begin() as conn:
            res = conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.id == run_id,
                    t.runs.c.lease_owner == owner,
                    t.runs.c.status == RunStatus.RUNNING,
                )
                .values(heartbeat_at=now())
            )
            return bool(res.rowcount)

    def _claim(self, conn: sa.Connection, run_id: str, owner: str) -> None:
        """Inside a write transaction: the run must still be running under our lease.

        The row is locked (on PostgreSQL) so the reaper cannot fail the run half-way through
        our write; SQLite's BEGIN IMMEDIATE already serializes writers.
        """
        row = conn.execute(
            sa.select(t.runs.c.status, t.runs.c.lease_owner, t.runs.c.error)
            .where(t.runs.c.id == run_id)
            .with_for_update()
        ).first()
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
        with self.engine.begin() as conn:
            res = conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.id == run_id,
                    t.runs.c.lease_owner == owner,
                    t.runs.c.status == RunStatus.RUNNING,
                )
                .values(status=status, ended_at=now(), error=error)
            )
            if not res.rowcount:
                return False
            if status != RunStatus.SUCCEEDED:
                conn.execute(
                    t.step_runs.update()
                    .where(
                        t.step_runs.c.run_id == run_id, t.step_runs.c.status == StepStatus.RUNNING
                    )
                    .values(
                        status=StepStatus.CANCELLED
                        if status == RunStatus.CANCELLED
                        else StepStatus.FAILED,
                        ended_at=now(),
                    )
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
            with self.engine.begin() as conn:
                res = conn.execute(
                    t.runs.update()
                    .where(
                        t.runs.c.id == run_id,
                        t.runs.c.lease_owner == owner,
                        t.runs.c.status == RunStatus.RUNNING,
                    )
                    .values(
                        status=RunStatus.FAILED,
                        ended_at=now(),
                        error=f"the run stopped without finishing: {why}",
                    )
                )
                if res.rowcount:
                    conn.execute(
                        t.step_runs.update()
                        .where(
                            t.step_runs.c.run_id == run_id,
                            t.step_runs.c.status == StepStatus.RUNNING,
                        )
                        .values(
                            status=StepStatus.FAILED, ended_at=now(), error=f"interrupted: {why}"
                        )
                    )
                    reaped.append(run_id)
        return reaped

    # -- step runs -------------------------------------------------------------------------
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
        with self.engine.begin() as conn:
            self._claim(conn, run_id, owner)
            step_id = self._insert_step(
                conn,
                run_id=run_id,
                name=name,
                position=position,
                status=StepStatus.RUNNING,
                cache_key=cache_key,
                key_parts=key_parts,
                started_at=now(),
            )
            self._edges(conn, t.step_inputs, step_id, inputs)
            return step_id

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
    ) -> None:
        with self.engine.begin() as conn:
            self._claim(conn, run_id, owner)
            if outputs:
                self._edges(conn, t.step_outputs, step_id, outputs)
            if metrics and step_name:
                conn.execute(
                    t.metrics.insert(),
                    [
                        {"run_id": run_id, "step": step_name, "key": k, "value": float(v)}
                        for k, v in metrics.items()
                    ],
                )
            conn.execute(
                t.step_runs.update()
                .where(t.step_runs.c.id == step_id)
                .values(
                    status=status,
                    ended_at=now(),
                    duration_s=duration_s,
                    error=error,
                    logs_digest=logs_digest,
                )
            )

    def record_step(
        self,
        *,
        run_id: str,
        name: str,
        position: int,
        status: StepStatus,
        cache_key: str | None = None,
        key_parts: Mapping[str, Any] | None = None,
        inputs: Mapping[str, ArtifactInfo] | None = None,
        outputs: Mapping[str, ArtifactInfo] | None = None,
        cached_from: int | None = None,
        error: str | None = None,
        metrics: Mapping[str, float] | None = None,
        owner: str,
    ) -> int:
        """One finished step run in one transaction (cached or skipped steps)."""
        stamp = now()
        with self.engine.begin() as conn:
            self._claim(conn, run_id, owner)
            step_id = self._insert_step(
                conn,
                run_id=run_id,
                name=name,
                position=position,
                status=status,
                cache_key=cache_key,
                key_parts=key_parts,
                started_at=stamp,
                ended_at=stamp,
                duration_s=0.0,
                cached_from=cached_from,
                error=error,
            )
            if inputs:
                self._edges(conn, t.step_inputs, step_id, inputs)
            if outputs:
                self._edges(conn, t.step_outputs, step_id, outputs)
            if metrics:
                conn.execute(
                    t.metrics.insert(),
                    [
                        {"run_id": run_id, "step": name, "key": k, "value": float(v)}
                        for k, v in metrics.items()
                    ],
                )
            return step_id

    @staticmethod
    def _insert_step(conn: sa.Connection, **values: Any) -> int:
        res = conn.execute(t.step_runs.insert().values(**values).returning(t.step_runs.c.id))
        return int(res.scalar_one())

    def _edges(
        self, conn: sa.Connection, table: sa.Table, step_id: int, items: Mapping[str, ArtifactInfo]
    ) -> None:
        if not items:
            return
        stamp = now()
        conn.execute(
            self._insert_ignore(t.artifacts),
            [
                {
                    "digest": a.digest,
                    "materializer": a.materializer,
                    "type_name": a.type_name,
                    "size": a.size,
                    "meta": a.meta,
                    "created_at": stamp,
                }
                for a in items.values()
            ],
        )
        conn.execute(
            table.insert(),
            [
                {"step_run_id": step_id, "name": name, "digest": a.digest}
                for name, a in items.items()
            ],
        )

    # -- cache -----------------------------------------------------------------------------
    def find_cached(
        self, cache_key: str
    ) -> tuple[int, dict[str, ArtifactInfo], dict[str, float]] | None:
        """The newest successful step run with this key, its outputs and metrics."""
        sr = t.step_runs
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sr.c.id, sr.c.run_id, sr.c.name, sr.c.cached_from)
                .where(sr.c.cache_key == cache_key, sr.c.status == StepStatus.SUCCEEDED)
                .order_by(sr.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            outs = conn.execute(
                sa.select(t.step_outputs.c.name, t.artifacts)
                .join(t.artifacts, t.artifacts.c.digest == t.step_outputs.c.digest)
                .where(t.step_outputs.c.step_run_id == row.id)
            ).all()
            mets = conn.execute(
                sa.select(t.metrics.c.key, t.metrics.c.value).where(
                    t.metrics.c.run_id == row.run_id, t.metrics.c.step == row.name
                )
            ).all()
        outputs = {
            o.name: ArtifactInfo(
                digest=o.digest,
                materializer=o.materializer,
                type_name=o.type_name,
                size=o.size,
                meta=o.meta or {},
            )
            for o in outs
        }
        return row.id, outputs, {m.key: m.value for m in mets}

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

    # -- params, tags, checks --------------------------------------------------------------
    def set_tag(self, run_id: str, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.tags.delete().where(t.tags.c.run_id == run_id, t.tags.c.key == key))
            conn.execute(t.tags.insert().values(run_id=run_id, key=key, value=value))

    def record_check(self, run_id: str | None, step: str | None, result: CheckResult) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.check_results.insert().values(
                    run_id=run_id,
                    step=step,
                    name=result.name,
                    kind=result.kind,
                    passed=result.passed,
                    severity=str(result.severity),
                    metrics=result.metrics,
                    message=result.message,
                    details=result.details,
                    created_at=now(),
                )
            )
