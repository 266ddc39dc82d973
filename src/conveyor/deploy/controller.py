"""Driving promotions: gates, approvals, rollouts (replace, canary, shadow) and rollback.

The controller is whichever command is driving a promotion (``conveyor promote``, ``conveyor
approve``); it holds the promotion's lease while it works and renews it from a thread. Every
step is a transactional state change (see :mod:`conveyor.deploy.state`), and the serving
process does the rest by reconciling. If the controller dies, the next command that touches
the environment finds the lease abandoned and reverts the promotion: the candidate is
cleared, the live version serves everything, and the promotion is recorded as failed. The
alias only ever moves in the same transaction as the ``live`` event, so a promotion is
either complete or reverted, never half-done. Once approved, the version is taken live by a
:class:`~conveyor.deploy.rollout.Rollout`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from conveyor.config_delivery import EnvironmentConfig
from conveyor.core.checks import Severity
from conveyor.deploy.environments import environment, previous
from conveyor.deploy.gates import evidence, run_gates, summarize
from conveyor.deploy.identity import Actor, audit_promotion, may_approve, require
from conveyor.deploy.rollout import CRASH_ENV, Rollout, crash_point
from conveyor.deploy.state import Delivery, Promotion
from conveyor.engine.lease import owner_id, pid_alive
from conveyor.errors import GateFailedError, IntegrityError, NotFoundError, RefusedError, UsageError

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

__all__ = ["CRASH_ENV", "Controller", "crash_point"]

LEASE_S = 20.0
RENEW_S = 4.0


class _Lease:
    """Renews a promotion's lease until the block ends."""

    def __init__(self, delivery: Delivery, promotion: Promotion, owner: str) -> None:
        self.delivery, self.promotion, self.owner = delivery, promotion, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                self.delivery.renew_lease(self.promotion, self.owner, LEASE_S)
            except Exception:  # noqa: BLE001, S112 - a missed renewal is retried next tick
                continue


class Controller:
    def __init__(
        self,
        project: Project,
        actor: Actor,
        *,
        say: Callable[[str], None] = lambda _: None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.project = project
        self.actor = actor
        self.say = say
        self.delivery = Delivery(project.metadata)
        self.owner = owner_id()
        self.rollout = Rollout(project, self.delivery, actor, say)

    # -- commands ----------------------------------------------------------------------------

    def promote(self, ref: str, env_name: str) -> Promotion:
        from conveyor.registry.versions import resolve_version

        env = environment(self.project.config, env_name)
        require(self.actor, "developer", f"promote to {env.name}")
        mv = resolve_version(self.project.metadata, ref)
        self._check_package(mv)
        before = previous(self.project.config, env.name)
        if before is not None and not self.delivery.was_live(before.name, mv.name, mv.version):
            raise RefusedError(
                f"{mv.ref} has not been live in {before.name}, the environment before {env.name}",
                hint=f"promote it there first: conveyor promote {mv.ref} --to {before.name}",
            )
        self.recover(env.name)
        state = self.delivery.env_state(env.name)
        if state.live_version == mv.version and state.model == mv.name:
            raise RefusedError(
                f"{mv.ref} is already live in {env.name}: there is nothing to promote",
                hint="see each environment's live version: conveyor status",
            )
        promotion = self.delivery.request(
            environment=env.name,
            model=mv.name,
            version=mv.version,
            strategy=self._strategy(env),
            actor=self.actor.name,
            message=f"{self.actor.name} asked to promote {mv.ref} to {env.name}",
            lease_owner=self.owner,
            lease_s=LEASE_S,
        )
        self._audit("promote", promotion, "requested")
        self.say(f"promotion #{promotion.id}: {mv.ref} to {env.name} requested")
        with _Lease(self.delivery, promotion, self.owner):
            results = run_gates(self.project, mv, env, before.name if before else None, self.say)
            failed = [r for r in results if not r.passed and r.severity == Severity.ERROR]
            if failed:
                self.delivery.close(
                    promotion,
                    status="gates_failed",
                    event="gates_failed",
                    actor=self.actor.name,
                    message=f"{len(failed)} blocking check(s) failed",
                    evidence=evidence(results),
                    expect=("requested",),
                )
                self._audit("promote", promotion, "gates_failed")
                raise GateFailedError(
                    f"promotion #{promotion.id} of {mv.ref} to {env.name} stopped: "
                    + "; ".join(f"{r.name}: {r.message}" for r in failed[:5]),
                    hint="the version stays where it was; fix the cause and promote again",
                )
            gated = ", ".join(g for g in env.gates if g != "canary") or "none"
            if env.promote == "auto":
                promotion = self.delivery.transition(
                    promotion,
                    expect=("requested",),
                    status="approved",
                    event="gates_passed",
                    actor=self.actor.name,
                    message=f"gates passed ({summarize(results) or gated}); policy auto",
                    evidence=evidence(results),
                    lease_owner=self.owner,
                    lease_s=LEASE_S,
                )
                crash_point("gates_passed")
                return self.rollout.deploy(promotion, env)
            promotion = self.delivery.transition(
                promotion,
                expect=("requested",),
                status="awaiting_approval",
                event="gates_passed",
                actor=self.actor.name,
                message=f"gates passed ({summarize(results) or gated}); waiting for approval by "
                + ", ".join(env.approvers),
                evidence=evidence(results),
                lease_owner=None,
                lease_s=0,
            )
        self.say(
            f"promotion #{promotion.id} awaits approval by {', '.join(env.approvers)}"
            + (" (not the requester)" if env.promote == "manual" else "")
            + f": conveyor approve {promotion.id}"
        )
        return promotion

    def approve(self, promotion_id: int, comment: str = "") -> Promotion:
        promotion = self.delivery.get(promotion_id)
        env = environment(self.project.config, promotion.environment)
        if promotion.status != "awaiting_approval":
            raise RefusedError(
                f"promotion #{promotion.id} is {promotion.status.replace('_', ' ')}, not "
                "awaiting approval",
                hint=f"see its events: conveyor history {promotion.environment}",
            )
        self._check_approver(promotion, env, "approve")
        promotion = self.delivery.transition(
            promotion,
            expect=("awaiting_approval",),
            status="approved",
            event="approved",
            actor=self.actor.name,
            message=f"approved by {self.actor.name}" + (f": {comment}" if comment else ""),
            lease_owner=self.owner,
            lease_s=LEASE_S,
        )
        self._audit("approve", promotion, "approved")
        self.say(f"promotion #{promotion.id} approved by {self.actor.name}")
        with _Lease(self.delivery, promotion, self.owner):
            return self.rollout.deploy(promotion, env)

    def reject(self, promotion_id: int, reason: str = "") -> Promotion:
        promotion = self.delivery.get(promotion_id)
        env = environment(self.project.config, promotion.environment)
        self._check_approver(promotion, env, "reject", four_eyes=False)
        if promotion.status != "awaiting_approval":
            raise RefusedError(
                f"promotion #{promotion.id} is {promotion.status.replace('_', ' ')}; only a "
                "promotion awaiting approval can be rejected",
                hint=f"to take back a live version: conveyor rollback {promotion.environment}",
            )
        promotion = self.delivery.close(
            promotion,
            status="rejected",
            event="rejected",
            actor=self.actor.name,
            message=f"rejected by {self.actor.name}" + (f": {reason}" if reason else ""),
            expect=("awaiting_approval",),
        )
        self._audit("reject", promotion, "rejected")
        return promotion

    def rollback(self, env_name: str) -> Promotion:
        env = environment(self.project.config, env_name)
        require(self.actor, "developer" if env.promote == "auto" else "approver", "roll back")
        self.recover(env.name)
        back = self.delivery.rollback(
            env.name,
            actor=self.actor.name,
            message=f"{self.actor.name} rolled {env.name} back",
        )
        self._audit("rollback", back, "live")
        self.rollout.await_serving(env, back.version)
        return back

    def recover(self, env_name: str) -> Promotion | None:
        """Revert the environment's open promotion if its controller is gone."""
        lost = self.delivery.abandoned(env_name, pid_alive)
        if lost is None:
            return None
        try:
            reverted = self.delivery.close(
                lost,
                status="failed",
                event="failed",
                actor=self.actor.name,
                message=f"reverted: the controller driving it ({lost.lease_owner}) stopped "
                f"while it was {lost.status.replace('_', ' ')}; the live version serves all "
                "traffic",
            )
        except RefusedError:
            return None  # the serving process (or another command) reverted it first
        self._audit("recover", reverted, "failed")
        self.say(
            f"promotion #{lost.id} of {lost.ref} was abandoned by its controller and is reverted"
        )
        return reverted

    # -- helpers -----------------------------------------------------------------------------

    def _strategy(self, env: EnvironmentConfig) -> str:
        if "canary" in env.gates and env.rollout.strategy == "replace":
            return "canary"
        return env.rollout.strategy

    def _check_package(self, mv: ModelVersion) -> None:
        if mv.package_digest is None:
            raise UsageError(
                f"{mv.ref} has no release package",
                hint=f"build it first: conveyor model package {mv.ref}",
            )
        # Verifies the stored bytes against the digest: a corrupt package is refused here,
        # before any state changes.
        try:
            self.project.artifacts.blobs.local_path(mv.package_digest)
        except (IntegrityError, NotFoundError) as exc:
            raise RefusedError(
                f"the release package of {mv.ref} cannot be used: {exc.message}",
                hint=f"build it again: conveyor model package {mv.ref}",
            ) from None

    def _check_approver(
        self, promotion: Promotion, env: EnvironmentConfig, verb: str, *, four_eyes: bool = True
    ) -> None:
        if not may_approve(self.actor, env):
            raise RefusedError(
                f"{self.actor.describe()} may not {verb} promotions to {env.name}",
                hint=f"approvers of {env.name}: {', '.join(env.approvers)}",
            )
        if four_eyes and env.promote == "manual" and self.actor.name == promotion.requested_by:
            raise RefusedError(
                f"{self.actor.name} requested promotion #{promotion.id} and may not also "
                f"{verb} it: {env.name} needs an approver who is not the requester",
                hint="ask another approver to run: conveyor approve " + str(promotion.id),
            )

    def _audit(self, action: str, promotion: Promotion, outcome: str) -> None:
        audit_promotion(self.project.metadata, self.actor.name, action, promotion, outcome)
