"""Reads of the metadata store: runs, step runs, artifacts, metrics, lineage edges."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from conveyor.core.records import ArtifactInfo, RunRecord, RunStatus, StepRunRecord, StepStatus
from conveyor.errors import NotFoundError, UsageError
from conveyor.store import tables as t
from conveyor.store.metadata import MetadataStore, as_utc


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        pipeline=row.pipeline,
        status=RunStatus(row.status),
        started_at=as_utc(row.started_at) or row.started_at,
        ended_at=as_utc(row.ended_at),
        git_commit=row.git_commit,
        git_dirty=bool(row.git_dirty),
        git_diff_digest=row.git_diff_digest,
        project_subdir=row.project_subdir or "",
        params=row.params or {},
        environment=row.environment or {},
        error=row.error,
        reproduces=row.reproduces,
    )


def list_runs(
    store: MetadataStore, *, limit: int = 20, pipeline: str | None = None, status: str | None = None
) -> list[RunRecord]:
    q = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc()).limit(limit)
    if pipeline:
        q = q.where(t.runs.c.pipeline == pipeline)
    if status:
        q = q.where(t.runs.c.status == status)
    with store.engine.connect() as conn:
        return [_run(r) for r in conn.execute(q)]


def get_run(store: MetadataStore, ref: str) -> RunRecord:
    """A run by id, unique id prefix, ``latest`` or ``latest~N``."""
    with store.engine.connect() as conn:
        if ref == "latest" or ref.startswith("latest~"):
            offset = int(ref.partition("~")[2] or 0) if ref != "latest" else 0
            row = conn.execute(
                sa.select(t.runs)
                .order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
                .offset(offset)
                .limit(1)
            ).first()
            if row is None:
                raise NotFoundError("there are no runs yet", hint="start one with 'conveyor run'")
            return _run(row)
        rows = conn.execute(
            sa.select(t.runs).where(t.runs.c.id.startswith(ref, autoescape=True)).limit(2)
        ).all()
    if not rows:
        raise NotFoundError(f"no run '{ref}'", hint="list runs with 'conveyor runs list'")
    if len(rows) > 1:
        raise UsageError(f"'{ref}' matches several runs", hint="give more characters of the id")
    return _run(rows[0])


def step_runs(store: MetadataStore, run_id: str) -> list[StepRunRecord]:
    sr = t.step_runs
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(sr).where(sr.c.run_id == run_id).order_by(sr.c.position)
        ).all()
        ids = [r.id for r in rows]
        ins: dict[int, dict[str, str]] = {i: {} for i in ids}
        outs: dict[int, dict[str, str]] = {i: {} for i in ids}
        if ids:
            for table, target in ((t.step_inputs, ins), (t.step_outputs, outs)):
                for e in conn.execute(sa.select(table).where(table.c.step_run_id.in_(ids))):
                    target[e.step_run_id][e.name] = e.digest
    return [
        StepRunRecord(
            id=r.id,
            run_id=r.run_id,
            name=r.name,
            position=r.position,
            status=StepStatus(r.status),
            cache_key=r.cache_key,
            key_parts=r.key_parts,
            started_at=as_utc(r.started_at),
            ended_at=as_utc(r.ended_at),
            duration_s=r.duration_s,
            error=r.error,
            logs_digest=r.logs_digest,
            cached_from=r.cached_from,
            inputs=ins[r.id],
            outputs=outs[r.id],
        )
        for r in rows
    ]


def run_metrics(store: MetadataStore, run_id: str) -> dict[str, float]:
    """Metrics of a run as ``key`` (or ``step.key`` when two steps log the same key)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.metrics)
            .where(t.metrics.c.run_id == run_id)
            .order_by(t.metrics.c.step, t.metrics.c.key)
        ).all()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.key] = counts.get(r.key, 0) + 1
    return {(r.key if counts[r.key] == 1 else f"{r.step}.{r.key}"): r.value for r in rows}


def run_tags(store: MetadataStore, run_id: str) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.tags).where(t.tags.c.run_id == run_id)).all()
    return {r.key: r.value for r in rows}


def step_params(store: MetadataStore, run_id: str) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.params).where(t.params.c.run_id == run_id, t.params.c.scope != "")
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r.scope, {})[r.key] = r.value
    return out


def find_artifact(store: MetadataStore, prefix: str) -> ArtifactInfo:
    if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
        raise NotFoundError(
            f"'{prefix}' is not an artifact digest prefix",
            hint="give at least 4 hex characters of the digest",
        )
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.artifacts).where(t.artifacts.c.digest.startswith(prefix)).limit(2)
        ).all()
    if not rows:
        raise NotFoundError(f"no artifact with digest starting '{prefix}'")
    if len(rows) > 1:
        raise UsageError(f"'{prefix}' matches several artifacts", hint="give more characters")
    r = rows[0]
    return ArtifactInfo(
        digest=r.digest,
        materializer=r.materializer,
        type_name=r.type_name,
        size=r.size,
        meta=r.meta or {},
    )


def artifact_edges(store: MetadataStore, digest: str, table: sa.Table) -> list[dict[str, Any]]:
    """Step runs that produced (``step_outputs``) or consumed (``step_inputs``) a digest."""
    sr = t.step_runs
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(sr.c.id, sr.c.run_id, sr.c.name, sr.c.status, table.c.name.label("port"))
            .join(table, table.c.step_run_id == sr.c.id)
            .where(table.c.digest == digest)
            .order_by(sr.c.id)
        ).all()
    return [dict(r._mapping) for r in rows]


def check_results(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """Every check result recorded on a run, in order, as plain dicts."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.check_results)
            .where(t.check_results.c.run_id == run_id)
            .order_by(t.check_results.c.id)
        ).all()
    return [
        {
            "step": r.step,
            "name": r.name,
            "kind": r.kind,
            "passed": bool(r.passed),
            "severity": r.severity,
            "metrics": r.metrics or {},
            "message": r.message,
            "details": r.details or {},
        }
        for r in rows
    ]


def model_version_digest(store: MetadataStore, name: str, version: str) -> str | None:
    """The model artifact of a registered version (``latest`` or a number), or None."""
    mv = t.model_versions
    query = sa.select(mv.c.digest).where(mv.c.name == name)
    if version == "latest":
        query = query.order_by(mv.c.version.desc()).limit(1)
    elif version.isdigit():
        query = query.where(mv.c.version == int(version))
    else:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return str(row[0]) if row else None
