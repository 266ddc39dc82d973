"""Who is acting, what they may do, and the audit log of what they did.

The actor is the user of the token in ``$CONVEYOR_TOKEN`` (tokens are stored as digests),
or locally ``$CONVEYOR_USER``, else the login name. Roles come from ``access.users`` in
``conveyor.yaml``; anyone not listed has ``access.default_role``. Roles are ordered: an
admin may do what an approver may, an approver what a developer may, and so on.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.config_delivery import ROLES, AccessConfig, EnvironmentConfig
from conveyor.errors import RefusedError, UsageError
from conveyor.store import tables as t
from conveyor.store.metadata import MetadataStore, now

if TYPE_CHECKING:
    from conveyor.deploy.records import Promotion

USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}")
TOKEN_PREFIX = "cvy_"  # noqa: S105 - a prefix that marks Conveyor tokens, not a secret
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    roles: frozenset[str]
    via: str  # token | CONVEYOR_USER | login

    def has(self, role: str) -> bool:
        """Whether one of the actor's roles is ``role`` or above it."""
        return any(RANK[r] >= RANK[role] for r in self.roles if r in RANK)

    def describe(self) -> str:
        return f"{self.name} ({', '.join(sorted(self.roles, key=lambda r: RANK.get(r, -1)))})"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def roles_of(user: str, access: AccessConfig) -> frozenset[str]:
    return frozenset(access.users.get(user, [access.default_role]))


def current_actor(store: MetadataStore, access: AccessConfig, environ: Mapping[str, str]) -> Actor:
    token = environ.get("CONVEYOR_TOKEN")
    if token:
        with store.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.tokens.c.user, t.tokens.c.revoked_at).where(
                    t.tokens.c.digest == token_digest(token)
                )
            ).first()
        if row is None or row.revoked_at is not None:
            raise RefusedError(
                "the token in CONVEYOR_TOKEN is not valid"
                + (" (revoked)" if row is not None else ""),
                hint="ask an admin for a token: conveyor token create --user NAME",
            )
        return Actor(row.user, roles_of(row.user, access), "token")
    user = environ.get("CONVEYOR_USER") or _login()
    if not USER_RE.fullmatch(user):
        raise UsageError(
            f"invalid user name '{user[:60]}'",
            hint="set CONVEYOR_USER to letters, digits and . _ @ + -",
        )
    return Actor(
        user, roles_of(user, access), "CONVEYOR_USER" if "CONVEYOR_USER" in environ else "login"
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def require(actor: Actor, role: str, action: str) -> None:
    if not actor.has(role):
        raise RefusedError(
            f"{actor.describe()} may not {action}: it needs the {role} role",
            hint="ask an admin to add you under access.users in conveyor.yaml",
        )


def may_approve(actor: Actor, env: EnvironmentConfig) -> bool:
    """Whether the actor is one of the environment's approvers (a user or a role)."""
    for who in env.approvers:
        if who.startswith("role:"):
            if actor.has(who[5:]):
                return True
        elif who == actor.name:
            return True
    return False


def audit(
    conn: sa.Connection,
    actor: str,
    action: str,
    subject: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    """One line of the audit log, in the caller's transaction."""
    conn.execute(
        t.audit_log.insert().values(
            at=now(),
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            detail=detail or {},
        )
    )


def record_audit(
    store: MetadataStore,
    actor: str,
    action: str,
    subject: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    with store.writer.begin() as conn:
        audit(conn, actor, action, subject, outcome, detail)


def audit_promotion(
    store: MetadataStore, actor: str, action: str, promotion: Promotion, outcome: str
) -> None:
    """One line of the audit log for an action on a promotion, in its own transaction."""
    record_audit(
        store,
        actor,
        action,
        f"#{promotion.id} {promotion.ref} -> {promotion.environment}",
        outcome,
    )


def create_token(store: MetadataStore, actor: Actor, user: str) -> str:
    """A new token for ``user`` (admins for anyone, others for themselves); only its digest
    is stored, so the token is shown once."""
    if not USER_RE.fullmatch(user):
        raise UsageError(f"invalid user name '{user[:60]}'")
    if user != actor.name:
        require(actor, "admin", f"create a token for {user}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.writer.begin() as conn:
        conn.execute(
            t.tokens.insert().values(
                digest=token_digest(token), user=user, created_by=actor.name, created_at=now()
            )
        )
        audit(conn, actor.name, "token.create", user)
    return token


def revoke_tokens(store: MetadataStore, actor: Actor, user: str) -> int:
    """Revoke every token of ``user`` (admins for anyone, others their own); returns how
    many were revoked."""
    if user != actor.name:
        require(actor, "admin", f"revoke the tokens of {user}")
    with store.writer.begin() as conn:
        res = conn.execute(
            t.tokens.update()
            .where(t.tokens.c.user == user, t.tokens.c.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        audit(conn, actor.name, "token.revoke", user, detail={"revoked": res.rowcount})
    return int(res.rowcount)


def read_audit(store: MetadataStore, limit: int = 100) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
        ).all()
    return [
        {
            "at": row.at.isoformat(),
            "actor": row.actor,
            "action": row.action,
            "subject": row.subject,
            "outcome": row.outcome,
            "detail": row.detail,
        }
        for row in reversed(rows)
    ]
