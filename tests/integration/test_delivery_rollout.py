"""Rollouts in real local environments, driven by the real ``conveyor`` command while real
traffic flows: a swap and a rollback lose no request; a candidate that fails its golden
check never serves; a canary with shifted predictions rolls itself back; a good canary goes
live through its steps. Each request records the version that answered it, so every claim
about who served what is checked request by request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.rollout_support import (
    Traffic,
    cli,
    deployable,
    desired,
    environments_stopped,
    promote,
    serving,
    status,
    url,
    wait_until,
)

STEPS = [10, 50, 100]
CANARY = {
    "strategy": "canary",
    "steps": STEPS,
    "min_requests": 40,
    # pk:1 and pk:2 score alike, but the PSI of ~100 sampled scores against the stable
    # version's is noise of up to ~0.2; the shuffled-label model's is about 6.
    "max_shift": 1.0,
    # latency ratios of a few dozen requests on a shared test machine are noise
    "max_p99_ratio": None,
    "step_timeout": "60s",
}


def _deployed(factory: pytest.TempPathFactory, env: str, rollout: dict[str, Any]) -> Iterator[Path]:
    root = deployable(factory, env, {env: {"rollout": rollout}})
    with environments_stopped(root):
        code, promotion = promote(root, "pk:1", env)
        assert (code, promotion["status"]) == (0, "live"), promotion["stderr"]
        yield root


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose environment ``stage`` (replace) serves pk:1; stopped afterwards."""
    yield from _deployed(tmp_path_factory, "stage", {"strategy": "replace"})


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose environment ``prod`` (canary 10/50/100) serves pk:1."""
    yield from _deployed(tmp_path_factory, "prod", CANARY)


def ensure_live(root: Path, env: str, version: int) -> str:
    """Make ``version`` live in ``env`` (under traffic, which a canary needs); its URL."""
    if desired(root, env).live_version != version:
        with Traffic(url(root, env)):
            code, promotion = promote(root, f"pk:{version}", env)
        assert (code, promotion["status"]) == (0, "live"), promotion["stderr"]
    wait_until(lambda: serving(root, env, version), f"{env} serves pk:{version} alone")
    return url(root, env)


def event(promotion: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [e for e in promotion["events"] if e["kind"] == kind]
    assert len(found) == 1, [e["kind"] for e in promotion["events"]]
    return found[0]


def test_swap_and_rollback_under_traffic_lose_no_request(stage: Path) -> None:
    with Traffic(ensure_live(stage, "stage", 1)) as traffic:
        traffic.wait_for(200)
        promoting = traffic.mark()
        code, promotion = promote(stage, "pk:2", "stage")
        assert (code, promotion["status"]) == (0, "live"), promotion["stderr"]
        swapped = traffic.mark()  # promote returns once the server reports serving pk:2
        traffic.wait_for(200, swapped)
        rolling_back = traffic.mark()
        back = cli(stage, "rollback", "stage", "--json")
        assert back.returncode == 0, back.stderr
        rolled_back = traffic.mark()
        traffic.wait_for(200, rolled_back)
    total = traffic.summary()
    print(
        f"\nzero-downtime swap and rollback: {total['requests']} requests sent, "
        f"{total['errors']} errors, answered by version {total['by_version']}"
    )
    assert total["errors"] == 0, total["first_errors"]
    assert total["requests"] >= 600
    assert set(traffic.summary(0, promoting)["by_version"]) == {"1"}
    assert set(traffic.summary(swapped, rolling_back)["by_version"]) == {"2"}
    assert set(traffic.summary(rolled_back)["by_version"]) == {"1"}
    found = status(stage, "stage")
    assert (found["live"], found["candidate"]) == ("pk:1", None)
    assert json.loads(back.stdout)["kind"] == "rollback"


def test_candidate_failing_its_golden_check_never_serves(stage: Path) -> None:
    with Traffic(ensure_live(stage, "stage", 1)) as traffic:
        traffic.wait_for(50)
        start = traffic.mark()
        code, promotion = promote(stage, "pk:4", "stage")
        traffic.wait_for(50, traffic.mark())
    assert code == 1
    assert (
        "deploying pk:4 to stage failed: it failed to load: golden predictions"
        in (promotion["stderr"])
    )
    assert promotion["status"] == "failed"
    assert "200 of 200 golden rows disagree" in event(promotion, "failed")["message"]
    found = status(stage, "stage")
    assert (found["live"], found["candidate"], found["traffic"]) == ("pk:1", None, "1: 100%")
    during = traffic.summary(start)
    assert during["errors"] == 0, during["first_errors"]
    assert set(during["by_version"]) == {"1"}
    assert serving(stage, "stage", 1)


def test_canary_with_shifted_predictions_rolls_itself_back(prod: Path) -> None:
    with Traffic(ensure_live(prod, "prod", 1)) as traffic:
        traffic.wait_for(100)
        start = traffic.mark()
        code, promotion = promote(prod, "pk:3", "prod")
        wait_until(lambda: serving(prod, "prod", 1), "prod serves pk:1 alone again")
        settled = traffic.mark()
        traffic.wait_for(200, settled)
    assert code == 1
    assert (
        "pk:3 was rolled back in prod: canary failed: prediction shift (PSI)"
        in (promotion["stderr"])
    )
    assert promotion["status"] == "rolled_back"
    rolled = event(promotion, "rolled_back")
    failed = [c for c in rolled["evidence"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["canary.shift"]
    assert failed[0]["metrics"]["psi"] > CANARY["max_shift"]
    steps_taken = sum(e["kind"] == "canary_step" for e in promotion["events"])
    share = STEPS[steps_taken]
    seen = next(c for c in rolled["evidence"] if c["name"] == "canary.requests")
    during = traffic.summary(start)
    print(
        f"\ncanary rollback: at {share}% of traffic, after the canary answered "
        f"{seen['metrics']['requests']:.0f} requests; {during['requests']} requests during "
        f"the promotion, {during['errors']} errors, by version {during['by_version']}; "
        f"failed check: {failed[0]['message']}"
    )
    assert share < 100
    found = status(prod, "prod")
    assert (found["live"], found["candidate"], found["traffic"]) == ("pk:1", None, "1: 100%")
    assert during["errors"] == 0, during["first_errors"]
    assert "3" in during["by_version"]  # the canary did take its share before the verdict
    assert set(traffic.summary(settled)["by_version"]) == {"1"}


def test_good_canary_goes_live_through_its_steps(prod: Path) -> None:
    with Traffic(ensure_live(prod, "prod", 1)) as traffic:
        traffic.wait_for(100)
        start = traffic.mark()
        code, promotion = promote(prod, "pk:2", "prod")
        live = traffic.mark()
        traffic.wait_for(200, live)
    assert (code, promotion["status"]) == (0, "live"), promotion["stderr"]
    kinds = [e["kind"] for e in promotion["events"]]
    assert kinds == ["requested", "gates_passed", "deploying", "canary_step", "live"]
    assert event(promotion, "canary_step")["message"] == "canary at 50% of traffic"
    passed = {c["name"]: c["passed"] for c in event(promotion, "live")["evidence"]}
    assert passed["canary.requests"] and passed["canary.error_rate"] and passed["canary.shift"]
    during = traffic.summary(start)
    assert during["errors"] == 0, during["first_errors"]
    assert set(during["by_version"]) == {"1", "2"}
    assert set(traffic.summary(live)["by_version"]) == {"2"}
    found = status(prod, "prod")
    assert (found["live"], found["candidate"], found["traffic"]) == ("pk:2", None, "2: 100%")
    # the figures of the canary analysis the live version passed, as conveyor status shows them
    analysed = next(c for c in event(promotion, "live")["evidence"] if c["name"] == "canary.shift")
    assert found["gates"].startswith("canary: ")
    assert f"PSI {analysed['metrics']['psi']:.3f}" in found["gates"]


SHADOW = {"strategy": "shadow", "min_requests": 40, "min_agreement": 0.9, "step_timeout": "60s"}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose environment ``mirror`` (live shadow) serves pk:1."""
    yield from _deployed(tmp_path_factory, "mirror", SHADOW)


def shadow_log(root: Path, env: str) -> Any:
    from conveyor.deploy.replay import read_logged_requests

    return read_logged_requests(
        str(root / ".conveyor" / "artifacts"), f"{env}.shadow", max_rows=100_000
    )


def test_live_shadow_answers_copies_and_clients_see_only_the_stable_version(
    mirror: Path,
) -> None:
    """A shadow that agrees goes live; one that disagrees (trained on shuffled labels) is
    rolled back. Clients are answered by the stable version throughout, and the shadow's
    answers are logged apart, under env=mirror.shadow."""
    with Traffic(ensure_live(mirror, "mirror", 1)) as traffic:
        traffic.wait_for(50)
        start = traffic.mark()
        code, bad = promote(mirror, "pk:3", "mirror")
        during_bad = traffic.summary(start, traffic.mark())
        good_start = traffic.mark()
        code_good, good = promote(mirror, "pk:2", "mirror")
        wait_until(lambda: serving(mirror, "mirror", 2), "mirror serves pk:2 alone")
    assert code == 1, bad["stderr"]
    assert bad["status"] == "rolled_back"
    rolled = event(bad, "rolled_back")
    assert "shadow agreed with the live version" in rolled["message"]
    failed = [c for c in rolled["evidence"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["shadow.agreement"]
    assert during_bad["errors"] == 0 and set(during_bad["by_version"]) == {"1"}

    assert (code_good, good["status"]) == (0, "live"), good["stderr"]
    assert event(good, "live")["evidence"][0]["name"] == "shadow.agreement"
    before_swap = traffic.summary(good_start)
    assert before_swap["errors"] == 0
    assert set(before_swap["by_version"]) <= {"1", "2"}

    logged = shadow_log(mirror, "mirror")
    versions = set(logged.column("model_version").to_pylist())
    assert versions == {"2", "3"}  # both shadows' answers, none of the stable version's
    assert set(logged.column("protocol").to_pylist()) == {"shadow"}


def test_offline_replay_of_an_environments_logged_requests(stage: Path) -> None:
    from conveyor.deploy.replay import read_logged_requests

    artifacts = str(stage / ".conveyor" / "artifacts")
    with Traffic(ensure_live(stage, "stage", 1)) as traffic:
        traffic.wait_for(100)
    wait_until(
        lambda: read_logged_requests(artifacts, "stage", max_rows=1000).num_rows >= 100,
        "stage's prediction log holds what it answered",
    )
    same = cli(stage, "replay", "pk:2", "--from", "stage", "--json")
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert report["agreement"] == 1.0 and report["requests"] >= 100
    assert report["candidate"] == "pk:2"

    shuffled = cli(stage, "replay", "pk:3", "--from", "stage", "--min-agreement", "0.95")
    assert shuffled.returncode == 1
    assert "Shadow replay of pk:3 against 'stage': failed" in shuffled.stdout
    assert "the replay of stage's requests against pk:3 failed" in shuffled.stderr
    assert "Traceback" not in shuffled.stderr
