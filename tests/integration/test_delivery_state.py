"""Promotions and environments' desired state, on SQLite and on the real PostgreSQL: one
open promotion per environment, the alias moved with its event in one transaction, and
append-only history. Each writer and reader has its own engine, as separate commands do."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conveyor.deploy.state import Delivery, Event, Promotion
from conveyor.errors import ConflictError, RefusedError
from conveyor.store import db
from conveyor.store.metadata import MetadataStore

EVIDENCE = [{"name": "infra.golden", "kind": "infra", "passed": True, "gate": "infra"}]


class Stores:
    """Opens Delivery objects on one database, each with an engine of its own."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root
        self.engines: list[sa.Engine] = []

    def open(self) -> Delivery:
        engine = db.create_engine(self.url, self.root)
        self.engines.append(engine)
        db.check_schema(engine)
        return Delivery(MetadataStore(engine))

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


@pytest.fixture
def stores(metadata_url: str | None, tmp_path: Path) -> Iterator[Stores]:
    opened = Stores(metadata_url or "sqlite:///meta.db", tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def request(d: Delivery, env: str, version: int, actor: str = "alice") -> Promotion:
    return d.request(
        environment=env,
        model="m",
        version=version,
        strategy="replace",
        actor=actor,
        message=f"{actor} asked to promote m:{version} to {env}",
    )


def make_live(d: Delivery, env: str, version: int, actor: str = "alice") -> Promotion:
    """Request, pass the gates, load as the candidate and go live, as the controller does."""
    p = request(d, env, version, actor)
    p = d.transition(
        p,
        expect=("requested",),
        status="approved",
        event="gates_passed",
        actor=actor,
        message="gates passed (infra)",
        evidence=EVIDENCE,
    )
    d.set_candidate(p, mode="replace", traffic=0, actor=actor, event="deploying", message="loading")
    d.go_live(p, actor=actor, message=f"m:{version} is live in {env}")
    return d.get(p.id)


def dump(d: Delivery, env: str) -> tuple[Any, ...]:
    """The environment's state, its promotions and all their events."""
    promotions = d.promotions(env)
    return (
        d.env_state(env),
        promotions,
        {p.id: d.events(p.id) for p in promotions},
    )


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def race(deliveries: list[Delivery], env: str) -> list[Promotion | Exception]:
    """Every delivery requests a promotion into ``env`` at the same moment."""
    barrier = threading.Barrier(len(deliveries))
    outcomes: list[Promotion | Exception] = [RuntimeError("did not run")] * len(deliveries)

    def one(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = request(deliveries[i], env, i + 1, actor=f"user{i}")
        except ConflictError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(deliveries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_promotions_racing_into_one_environment_one_wins_the_others_name_it(
    stores: Stores,
) -> None:
    deliveries = [stores.open() for _ in range(4)]
    for round_ in range(5):
        env = f"race-{round_}"
        outcomes = race(deliveries, env)
        won = [o for o in outcomes if isinstance(o, Promotion)]
        lost = [o for o in outcomes if not isinstance(o, Promotion)]
        assert len(won) == 1, outcomes
        winner = won[0]
        assert all(isinstance(o, ConflictError) for o in lost), lost
        for exc in lost:
            assert isinstance(exc, ConflictError)
            assert f"environment '{env}' is busy: promotion #{winner.id} of {winner.ref}" in (
                exc.message
            )
            assert exc.hint is not None and f"conveyor history {env}" in exc.hint
        # the losers left nothing behind: one promotion, one event, the winner's
        d = deliveries[0]
        assert [p.id for p in d.promotions(env)] == [winner.id]
        assert d.open_promotion(env) == winner
        assert kinds(d.events(winner.id)) == ["requested"]


def test_another_environment_is_not_blocked_by_an_open_promotion(stores: Stores) -> None:
    d = stores.open()
    first = request(d, "test", 1)
    other = request(d, "staging", 1)
    assert first.is_open and other.is_open
    with pytest.raises(ConflictError, match=f"promotion #{first.id} of m:1 is requested"):
        request(d, "test", 2)
    # once it ends, the environment takes the next promotion
    d.close(first, status="rejected", event="rejected", actor="bob", message="no")
    assert request(d, "test", 2).status == "requested"


def test_readers_never_see_no_live_version_or_two_while_versions_change(
    stores: Stores,
) -> None:
    writer, reader = stores.open(), stores.open()
    env = "prod"
    make_live(writer, env, 1)
    consistent = sa.text(
        """
        SELECT s.live_version, s.live_promotion, p.status, p.version,
               (SELECT count(*) FROM promotions q
                WHERE q.environment = :env AND q.status = 'live') AS live_count
        FROM environment_state s LEFT JOIN promotions p ON p.id = s.live_promotion
        WHERE s.environment = :env
        """
    )
    done, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    progress = threading.Condition()
    reads = [0]

    def settle() -> None:
        """Let the reader read each state at least once, while it keeps reading through the
        next change (a read that ends after this one began started after the change)."""
        with progress:
            target = reads[0] + 2
            progress.wait_for(lambda: reads[0] >= target or stop.is_set(), timeout=60)

    def write() -> None:
        try:
            for i in range(12):
                make_live(writer, env, 2 + i % 3)
                settle()
                if i % 2:
                    writer.rollback(env, actor="bob", message="bob rolled prod back")
                    settle()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen: set[int] = set()
    try:
        while not done.is_set():
            state = reader.env_state(env)
            assert state.live_version is not None, state
            with reader.store.engine.connect() as conn:
                row = conn.execute(consistent, {"env": env}).one()
            # one statement, one snapshot: the alias and the promotions agree
            assert row.live_count == 1, row
            assert row.status == "live" and row.version == row.live_version, row
            seen.add(row.live_version)
            with progress:
                reads[0] += 1
                progress.notify_all()
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert seen == {1, 2, 3, 4}, seen  # the reader saw every version go live
    live = [p for p in reader.promotions(env, limit=500) if p.status == "live"]
    assert len(live) == 1 and reader.env_state(env).live_promotion == live[0].id


def test_go_live_supersedes_the_live_promotion_and_moves_the_alias(stores: Stores) -> None:
    d = stores.open()
    first = make_live(d, "prod", 1, actor="alice")
    before = d.env_state("prod")
    assert (before.live_version, before.live_promotion, before.model) == (1, first.id, "m")
    second = make_live(d, "prod", 2, actor="bob")

    after = d.env_state("prod")
    assert (after.live_version, after.live_promotion) == (2, second.id)
    assert (after.candidate_version, after.candidate_promotion, after.traffic) == (None, None, 0)
    assert after.generation > before.generation
    assert d.get(first.id).status == "superseded"
    assert not d.get(first.id).is_open
    superseded = d.events(first.id)[-1]
    assert superseded.kind == "superseded" and superseded.actor == "bob"
    assert f"promotion #{second.id}" in superseded.message
    assert [p.status for p in d.promotions("prod")] == ["live", "superseded"]


def test_a_refused_state_change_writes_nothing(stores: Stores) -> None:
    d = stores.open()
    make_live(d, "prod", 1)
    waiting = request(d, "prod", 2)
    unchanged = dump(d, "prod")
    # not loaded as the candidate yet: it cannot go live
    with pytest.raises(RefusedError, match=r"is requested; it cannot become live") as info:
        d.go_live(waiting, actor="mallory", message="skip the rollout")
    assert info.value.hint == "see its events: conveyor history prod"
    # nor be approved twice
    d.transition(
        waiting, expect=("requested",), status="approved", event="approved", actor="bob", message=""
    )
    changed = dump(d, "prod")
    with pytest.raises(RefusedError, match="is approved; it cannot become approved"):
        d.transition(
            waiting,
            expect=("requested",),
            status="approved",
            event="approved",
            actor="carol",
            message="",
        )
    assert dump(d, "prod") == changed != unchanged
    assert d.env_state("prod").live_version == 1


def test_events_are_appended_in_order_with_actor_and_evidence(stores: Stores) -> None:
    d = stores.open()
    p = request(d, "prod", 1, actor="alice")
    history = [d.events(p.id)]
    p = d.transition(
        p,
        expect=("requested",),
        status="awaiting_approval",
        event="gates_passed",
        actor="alice",
        message="gates passed (infra)",
        evidence=EVIDENCE,
    )
    history.append(d.events(p.id))
    p = d.transition(
        p,
        expect=("awaiting_approval",),
        status="approved",
        event="approved",
        actor="bob",
        message="approved by bob: looks good",
    )
    history.append(d.events(p.id))
    d.set_candidate(p, mode="canary", traffic=10, actor="bob", event="deploying", message="10%")
    d.set_candidate(p, mode="canary", traffic=50, actor="bob", event="canary_step", message="50%")
    d.go_live(p, actor="bob", message="m:1 is live in prod")
    history.append(d.events(p.id))

    events = history[-1]
    assert kinds(events) == [
        "requested",
        "gates_passed",
        "approved",
        "deploying",
        "canary_step",
        "live",
    ]
    assert [e.actor for e in events] == ["alice", "alice", "bob", "bob", "bob", "bob"]
    assert events[1].evidence == EVIDENCE
    assert events[2].message == "approved by bob: looks good"
    # append-only: every earlier reading is a prefix of every later one, unchanged
    for earlier, later in itertools.pairwise(history):
        assert later[: len(earlier)] == earlier
        assert len(later) > len(earlier)
    assert d.get(p.id).status == "live"


def test_rollback_returns_the_previous_version_and_ends_a_rollout_in_progress(
    stores: Stores,
) -> None:
    d = stores.open()
    one = make_live(d, "prod", 1)
    two = make_live(d, "prod", 2)
    canary = request(d, "prod", 3)
    canary = d.transition(
        canary, expect=("requested",), status="approved", event="approved", actor="bob", message=""
    )
    d.set_candidate(canary, mode="canary", traffic=10, actor="bob", event="deploying", message="")
    assert d.env_state("prod").candidate_version == 3

    back = d.rollback("prod", actor="carol", message="carol rolled prod back")

    state = d.env_state("prod")
    assert (state.live_version, state.live_promotion) == (1, back.id)
    assert (state.candidate_version, state.traffic, state.mode) == (None, 0, None)
    assert (back.kind, back.status, back.version) == ("rollback", "live", 1)
    assert kinds(d.events(back.id)) == ["requested", "live"]
    assert d.get(two.id).status == "rolled_back"
    assert d.events(two.id)[-1].message == "rolled back to m:1"
    assert d.get(canary.id).status == "rolled_back"
    assert d.open_promotion("prod") is None
    assert d.get(one.id).status == "superseded"  # its history is kept as it was


def test_rollback_with_nothing_before_is_refused_and_writes_nothing(stores: Stores) -> None:
    d = stores.open()
    with pytest.raises(RefusedError, match="'prod' has no live version to roll back"):
        d.rollback("prod", actor="bob", message="")
    make_live(d, "prod", 1)
    unchanged = dump(d, "prod")
    with pytest.raises(RefusedError, match="nothing to roll back to") as info:
        d.rollback("prod", actor="bob", message="")
    assert info.value.hint is not None and "conveyor promote MODEL:VERSION --to prod" in (
        info.value.hint
    )
    assert dump(d, "prod") == unchanged


def test_a_failed_candidate_leaves_the_live_version_serving_everything(stores: Stores) -> None:
    d = stores.open()
    make_live(d, "prod", 1)
    p = request(d, "prod", 2)
    p = d.transition(
        p, expect=("requested",), status="approved", event="approved", actor="bob", message=""
    )
    d.set_candidate(p, mode="canary", traffic=10, actor="bob", event="deploying", message="")
    d.close(p, status="failed", event="failed", actor="bob", message="deploy failed: boom")
    state = d.env_state("prod")
    assert (state.live_version, state.candidate_version, state.traffic) == (1, None, 0)
    assert d.get(p.id).status == "failed" and d.open_promotion("prod") is None
    assert d.events(p.id)[-1].message == "deploy failed: boom"


@pytest.mark.postgres
def test_the_controller_drives_promotions_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    from conveyor.deploy.controller import Controller
    from conveyor.deploy.identity import current_actor, read_audit
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package
    from conveyor.registry.versions import register_model
    from helpers import open_and_run, write_files
    from integration.delivery_support import ACCESS, THREE_ENVS
    from integration.package_support import CONFIG, PIPELINE

    config = CONFIG + f"stores:\n  metadata: {postgres_url}\n" + ACCESS + THREE_ENVS
    root = write_files(tmp_path / "p", {"conveyor.yaml": config, "pipelines/main.py": PIPELINE})
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    with open_project(root, environ={}) as project:
        assert project.metadata.dialect == "postgresql"
        for _ in range(2):
            mv = register_model(project.metadata, name="pk", run_ref=outcome.run_id, step="train")
            build_package(project, mv)

        def as_(user: str) -> Controller:
            actor = current_actor(project.metadata, project.config.access, {"CONVEYOR_USER": user})
            return Controller(project, actor)

        assert as_("alice").promote("pk:1", "test").status == "live"
        assert as_("alice").promote("pk:2", "test").status == "live"
        staged = as_("carol").promote("pk:2", "staging")
        assert staged.status == "awaiting_approval"
        with pytest.raises(RefusedError, match="alice \\(developer\\) may not approve"):
            as_("alice").approve(staged.id)
        # promote: approval lets the requester approve; manual does not
        assert as_("carol").approve(staged.id).status == "live"
        prod = as_("bob").promote("pk:2", "production")
        with pytest.raises(RefusedError, match="needs an approver who is not the requester"):
            as_("bob").approve(prod.id)
        assert as_("carol").approve(prod.id).status == "live"
        back = as_("bob").rollback("test")

        d = Delivery(project.metadata)
        assert [d.env_state(e).live_version for e in ("test", "staging", "production")] == [
            1,
            2,
            2,
        ]
        assert (back.kind, back.requested_by) == ("rollback", "bob")
        assert [p.status for p in d.promotions("test")] == ["live", "rolled_back", "superseded"]
        assert [(a["actor"], a["action"], a["outcome"]) for a in read_audit(project.metadata)] == [
            ("alice", "promote", "requested"),
            ("alice", "deploy", "live"),
            ("alice", "promote", "requested"),
            ("alice", "deploy", "live"),
            ("carol", "promote", "requested"),
            ("carol", "approve", "approved"),
            ("carol", "deploy", "live"),
            ("bob", "promote", "requested"),
            ("carol", "approve", "approved"),
            ("carol", "deploy", "live"),
            ("bob", "rollback", "live"),
        ]
