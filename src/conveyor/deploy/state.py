"""Promotions and environments' desired state in the metadata store.

A promotion is a row with a status and an append-only list of events (requested, gates
passed or failed, approved or rejected, deploying, canary steps, live, failed, rolled back,
superseded), each with its actor, time and evidence. An environment's desired state is one
row: the live version (the alias), and while a rollout runs the candidate with its mode and
traffic share, plus a generation number bumped on every change. Every change of status and
of desired state is written with its event in one transaction, and every update is
conditional on the state it expects, so two writers cannot both win: the loser gets a
:class:`ConflictError` or :class:`RefusedError` that says what it found.

One promotion at a time may be open in an environment: the ``open_slot`` column holds the
environment's name while a promotion is open, under a unique constraint. The records read
from these rows are in :mod:`conveyor.deploy.records` (and importable from here).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from conveyor.deploy.records import (
    CLOSED,
    OPEN,
    E,
    EnvState,
    Event,
    P,
    Promotion,
    S,
    add_event,
    env_state_from_row,
    event_from_row,
    locked_state,
    move_status,
    promotion_from_row,
    write_state,
)
from conveyor.errors import ConflictError, NotFoundError, RefusedError
from conveyor.store.metadata import MetadataStore, now

__all__ = ["CLOSED", "OPEN", "Delivery", "EnvState", "Event", "Promotion"]


class Delivery:
    """Reads and transactional writes of promotions and environment state."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    # -- reads -------------------------------------------------------------------------------

    def env_state(self, environment: str) -> EnvState:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(S).where(S.c.environment == environment)).first()
        return env_state_from_row(environment, row)

    def get(self, promotion_id: int) -> Promotion:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(P).where(P.c.id == promotion_id)).first()
        if row is None:
            raise NotFoundError(
                f"no promotion #{promotion_id}",
                hint="list an environment's promotions with: conveyor history ENV",
            )
        return promotion_from_row(row)

    def open_promotion(self, environment: str) -> Promotion | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(P).where(P.c.open_slot == environment)).first()
        return promotion_from_row(row) if row is not None else None

    def promotions(self, environment: str | None = None, limit: int = 50) -> list[Promotion]:
        query = sa.select(P).order_by(P.c.id.desc()).limit(limit)
        if environment is not None:
            query = query.where(P.c.environment == environment)
        with self.store.engine.connect() as conn:
            return [promotion_from_row(row) for row in conn.execute(query)]

    def events(self, promotion_id: int) -> list[Event]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(E).where(E.c.promotion_id == promotion_id).order_by(E.c.id)
            ).all()
        return [event_from_row(row) for row in rows]

    def was_live(self, environment: str, model: str, version: int) -> bool:
        """Whether the version has ever gone live in the environment."""
        query = (
            sa.select(sa.func.count())
            .select_from(E.join(P, E.c.promotion_id == P.c.id))
            .where(
                P.c.environment == environment,
                P.c.model == model,
                P.c.version == version,
                E.c.kind == "live",
            )
        )
        with self.store.engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    # -- writes ------------------------------------------------------------------------------

    def request(
        self,
        *,
        environment: str,
        model: str,
        version: int,
        strategy: str,
        actor: str,
        message: str,
        kind: str = "promote",
        lease_owner: str | None = None,
        lease_s: float = 30.0,
    ) -> Promotion:
        """Open a promotion (status requested), or fail with the one already open."""
        at = now()
        try:
            with self.store.writer.begin() as conn:
                pid = conn.execute(
                    P.insert().values(
                        environment=environment,
                        model=model,
                        version=version,
                        kind=kind,
                        strategy=strategy,
                        status="requested",
                        requested_by=actor,
                        requested_at=at,
                        updated_at=at,
                        open_slot=environment,
                        lease_owner=lease_owner,
                        lease_expires=at + timedelta(seconds=lease_s) if lease_owner else None,
                    )
                ).inserted_primary_key
                assert pid is not None
                pid = pid[0]
                add_event(conn, pid, "requested", actor, message, [], at)
        except sa.exc.IntegrityError:
            other = self.open_promotion(environment)
            what = (
                f"promotion #{other.id} of {other.ref} is {other.status.replace('_', ' ')}"
                if other
                else "another promotion was opened at the same moment"
            )
            raise ConflictError(
                f"environment '{environment}' is busy: {what}",
                hint=_busy_hint(other),
            ) from None
        return self.get(int(pid))

    def transition(
        self,
        promotion: Promotion,
        *,
        expect: Sequence[str],
        status: str,
        event: str,
        actor: str,
        message: str,
        evidence: Sequence[dict[str, Any]] = (),
        lease_owner: str | None = None,
        lease_s: float = 30.0,
    ) -> Promotion:
        """Move the promotion to ``status`` if it is in one of ``expect``, with its event."""
        with self.store.writer.begin() as conn:
            move_status(conn, promotion, expect, status, lease_owner, lease_s)
            add_event(conn, promotion.id, event, actor, message, evidence)
        return self.get(promotion.id)

    def set_candidate(
        self,
        promotion: Promotion,
        *,
        mode: str,
        traffic: int,
        actor: str,
        event: str,
        message: str,
        evidence: Sequence[dict[str, Any]] = (),
        status: str = "deploying",
        expect: Sequence[str] = ("approved", "requested", "deploying"),
    ) -> EnvState:
        """Put the promotion's version in the environment as the candidate (or change its
        traffic share), with the event, in one transaction."""
        with self.store.writer.begin() as conn:
            move_status(conn, promotion, expect, status, promotion.lease_owner, None)
            state = locked_state(self.store, conn, promotion.environment)
            if state.candidate_promotion not in (None, promotion.id):
                raise ConflictError(
                    f"environment '{promotion.environment}' has another candidate "
                    f"(promotion #{state.candidate_promotion})"
                )
            write_state(
                conn,
                state,
                model=promotion.model,
                candidate_version=promotion.version,
                candidate_promotion=promotion.id,
                mode=mode,
                traffic=traffic,
            )
            add_event(conn, promotion.id, event, actor, message, evidence)
        return self.env_state(promotion.environment)

    def go_live(
        self,
        promotion: Promotion,
        *,
        actor: str,
        message: str,
        evidence: Sequence[dict[str, Any]] = (),
        expect: Sequence[str] = ("deploying",),
    ) -> EnvState:
        """Move the alias to the promotion's version: the promotion is live, the one live
        before it superseded, the candidate cleared; one transaction."""
        with self.store.writer.begin() as conn:
            move_status(conn, promotion, expect, "live", None, None, close=True)
            state = locked_state(self.store, conn, promotion.environment)
            self._make_live(
                conn,
                state,
                promotion,
                actor=actor,
                message=message,
                evidence=evidence,
                ended="superseded",
                ended_message=f"{promotion.ref} went live in {promotion.environment} "
                f"(promotion #{promotion.id})",
            )
        return self.env_state(promotion.environment)

    def close(
        self,
        promotion: Promotion,
        *,
        status: str,
        event: str,
        actor: str,
        message: str,
        evidence: Sequence[dict[str, Any]] = (),
        expect: Sequence[str] = tuple(OPEN),
    ) -> Promotion:
        """End an open promotion without it going live (gates failed, rejected, failed,
        rolled back); if it was the environment's candidate, the candidate is cleared in the
        same transaction, so the live version serves all traffic again."""
        with self.store.writer.begin() as conn:
            move_status(conn, promotion, expect, status, None, None, close=True)
            state = locked_state(self.store, conn, promotion.environment)
            if state.candidate_promotion == promotion.id:
                write_state(
                    conn,
                    state,
                    candidate_version=None,
                    candidate_promotion=None,
                    mode=None,
                    traffic=0,
                )
            add_event(conn, promotion.id, event, actor, message, evidence)
        return self.get(promotion.id)

    def rollback(self, environment: str, *, actor: str, message: str) -> Promotion:
        """Make the version live before the current one live again, at once: a new
        promotion (kind rollback) goes live and the current one is marked rolled back."""
        state = self.env_state(environment)
        if state.live_promotion is None:
            raise RefusedError(
                f"environment '{environment}' has no live version to roll back",
                hint="promote a version first: conveyor promote MODEL:VERSION --to " + environment,
            )
        current = self.get(state.live_promotion)
        previous = self._previous_live(environment, current)
        if previous is None:
            raise RefusedError(
                f"environment '{environment}' has had no other live version before "
                f"{current.ref}: there is nothing to roll back to",
                hint="promote the version you want instead: conveyor promote MODEL:VERSION "
                f"--to {environment}",
            )
        opened = self.open_promotion(environment)
        if opened is not None:
            # A rollout in progress ends first: its candidate stops taking traffic.
            self.close(
                opened,
                status="rolled_back",
                event="rolled_back",
                actor=actor,
                message=f"ended by a rollback of {environment}",
            )
        back = self.request(
            environment=environment,
            model=previous.model,
            version=previous.version,
            strategy="replace",
            actor=actor,
            message=message,
            kind="rollback",
        )
        with self.store.writer.begin() as conn:
            move_status(conn, back, ("requested",), "live", None, None, close=True)
            state = locked_state(self.store, conn, environment)
            if state.live_promotion != current.id:
                raise ConflictError(
                    f"environment '{environment}' changed during the rollback",
                    hint="look at conveyor status and try again",
                )
            self._make_live(
                conn,
                state,
                back,
                actor=actor,
                message=message,
                evidence=(),
                ended="rolled_back",
                ended_message=f"rolled back to {previous.ref}",
            )
        return self.get(back.id)

    def _make_live(
        self,
        conn: sa.Connection,
        state: EnvState,
        promotion: Promotion,
        *,
        actor: str,
        message: str,
        evidence: Sequence[dict[str, Any]],
        ended: str,
        ended_message: str,
    ) -> None:
        """In the caller's transaction: the promotion live before ends (``ended``), the alias
        moves to ``promotion``'s version, the candidate is cleared, and the events say so."""
        before = state.live_promotion
        if before is not None and before != promotion.id:
            conn.execute(
                P.update()
                .where(P.c.id == before, P.c.status == "live")
                .values(status=ended, updated_at=now())
            )
            add_event(conn, before, ended, actor, ended_message, [])
        write_state(
            conn,
            state,
            model=promotion.model,
            live_version=promotion.version,
            live_promotion=promotion.id,
            candidate_version=None,
            candidate_promotion=None,
            mode=None,
            traffic=0,
        )
        add_event(conn, promotion.id, "live", actor, message, evidence)

    def renew_lease(self, promotion: Promotion, owner: str, lease_s: float) -> bool:
        with self.store.writer.begin() as conn:
            res = conn.execute(
                P.update()
                .where(P.c.id == promotion.id, P.c.lease_owner == owner, P.c.open_slot.is_not(None))
                .values(lease_expires=now() + timedelta(seconds=lease_s))
            )
        return bool(res.rowcount)

    def abandoned(self, environment: str, alive: Callable[[int], bool]) -> Promotion | None:
        """The environment's open promotion if the controller driving it is gone: its lease
        expired, or its process on this host has exited."""
        promotion = self.open_promotion(environment)
        if promotion is None or promotion.lease_owner is None:
            return None
        parts = promotion.lease_owner.split(":")
        host = ":".join(parts[:-2]) if len(parts) >= 3 else ""
        pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else -1
        dead = host == socket.gethostname() and pid > 0 and not alive(pid)
        expired = promotion.lease_expires is not None and promotion.lease_expires < now()
        return promotion if dead or expired else None

    # -- internals ---------------------------------------------------------------------------

    def _previous_live(self, environment: str, current: Promotion) -> Promotion | None:
        """The promotion that was live before ``current`` (of another version)."""
        query = (
            sa.select(P)
            .where(
                P.c.environment == environment,
                P.c.id < current.id,
                P.c.status.in_(["superseded"]),
            )
            .order_by(P.c.id.desc())
        )
        with self.store.engine.connect() as conn:
            for row in conn.execute(query):
                if (row.model, row.version) != (current.model, current.version):
                    return promotion_from_row(row)
        return None


def _busy_hint(other: Promotion | None) -> str:
    if other is None:
        return "try again"
    if other.status == "awaiting_approval":
        return (
            f"approve it (conveyor approve {other.id}) or reject it "
            f"(conveyor reject {other.id}) first"
        )
    return (
        f"wait for it to finish (conveyor history {other.environment}); if its controller "
        "died, it is reverted once its lease expires"
    )
