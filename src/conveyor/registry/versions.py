"""Model versions: a run's model artifact registered under a name, numbered by the database.

The number is allocated inside the insert (one more than the highest for the name) and the
database's unique constraint on (name, version) settles a race: the loser retries with the
next number. So two registrations at once, on SQLite or PostgreSQL, get two numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from conveyor.errors import ConflictError, NotFoundError, UsageError
from conveyor.store import queries
from conveyor.store import tables as t
from conveyor.store.metadata import MetadataStore, as_utc, now

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
ATTEMPTS = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion:
    name: str
    version: int
    run_id: str
    step: str
    output: str
    digest: str  # the model artifact
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    package_digest: str | None = None
    created_by: str = ""
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "step": self.step,
            "output": self.output,
            "digest": self.digest,
            "description": self.description,
            "tags": self.tags,
            "package_digest": self.package_digest,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid model name '{name}'",
            hint="use letters, digits, '.', '_' and '-' (at most 100 characters)",
        )
    return name


def _row(row: Any) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        run_id=row.run_id,
        step=row.step,
        output=row.output,
        digest=row.digest,
        description=row.description,
        tags=dict(row.tags or {}),
        package_digest=row.package_digest,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
    )


def register_model(
    store: MetadataStore,
    *,
    name: str,
    run_ref: str,
    step: str,
    output: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    actor: str = "",
) -> ModelVersion:
    """Register the output ``output`` of ``step`` in run ``run_ref`` as the next version."""
    check_name(name)
    run = queries.get_run(store, run_ref)
    if run.status != "succeeded":
        raise UsageError(
            f"run {run.id} {run.status}; only a succeeded run's model can be registered",
            hint="register a run that passed its gates",
        )
    steps = {s.name: s for s in queries.step_runs(store, run.id)}
    if step not in steps:
        raise NotFoundError(f"run {run.id} has no step '{step}'", hint=f"steps: {sorted(steps)}")
    outputs = steps[step].outputs
    if output is None:
        if len(outputs) != 1:
            raise UsageError(
                f"step '{step}' has outputs {sorted(outputs)}", hint="choose one with --output"
            )
        output = next(iter(outputs))
    if output not in outputs:
        raise NotFoundError(
            f"step '{step}' has no output '{output}'", hint=f"outputs: {sorted(outputs)}"
        )
    return _insert(
        store,
        name=name,
        run_id=run.id,
        step=step,
        output=output,
        digest=outputs[output],
        description=description,
        tags=tags,
        actor=actor,
    )


def _insert(
    store: MetadataStore,
    *,
    name: str,
    run_id: str,
    step: str,
    output: str,
    digest: str,
    description: str,
    tags: Mapping[str, str] | None,
    actor: str,
) -> ModelVersion:
    mv = t.model_versions
    for _ in range(ATTEMPTS):
        try:
            with store.writer.begin() as conn:
                highest = conn.execute(
                    sa.select(sa.func.max(mv.c.version)).where(mv.c.name == name)
                ).scalar_one()
                version = int(highest or 0) + 1
                conn.execute(
                    mv.insert().values(
                        name=name,
                        version=version,
                        run_id=run_id,
                        step=step,
                        output=output,
                        digest=digest,
                        description=description,
                        tags=dict(tags or {}),
                        created_by=actor,
                        created_at=now(),
                    )
                )
            return get_version(store, name, version)
        except sa.exc.IntegrityError:
            continue  # another registration took this number; take the next one
    raise ConflictError(
        f"could not allocate a version of '{name}' after {ATTEMPTS} attempts",
        hint="registrations are racing hard; try again",
    )


def register_from_step(
    store: MetadataStore,
    *,
    name: str,
    run_id: str,
    digest: str,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    actor: str = "",
) -> ModelVersion:
    """Register ``digest`` as produced in run ``run_id`` (used by the built-in register step,
    inside the run that trained the model, before that run has finished)."""
    check_name(name)
    producer = next(
        (
            s
            for s in queries.step_runs(store, run_id)
            for out, d in s.outputs.items()
            if d == digest
        ),
        None,
    )
    if producer is None:
        raise NotFoundError(f"artifact {digest[:12]} was not produced in run {run_id}")
    output = next(out for out, d in producer.outputs.items() if d == digest)
    return _insert(
        store,
        name=name,
        run_id=run_id,
        step=producer.name,
        output=output,
        digest=digest,
        description=description,
        tags=tags,
        actor=actor,
    )


def get_version(store: MetadataStore, name: str, version: int) -> ModelVersion:
    mv = t.model_versions
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(mv).where(mv.c.name == name, mv.c.version == version)).first()
    if row is None:
        raise NotFoundError(
            f"model {name} has no version {version}",
            hint=f"list them with 'conveyor model list {name}'",
        )
    return _row(row)


def list_versions(store: MetadataStore, name: str | None = None) -> list[ModelVersion]:
    mv = t.model_versions
    query = sa.select(mv).order_by(mv.c.name, mv.c.version.desc())
    if name:
        query = query.where(mv.c.name == name)
    with store.engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def resolve_version(store: MetadataStore, ref: str) -> ModelVersion:
    """``NAME:VERSION``, ``NAME:latest`` or ``NAME`` (the latest version)."""
    name, _, version = ref.partition(":")
    check_name(name)
    if version in ("", "latest"):
        found = list_versions(store, name)
        if not found:
            raise NotFoundError(
                f"no model named '{name}' is registered",
                hint=f"register one with 'conveyor model register RUN --name {name}'",
            )
        return found[0]
    if not version.isdigit():
        raise UsageError(f"'{ref}' is not NAME:VERSION", hint=f"e.g. {name}:1 or {name}:latest")
    return get_version(store, name, int(version))


def set_package(store: MetadataStore, mv: ModelVersion, package_digest: str) -> ModelVersion:
    """Record the version's package once; a version's package never changes afterwards."""
    table = t.model_versions
    with store.writer.begin() as conn:
        conn.execute(
            table.update()
            .where(
                table.c.name == mv.name,
                table.c.version == mv.version,
                table.c.package_digest.is_(None),
            )
            .values(package_digest=package_digest)
        )
    stored = get_version(store, mv.name, mv.version)
    if stored.package_digest != package_digest:
        raise ConflictError(
            f"{mv.ref} already has package {stored.package_digest[:12]}"
            if stored.package_digest
            else f"{mv.ref}: package not recorded",
            hint="a package is immutable; register a new version instead",
        )
    return stored


ONNX_TAG = "onnx"


def set_onnx(store: MetadataStore, mv: ModelVersion, onnx_digest: str) -> ModelVersion:
    """Record the ONNX file proven equivalent to the version's package (tag ``onnx``)."""
    table = t.model_versions
    tags = {**mv.tags, ONNX_TAG: onnx_digest}
    with store.writer.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.name == mv.name, table.c.version == mv.version)
            .values(tags=tags)
        )
    return get_version(store, mv.name, mv.version)
