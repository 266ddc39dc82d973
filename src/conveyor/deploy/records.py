"""The records of delivery and their rows: promotions, their events, environments' state.

:class:`Promotion`, :class:`Event` and :class:`EnvState` are frozen values read from the rows
of the ``promotions``, ``promotion_events`` and ``environment_state`` tables. A promotion is
open while its status is in :data:`OPEN`, closed once in :data:`CLOSED`. The row writes
below are the steps every transaction of :class:`~conveyor.deploy.state.Delivery` is made
of: a status move conditional on the statuses expected, the environment's row locked and
written conditional on its generation, and an event appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from conveyor.errors import ConflictError, RefusedError
from conveyor.store import tables as t
from conveyor.store.metadata import MetadataStore, as_utc, now

OPEN = frozenset({"requested", "awaiting_approval", "approved", "deploying"})
CLOSED = frozenset({"gates_failed", "rejected", "live", "failed", "rolled_back", "superseded"})
P = t.promotions  # the tables, as the queries of this module and of state.py name them
E = t.promotion_events
S = t.environment_state


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: str
    actor: str
    at: datetime
    message: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "message": self.message,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Promotion:
    id: int
    environment: str
    model: str
    version: int
    kind: str  # promote | rollback
    strategy: str
    status: str
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    lease_owner: str | None = None
    lease_expires: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "model": self.model,
            "version": self.version,
            "kind": self.kind,
            "strategy": self.strategy,
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvState:
    environment: str
    model: str | None = None
    live_version: int | None = None
    live_promotion: int | None = None
    candidate_version: int | None = None
    candidate_promotion: int | None = None
    mode: str | None = None
    traffic: int = 0
    generation: int = 0
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "model": self.model,
            "live_version": self.live_version,
            "live_promotion": self.live_promotion,
            "candidate_version": self.candidate_version,
            "candidate_promotion": self.candidate_promotion,
            "mode": self.mode,
            "traffic": self.traffic,
            "generation": self.generation,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def promotion_from_row(row: Any) -> Promotion:
    return Promotion(
        id=row.id,
        environment=row.environment,
        model=row.model,
        version=row.version,
        kind=row.kind,
        strategy=row.strategy,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=as_utc(row.requested_at),  # type: ignore[arg-type]
        updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
        lease_owner=row.lease_owner,
        lease_expires=as_utc(row.lease_expires),
    )


def event_from_row(row: Any) -> Event:
    return Event(
        kind=row.kind,
        actor=row.actor,
        at=as_utc(row.at),  # type: ignore[arg-type]
        message=row.message,
        evidence=list(row.evidence or []),
    )


def env_state_from_row(environment: str, row: Any) -> EnvState:
    if row is None:
        return EnvState(environment=environment)
    return EnvState(
        environment=environment,
        model=row.model,
        live_version=row.live_version,
        live_promotion=row.live_promotion,
        candidate_version=row.candidate_version,
        candidate_promotion=row.candidate_promotion,
        mode=row.mode,
        traffic=row.traffic,
        generation=row.generation,
        updated_at=as_utc(row.updated_at),
    )


def move_status(
    conn: sa.Connection,
    promotion: Promotion,
    expect: Sequence[str],
    status: str,
    lease_owner: str | None,
    lease_s: float | None,
    *,
    close: bool = False,
) -> None:
    """Set the promotion's status if it is one of ``expect`` (else refuse, saying what it is);
    ``close`` frees the environment's open slot and the lease."""
    values: dict[str, Any] = {"status": status, "updated_at": now()}
    if close:
        values.update(open_slot=None, lease_owner=None, lease_expires=None)
    elif lease_s is not None:
        values.update(
            lease_owner=lease_owner,
            lease_expires=now() + timedelta(seconds=lease_s) if lease_owner else None,
        )
    res = conn.execute(
        P.update().where(P.c.id == promotion.id, P.c.status.in_(list(expect))).values(values)
    )
    if res.rowcount != 1:
        row = conn.execute(sa.select(P.c.status).where(P.c.id == promotion.id)).first()
        found = row.status.replace("_", " ") if row else "gone"
        raise RefusedError(
            f"promotion #{promotion.id} of {promotion.ref} to {promotion.environment} is "
            f"{found}; it cannot become {status.replace('_', ' ')}",
            hint=f"see its events: conveyor history {promotion.environment}",
        )


def locked_state(store: MetadataStore, conn: sa.Connection, environment: str) -> EnvState:
    """The environment's row, created if missing, locked for this transaction on
    PostgreSQL (SQLite's writer holds the database lock already)."""
    query = sa.select(S).where(S.c.environment == environment)
    if store.dialect == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        conn.execute(
            store._insert_ignore(S).values(
                environment=environment, traffic=0, generation=0, updated_at=now()
            )
        )
        row = conn.execute(query).first()
    return env_state_from_row(environment, row)


def write_state(conn: sa.Connection, state: EnvState, **values: Any) -> None:
    """Update the environment's row and bump its generation, if no one has since ``state``
    was read."""
    res = conn.execute(
        S.update()
        .where(S.c.environment == state.environment, S.c.generation == state.generation)
        .values(generation=state.generation + 1, updated_at=now(), **values)
    )
    if res.rowcount != 1:
        raise ConflictError(
            f"environment '{state.environment}' changed while this change was written",
            hint="look at conveyor status and try again",
        )


def add_event(
    conn: sa.Connection,
    promotion_id: int,
    kind: str,
    actor: str,
    message: str,
    evidence: Sequence[dict[str, Any]],
    at: datetime | None = None,
) -> None:
    """Append an event to the promotion's history."""
    conn.execute(
        E.insert().values(
            promotion_id=promotion_id,
            kind=kind,
            actor=actor,
            at=at or now(),
            message=message,
            evidence=list(evidence),
        )
    )
