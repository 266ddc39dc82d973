"""Crash safety of promotions in a real local environment under traffic: the controller
(``conveyor promote``) is killed by SIGKILL at each of its crash points, or the serving
process is killed in the middle of a canary step. Whatever dies, the environment converges:
the promotion is either complete (live, the alias on the new version, the server serving it)
or reverted (failed, the alias where it was, no candidate, the server serving the old version
alone), never left open with nothing driving it; and the next promotion goes through."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.deploy.controller import CRASH_ENV
from integration.faults_support import background
from integration.rollout_support import (
    Traffic,
    cli,
    deployable,
    deployment,
    desired,
    environments_stopped,
    history,
    observed,
    promote,
    serving,
    status,
    url,
    wait_until,
)

ENV = "prod"
CANARY = {
    "strategy": "canary",
    "steps": [50, 100],
    "min_requests": 30,
    "max_shift": 1.0,  # pk:1 and pk:2 score alike; see test_delivery_rollout.py
    "max_p99_ratio": None,
    "step_timeout": "60s",
}
# What recovery makes of a promotion whose controller died at each crash point: before the
# alias moved it is reverted; after, it is complete.
OUTCOME = {
    "gates_passed": "failed",
    "candidate_set": "failed",
    "canary_step": "failed",
    "alias_moved": "live",
}

LEFT = {
    "gates_passed": "approved",
    "candidate_set": "deploying",
    "canary_step": "deploying",
    "alias_moved": "live",
}


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose environment ``prod`` (canary 50/100) serves pk:1; stopped afterwards."""
    root = deployable(tmp_path_factory, "crash", {ENV: {"rollout": CANARY}})
    with environments_stopped(root):
        code, promotion = promote(root, "pk:1", ENV)
        assert (code, promotion["status"]) == (0, "live"), promotion["stderr"]
        yield root


def live_version(root: Path) -> int:
    state = desired(root, ENV)
    assert state.live_version is not None and state.candidate_version is None, state
    return int(state.live_version)


def left_open(root: Path) -> Any:
    """The environment's open promotion, read without recovering anything."""
    from conveyor.deploy.state import Delivery
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        return Delivery(project.metadata).open_promotion(ENV)


def last_promotion(root: Path) -> dict[str, Any]:
    return history(root, ENV)[0]


def assert_converged(root: Path, traffic: Traffic, version: int) -> None:
    """The environment serves ``version`` alone: state, server report and real answers."""
    found = status(root, ENV)
    assert (found["live"], found["candidate"], found["mode"]) == (f"pk:{version}", None, None)
    assert found["health"] == "healthy"
    wait_until(lambda: serving(root, ENV, version), f"{ENV} serves pk:{version} alone")
    settled = traffic.mark()
    traffic.wait_for(60, settled)
    answered = traffic.summary(settled)
    assert answered["errors"] == 0, answered["first_errors"]
    assert set(answered["by_version"]) == {str(version)}


@pytest.mark.parametrize("point", list(OUTCOME))
def test_controller_killed_at_a_crash_point_leaves_a_consistent_environment(
    prod: Path, point: str
) -> None:
    before = live_version(prod)
    target = 2 if before == 1 else 1
    with Traffic(url(prod, ENV)) as traffic:
        traffic.wait_for(50)
        start = traffic.mark()
        crashed = cli(prod, "promote", f"pk:{target}", "--to", ENV, env={CRASH_ENV: point})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        opened, state = left_open(prod), desired(prod, ENV)
        if OUTCOME[point] == "failed" and opened is not None:
            # left open by the dead controller, its candidate (if set) still in the state
            assert opened.version == target
            assert state.live_version == before
            expect_candidate = target if point != "gates_passed" else None
            assert state.candidate_version == expect_candidate
            # read in-process, recovering nothing: the promotion as the dead controller left it
            assert last_promotion(prod)["status"] == LEFT[point]
        elif OUTCOME[point] == "failed":
            # the serving process saw the candidate's controller gone and reverted it already
            assert point != "gates_passed", "no candidate was set: only a command recovers it"
            assert state.live_version == before and state.candidate_version is None
            assert last_promotion(prod)["status"] == "failed"
        else:
            assert opened is None and state.live_version == target
            assert last_promotion(prod)["status"] == LEFT[point]
        assert_converged(prod, traffic, target if OUTCOME[point] == "live" else before)
        during = traffic.summary(start)
    promotion = last_promotion(prod)
    assert promotion["status"] == OUTCOME[point]
    if OUTCOME[point] == "failed":
        reverted = promotion["events"][-1]
        assert reverted["kind"] == "failed"
        assert "the controller driving it" in reverted["message"]
    assert during["errors"] == 0, during["first_errors"]
    assert left_open(prod) is None


def test_server_killed_mid_canary_is_restarted_and_the_promotion_ends(prod: Path) -> None:
    before = live_version(prod)
    target = 2 if before == 1 else 1
    # a slow trickle of traffic: the canary step lasts seconds, long enough to strike in
    with Traffic(url(prod, ENV), workers=1, pause_s=0.05) as traffic:
        with background(prod, "promote", f"pk:{target}", "--to", ENV) as proc:

            def canary_serving() -> bool:
                seen = observed(prod, ENV)
                candidate = seen.get("candidate") or {}
                ready = candidate.get("version") == target and candidate.get("status") == "ready"
                return ready and seen.get("mode") == "canary"

            wait_until(canary_serving, "the canary takes its share of traffic")
            opened, state = left_open(prod), desired(prod, ENV)
            assert opened is not None and state.traffic == 50  # still in the canary step
            killed = deployment(prod, ENV).server_pid
            os.kill(killed, signal.SIGKILL)
            done = proc.wait()
        assert done.returncode in (0, 1), done.stderr
        promotion = last_promotion(prod)
        assert promotion["status"] in ("live", "rolled_back")
        again = deployment(prod, ENV)
        assert again.server_pid is not None and again.server_pid != killed
        assert_converged(prod, traffic, target if promotion["status"] == "live" else before)
    print(
        f"\nserver killed mid-canary: promotion {promotion['status']} "
        f"({promotion['events'][-1]['message']}); restarted server pid {again.server_pid}"
    )


def test_promotion_after_a_crash_is_not_blocked(prod: Path) -> None:
    before = live_version(prod)
    target = 2 if before == 1 else 1
    with Traffic(url(prod, ENV)) as traffic:
        traffic.wait_for(50)
        crashed = cli(
            prod, "promote", f"pk:{target}", "--to", ENV, env={CRASH_ENV: "candidate_set"}
        )
        assert crashed.returncode == -signal.SIGKILL
        opened = left_open(prod)  # open with a dead controller, unless the server reverted it
        assert opened is None or opened.version == target
        code, promotion = promote(prod, f"pk:{target}", ENV)  # recovers, then promotes
        assert (code, promotion["status"]) == (0, "live"), promotion["stderr"]
        assert_converged(prod, traffic, target)
    previous = history(prod, ENV, limit=2)[1]
    assert (previous["version"], previous["status"]) == (target, "failed")


def test_a_dead_controllers_canary_is_reverted_by_the_serving_process(prod: Path) -> None:
    """No command runs after the crash: the serving process itself sees the candidate's
    controller gone and takes its traffic share away."""
    before = live_version(prod)
    target = 2 if before == 1 else 1
    with Traffic(url(prod, ENV)) as traffic:
        traffic.wait_for(50)
        crashed = cli(prod, "promote", f"pk:{target}", "--to", ENV, env={CRASH_ENV: "canary_step"})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        wait_until(
            lambda: left_open(prod) is None and desired(prod, ENV).candidate_version is None,
            "the serving process reverts the abandoned canary",
        )
        state = desired(prod, ENV)
        assert state.live_version == before
        promotion = last_promotion(prod)
        assert promotion["status"] == "failed"
        assert promotion["events"][-1]["actor"] == "conveyor-server"
        assert_converged(prod, traffic, before)
