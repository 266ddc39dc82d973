"""The rollout of an approved promotion: how its version goes live in the environment.

The controller (see :mod:`conveyor.deploy.controller`) hands an approved promotion to a
:class:`Rollout`, which makes the version the environment's candidate, waits for the serving
process to load and check it, then, by the promotion's strategy, moves the canary through its
traffic steps or lets the shadow answer a copy of the traffic, with each step analysed, and
finally moves the alias. On a failed analysis the promotion is rolled back, on a failed load
or start it fails; either way the candidate is cleared and the live version serves all
traffic. The crash points of the crash-safety tests are here too.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.config_delivery import EnvironmentConfig, seconds
from conveyor.core.checks import CheckResult
from conveyor.deploy import local
from conveyor.deploy.gates import evidence, tag
from conveyor.deploy.identity import Actor, audit_promotion
from conveyor.deploy.state import Delivery, Promotion
from conveyor.errors import ConveyorError, GateFailedError, RefusedError, RunFailedError

if TYPE_CHECKING:
    from conveyor.engine.project import Project

READY_TIMEOUT_S = 120.0
POLL_S = 0.2
CRASH_ENV = "CONVEYOR_TEST_CRASH_AT"  # fault injection for the crash-safety tests


def crash_point(name: str) -> None:
    """Die here, by SIGKILL, when the crash-safety tests ask for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Rollout:
    """Deploys approved promotions to their environments, as ``actor``."""

    def __init__(
        self,
        project: Project,
        delivery: Delivery,
        actor: Actor,
        say: Callable[[str], None],
    ) -> None:
        self.project = project
        self.delivery = delivery
        self.actor = actor
        self.say = say

    def deploy(self, promotion: Promotion, env: EnvironmentConfig) -> Promotion:
        """Take the approved promotion live by its strategy; raises when it fails or is
        rolled back, with the candidate cleared."""
        if env.target.kind != "local":
            state = self.delivery.go_live(
                promotion,
                actor=self.actor.name,
                message=f"{promotion.ref} is the desired version of {env.name}; apply the "
                f"rendered manifests: conveyor deploy {env.name} --target kubernetes "
                "--render DIR",
                expect=("approved",),
            )
            audit_promotion(self.project.metadata, self.actor.name, "deploy", promotion, "live")
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
        audit_promotion(self.project.metadata, self.actor.name, "deploy", promotion, "live")
        self.await_serving(env, promotion.version)
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
        audit_promotion(self.project.metadata, self.actor.name, "deploy", promotion, "rolled_back")
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
        audit_promotion(self.project.metadata, self.actor.name, "deploy", promotion, "failed")
        raise RunFailedError(
            f"deploying {promotion.ref} to {promotion.environment} failed: {why}",
            hint=(hint + "; " if hint else "") + "the live version keeps serving all traffic",
        )

    def await_serving(self, env: EnvironmentConfig, version: int, timeout_s: float = 60) -> None:
        """Wait for the environment's running local server to serve ``version``; only warn
        if it has not within ``timeout_s``, since it converges on its own."""
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

    def _observed(self, env_name: str) -> dict[str, Any]:
        found = local.deployment(self.project.metadata, env_name)
        return found.observed if found else {}


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
