"""Driving promotions: gates, approvals, rollouts (replace, canary, shadow) and rollback.

The controller is whichever command is driving a promotion (``conveyor promote``, ``conveyor
approve``); it holds the promotion's lease while it works and renews it from a thread. Every
step is a transactional state change (see :mod:`conveyor.deploy.state`), and the serving
process does the rest by reconciling. If the controller dies, the next command that touches
the environment finds the lease abandoned and reverts the promotion: the candidate is
cleared, the live version serves everything, and the promotion is recorded as failed. The
alias only ever moves in the same transaction as the ``live`` event, so a promotion is
either complete or reverted, never half-done.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from conveyor.config_delivery import EnvironmentConfig, seconds
from conveyor.core.checks import CheckResult, Severity
from conveyor.deploy import local
from conveyor.deploy.environments import environment, previous
from conveyor.deploy.gates import evidence, run_gates, summarize, tag
from conveyor.deploy.identity import Actor, audit, may_approve, require
from conveyor.deploy.state import Delivery, Promotion
from conveyor.engine.lease import owner_id, pid_alive
from conveyor.errors import (
    ConveyorError,
    GateFailedError,
    IntegrityError,
    NotFoundError,
    RefusedError,
    RunFailedError,
    UsageError,
)

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion

LEASE_S = 20.0
RENEW_S = 4.0
READY_TIMEOUT_S = 120.0
POLL_S = 0.2
CRASH_ENV = "CONVEYOR_TEST_CRASH_AT"  # fault injection for the crash-safety tests


def crash_point(name: str) -> None:
    """Die here, by SIGKILL, when the crash-safety tests ask for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


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
                return self._deploy(promotion, env)
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
            return self._deploy(promotion, env)

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
        self._await_serving(env, back.version)
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

    # -- rollout -----------------------------------------------------------------------------

    def _deploy(self, promotion: Promotion, env: EnvironmentConfig) -> Promotion:
        if env.target.kind != "local":
            state = self.delivery.go_live(
                promotion,
                actor=self.actor.name,
                message=f"{promotion.ref} is the desired version of {env.name}; apply the "
                f"rendered manifests: conveyor deploy {env.name} --target kubernetes "
                "--render DIR",
                expect=("approved",),
            )
            self._audit("deploy", promotion, "live")
            return self.delivery.get(promotion.id)
        running = local.deployment(self.project.metadata, env.name)
        if running is None or not running.running:
            try:
                local.start(self.project, env, say=self.say)
            except ConveyorError as exc:  # e.g. its port is taken: end the promotion now
                self._fail(promotion, f"its server did not start: {exc.message}", exc.hint)
        strategy = promotion.strategy
        state = self.delivery.env_state(env.name)
        if state.live_version is None and strategy != "replace":
            self.say(f"{env.name} serves nothing yet: {promotion.ref} replaces nothing")
            strategy = "replace"
        first = env.rollout.steps[0] if strategy == "canary" else 0
        self.delivery.set_candidate(
            promotion,
            mode=strategy,
            traffic=first,
            actor=self.actor.name,
            event="deploying",
            message=f"{promotion.ref} loading in {env.name} ({strategy})",
            expect=("approved",),
        )
        crash_point("candidate_set")
        self._await_candidate(promotion, env)
        if strategy == "canary":
            verdict = self._canary(promotion, env)
        elif strategy == "shadow":
            verdict = self._live_shadow(promotion, env)
        else:
            verdict = []
        self.delivery.go_live(
            promotion,
            actor=self.actor.name,
            message=f"{promotion.ref} is live in {env.name}",
            evidence=evidence(verdict),
        )
        crash_point("alias_moved")
        self._audit("deploy", promotion, "live")
        self._await_serving(env, promotion.version)
        self.say(f"{promotion.ref} is live in {env.name}")
        return self.delivery.get(promotion.id)

    def _await_candidate(self, promotion: Promotion, env: EnvironmentConfig) -> None:
        """Wait for the server to load and check the candidate; on failure the candidate is
        cleared (the live version keeps all traffic) and the failure recorded."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        generation = self.delivery.env_state(env.name).generation
        while True:
            self._still_open(promotion)
            observed = self._observed(env.name)
            candidate = observed.get("candidate") or {}
            if observed.get("generation", -1) >= generation:
                if candidate.get("version") == promotion.version and (
                    candidate.get("status") == "ready"
                ):
                    self.say(f"{promotion.ref} loaded, warmed up and checked in {env.name}")
                    return
                if candidate.get("status") == "failed":
                    self._fail(promotion, f"it failed to load: {candidate.get('error')}")
            if time.monotonic() > deadline:
                self._fail(
                    promotion,
                    f"the server of {env.name} did not report it ready within "
                    f"{READY_TIMEOUT_S:.0f} s (log: {local.log_path(self.project, env.name)})",
                )
            time.sleep(POLL_S)

    def _canary(self, promotion: Promotion, env: EnvironmentConfig) -> list[CheckResult]:
        from conveyor.deploy.analysis import TrafficSample, analyse_canary

        rollout = env.rollout
        steps = rollout.steps
        results: list[CheckResult] = []
        for index, share in enumerate(steps[:-1]):
            if index > 0:
                self.delivery.set_candidate(
                    promotion,
                    mode="canary",
                    traffic=share,
                    actor=self.actor.name,
                    event="canary_step",
                    message=f"canary at {share}% of traffic",
                    evidence=evidence(results),
                )
            self.say(f"canary {promotion.ref}: {share}% of traffic")
            generation = self.delivery.env_state(env.name).generation
            deadline = time.monotonic() + seconds(rollout.step_timeout)
            while True:
                crash_point("canary_step")
                self._still_open(promotion)
                observed = self._observed(env.name)
                if observed.get("generation", -1) == generation:
                    stats = observed.get("stats") or {}
                    verdict = analyse_canary(
                        TrafficSample.from_json(stats.get("live") or _EMPTY),
                        TrafficSample.from_json(stats.get("candidate") or _EMPTY),
                        rollout,
                    )
                    if verdict.decision == "fail":
                        self._roll_back(promotion, verdict.results, verdict.summary)
                    if verdict.decision == "pass":
                        results = [tag(r, "canary") for r in verdict.results]
                        self.say(f"canary {promotion.ref} at {share}%: {verdict.summary}")
                        break
                if time.monotonic() > deadline:
                    self._roll_back(
                        promotion,
                        results,
                        f"the canary at {share}% did not get {rollout.min_requests} requests "
                        f"within {rollout.step_timeout}",
                    )
                time.sleep(POLL_S * 2)
        return results

    def _live_shadow(self, promotion: Promotion, env: EnvironmentConfig) -> list[CheckResult]:
        rollout = env.rollout
        generation = self.delivery.env_state(env.name).generation
        deadline = time.monotonic() + seconds(rollout.step_timeout)
        self.say(f"shadow {promotion.ref}: answering a copy of {env.name}'s traffic")
        while time.monotonic() < deadline:
            self._still_open(promotion)
            observed = self._observed(env.name)
            stats = (observed.get("stats") or {}).get("candidate") or {}
            if observed.get("generation", -1) == generation and (
                stats.get("requests", 0) >= rollout.min_requests
            ):
                results = [tag(r, "live shadow") for r in _shadow_results(stats, rollout)]
                failed = [r for r in results if not r.passed]
                if failed:
                    self._roll_back(promotion, results, "; ".join(r.message for r in failed))
                return results
            time.sleep(POLL_S * 2)
        self._roll_back(
            promotion,
            [],
            f"the shadow did not see {rollout.min_requests} requests within {rollout.step_timeout}",
        )
        raise AssertionError("unreachable")

    def _still_open(self, promotion: Promotion) -> None:
        now = self.delivery.get(promotion.id)
        if not now.is_open:
            raise RefusedError(
                f"promotion #{promotion.id} of {promotion.ref} was ended while its rollout "
                f"ran: it is {now.status.replace('_', ' ')}",
                hint=f"see its events: conveyor history {promotion.environment}",
            )

    def _roll_back(self, promotion: Promotion, results: list[CheckResult], why: str) -> None:
        self.delivery.close(
            promotion,
            status="rolled_back",
            event="rolled_back",
            actor=self.actor.name,
            message=f"rolled back by analysis: {why}",
            evidence=evidence(results),
        )
        self._audit("deploy", promotion, "rolled_back")
        raise GateFailedError(
            f"{promotion.ref} was rolled back in {promotion.environment}: {why}",
            hint="the live version serves all traffic again; see conveyor history "
            + promotion.environment,
        )

    def _fail(self, promotion: Promotion, why: str, hint: str | None = None) -> None:
        self.delivery.close(
            promotion,
            status="failed",
            event="failed",
            actor=self.actor.name,
            message=f"deploy failed: {why}",
        )
        self._audit("deploy", promotion, "failed")
        raise RunFailedError(
            f"deploying {promotion.ref} to {promotion.environment} failed: {why}",
            hint=(hint + "; " if hint else "") + "the live version keeps serving all traffic",
        )

    def _await_serving(self, env: EnvironmentConfig, version: int, timeout_s: float = 60) -> None:
        if env.target.kind != "local":
            return
        running = local.deployment(self.project.metadata, env.name)
        if running is None or not running.running:
            return
        generation = self.delivery.env_state(env.name).generation
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            observed = self._observed(env.name)
            live = observed.get("live") or {}
            if observed.get("generation", -1) >= generation and live.get("version") == version:
                return
            time.sleep(POLL_S)
        self.say(
            f"warning: the server of {env.name} has not reported serving version {version} "
            "yet; it converges on its own (see conveyor status)"
        )

    # -- helpers -----------------------------------------------------------------------------

    def _observed(self, env_name: str) -> dict[str, Any]:
        found = local.deployment(self.project.metadata, env_name)
        return found.observed if found else {}

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
        with self.project.metadata.writer.begin() as conn:
            audit(
                conn,
                self.actor.name,
                action,
                f"#{promotion.id} {promotion.ref} -> {promotion.environment}",
                outcome,
            )


_EMPTY: dict[str, Any] = {"requests": 0, "errors": 0}


def _shadow_results(stats: dict[str, Any], rollout: Any) -> list[CheckResult]:
    requests = int(stats.get("requests", 0))
    errors = int(stats.get("errors", 0))
    agreement = stats.get("shadow_agreement")
    rate = errors / requests if requests else 0.0
    agreed = agreement if agreement is not None else 0.0
    return [
        CheckResult(
            name="shadow.agreement",
            kind="serving",
            passed=agreed >= rollout.min_agreement,
            metrics={"agreement": agreed, "min_agreement": rollout.min_agreement},
            message=f"the shadow agreed with the live version on {agreed:.1%} of rows "
            f"(at least {rollout.min_agreement:.1%} required)",
        ),
        CheckResult(
            name="shadow.error_rate",
            kind="serving",
            passed=rate <= rollout.max_error_rate,
            metrics={"error_rate": rate, "max_error_rate": rollout.max_error_rate},
            message=f"shadow error rate {rate:.1%} ({errors} of {requests}; at most "
            f"{rollout.max_error_rate:.1%})",
        ),
    ]
