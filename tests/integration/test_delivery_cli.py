"""``conveyor promote | approve | reject | rollback | history | status | deploy | token |
whoami | audit`` through the real entry point: the delivery flow end to end, who may do what,
and every refusal saying why and what to do while changing nothing."""

from __future__ import annotations

import hashlib
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import free_port
from integration.delivery_support import (
    ACCESS,
    THREE_ENVS,
    assert_user_error,
    cli,
    cli_json,
    connect,
    ok,
    project_copy,
    snapshot,
)


def promotion_id(proc: Any) -> int:
    found = re.search(r"promotion #(\d+)", proc.stdout)
    assert found, proc.stdout
    return int(found.group(1))


def by_env(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["environment"]: row for row in rows}


def audit_lines(root: Path) -> list[tuple[str, str, str, str]]:
    return [
        (a["actor"], a["action"], a["outcome"], a["subject"])
        for a in cli_json(root, "audit", user=None)
    ]


# -- the delivery flow -------------------------------------------------------------------------


def test_promote_approve_history_rollback_and_status(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = project_copy(
        tmp_path_factory, tmp_path_factory.mktemp("flow") / "p", ACCESS + THREE_ENVS
    )

    first = cli_json(root, "promote", "pk:1", "--to", "test")
    assert (first["status"], first["requested_by"]) == ("live", "alice")

    asked = ok(cli(root, "promote", "pk:1", "--to", "staging"))
    staged = promotion_id(asked)
    assert asked.stdout.strip() == f"promotion #{staged}: pk:1 -> staging: awaiting approval"
    assert f"conveyor approve {staged}" in asked.stderr
    assert by_env(cli_json(root, "status"))["staging"]["live"] is None  # not before approval

    approved = cli_json(root, "approve", str(staged), "--comment", "looks good", user="bob")
    assert approved["status"] == "live"
    assert [(e["kind"], e["actor"]) for e in approved["events"]] == [
        ("requested", "alice"),
        ("gates_passed", "alice"),
        ("approved", "bob"),
        ("live", "bob"),
    ]
    assert approved["events"][2]["message"] == "approved by bob: looks good"

    text = ok(cli(root, "history", "staging")).stdout
    assert f"#{staged} pk:1 (promote, replace) live - requested by alice at " in text
    assert re.search(r"approved\s+bob\s+approved by bob: looks good", text), text
    history = cli_json(root, "history", "staging")
    assert [(p["id"], p["status"]) for p in history] == [(staged, "live")]
    assert history[0]["events"] == approved["events"]

    # a second version in test, then rolled back: the previous one is live at once
    assert cli_json(root, "promote", "pk:2", "--to", "test")["status"] == "live"
    back = cli_json(root, "rollback", "test")
    assert (back["kind"], back["version"], back["status"]) == ("rollback", 1, "live")
    tested = [(p["version"], p["kind"], p["status"]) for p in cli_json(root, "history", "test")]
    assert tested == [
        (1, "rollback", "live"),
        (2, "promote", "rolled_back"),
        (1, "promote", "superseded"),
    ]

    # production needs an approver who is not the requester
    asked = ok(cli(root, "promote", "pk:1", "--to", "production", user="bob"))
    prod = promotion_id(asked)
    assert "(not the requester)" in asked.stderr
    assert_user_error(
        cli(root, "approve", str(prod), user="bob"),
        1,
        "bob requested promotion",
        "needs an approver who is not the requester",
        f"conveyor approve {prod}",
    )
    assert cli_json(root, "approve", str(prod), user="carol")["status"] == "live"

    status = by_env(cli_json(root, "status"))
    assert {name: row["live"] for name, row in status.items()} == {
        "test": "pk:1",
        "staging": "pk:1",
        "production": "pk:1",
    }
    assert status["test"]["traffic"] == "1: 100%"
    assert status["test"]["last_promotion"] == f"#{back['id']} pk:1 live"
    assert status["production"]["last_promotion"] == f"#{prod} pk:1 live"
    assert {row["health"] for row in status.values()} == {"kubernetes (rendered)"}
    table = ok(cli(root, "status")).stdout
    assert re.search(r"test\s+auto\s+pk:1\s+kubernetes \(rendered\)", table), table

    assert audit_lines(root) == [
        ("alice", "promote", "requested", "#1 pk:1 -> test"),
        ("alice", "deploy", "live", "#1 pk:1 -> test"),
        ("alice", "promote", "requested", f"#{staged} pk:1 -> staging"),
        ("bob", "approve", "approved", f"#{staged} pk:1 -> staging"),
        ("bob", "deploy", "live", f"#{staged} pk:1 -> staging"),
        ("alice", "promote", "requested", "#3 pk:2 -> test"),
        ("alice", "deploy", "live", "#3 pk:2 -> test"),
        ("alice", "rollback", "live", f"#{back['id']} pk:1 -> test"),
        ("bob", "promote", "requested", f"#{prod} pk:1 -> production"),
        ("carol", "approve", "approved", f"#{prod} pk:1 -> production"),
        ("carol", "deploy", "live", f"#{prod} pk:1 -> production"),
    ]


def test_reject_ends_the_promotion_and_the_environment_keeps_its_version(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = project_copy(
        tmp_path_factory, tmp_path_factory.mktemp("reject") / "p", ACCESS + THREE_ENVS
    )
    ok(cli(root, "promote", "pk:1", "--to", "test"))
    ok(cli(root, "promote", "pk:2", "--to", "test"))
    asked = promotion_id(ok(cli(root, "promote", "pk:2", "--to", "staging")))
    rejected = cli_json(root, "reject", str(asked), "--reason", "not this week", user="carol")
    assert rejected["status"] == "rejected"
    assert rejected["events"][-1]["message"] == "rejected by carol: not this week"
    assert by_env(cli_json(root, "status"))["staging"]["live"] is None
    assert audit_lines(root)[-1] == ("carol", "reject", "rejected", f"#{asked} pk:2 -> staging")
    # the environment is free again
    again = promotion_id(ok(cli(root, "promote", "pk:2", "--to", "staging")))
    assert again != asked


def test_a_failing_gate_stops_the_promotion_with_its_evidence(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    envs = """
    environments:
      - name: test
        gates: [model]
        target: {kind: kubernetes, image: x}
      - name: staging
        gates: [data]
        target: {kind: kubernetes, image: x}
    """
    root = project_copy(tmp_path_factory, tmp_path_factory.mktemp("gates") / "p", envs)
    passed = cli_json(root, "promote", "pk:1", "--to", "test")
    assert passed["status"] == "live"
    gated = passed["events"][1]
    assert gated["kind"] == "gates_passed" and gated["evidence"]
    assert {(c["gate"], c["passed"]) for c in gated["evidence"]} == {("model", True)}

    proc = cli(root, "promote", "pk:1", "--to", "staging")
    assert_user_error(proc, 1, "data:recorded", "recorded no data checks", "promote again")
    assert "add a validate_data step" in proc.stderr
    [failed] = cli_json(root, "history", "staging")
    assert failed["status"] == "gates_failed"
    assert [e["kind"] for e in failed["events"]] == ["requested", "gates_failed"]
    [check] = failed["events"][-1]["evidence"]
    assert (check["name"], check["gate"], check["passed"]) == ("data:recorded", "data", False)
    assert by_env(cli_json(root, "status"))["staging"]["live"] is None
    assert audit_lines(root)[-1] == ("alice", "promote", "gates_failed", "#2 pk:1 -> staging")


# -- refusals: each says why and what to do, and changes nothing -------------------------------


@dataclass(frozen=True)
class Scene:
    root: Path
    before: dict[str, list[tuple[Any, ...]]]
    ids: dict[str, int]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """pk:1 live in test, then pk:2; pk:1 live in staging, where pk:2 awaits approval;
    pk:1 awaits approval in production, requested by carol."""
    from conveyor.deploy.controller import Controller
    from conveyor.deploy.identity import current_actor
    from conveyor.engine.project import open_project

    root = project_copy(
        tmp_path_factory, tmp_path_factory.mktemp("refusals") / "p", ACCESS + THREE_ENVS
    )
    with open_project(root, environ={}) as project:

        def as_(user: str) -> Controller:
            actor = current_actor(project.metadata, project.config.access, {"CONVEYOR_USER": user})
            return Controller(project, actor)

        as_("alice").promote("pk:1", "test")
        staged = as_("alice").promote("pk:1", "staging")
        as_("bob").approve(staged.id)
        as_("alice").promote("pk:2", "test")
        waiting = as_("alice").promote("pk:2", "staging")
        prod = as_("carol").promote("pk:1", "production")
    return Scene(
        root=root,
        before=snapshot(root),
        ids={"staged": staged.id, "waiting": waiting.id, "prod": prod.id},
    )


REFUSALS: list[Any] = [
    pytest.param(
        "alice",
        ["promote", "pk:3", "--to", "staging"],
        1,
        ["pk:3 has not been live in test", "conveyor promote pk:3 --to test"],
        id="not-live-in-the-environment-before",
    ),
    pytest.param(
        "alice",
        ["promote", "pk:1", "--to", "stagign"],
        2,
        ["unknown environment 'stagign'", "did you mean 'staging'?"],
        id="unknown-environment",
    ),
    pytest.param(
        "alice",
        ["history", "prod"],
        2,
        ["unknown environment 'prod'", "environments: test, staging, production"],
        id="unknown-environment-history",
    ),
    pytest.param(
        "alice",
        ["promote", "pk:9", "--to", "test"],
        2,
        ["model pk has no version 9", "conveyor model list pk"],
        id="unknown-version",
    ),
    pytest.param(
        "alice",
        ["promote", "pk:x", "--to", "test"],
        2,
        ["'pk:x' is not NAME:VERSION"],
        id="bad-version-reference",
    ),
    pytest.param(
        "alice",
        ["promote", "pk:4", "--to", "test"],
        2,
        ["pk:4 has no release package", "conveyor model package pk:4"],
        id="no-package",
    ),
    pytest.param(
        "alice",
        ["promote", "pk:2", "--to", "test"],
        1,
        ["pk:2 is already live in test", "conveyor status"],
        id="already-live",
    ),
    pytest.param(
        "bob",
        ["promote", "pk:2", "--to", "staging"],
        1,
        ["environment 'staging' is busy: promotion #{waiting} of pk:2 is awaiting approval"],
        id="environment-busy",
    ),
    pytest.param(
        "carol",
        ["approve", "{prod}"],
        1,
        ["carol requested promotion #{prod} and may not also approve it"],
        id="approve-own-manual-promotion",
    ),
    pytest.param(
        "alice",
        ["approve", "{waiting}"],
        1,
        ["alice (developer) may not approve promotions to staging", "role:approver"],
        id="approve-by-non-approver",
    ),
    pytest.param(
        "carol",
        ["approve", "{staged}"],
        1,
        ["promotion #{staged} is live, not awaiting approval", "conveyor history staging"],
        id="approve-twice",
    ),
    pytest.param(
        "carol",
        ["reject", "{staged}"],
        1,
        ["only a promotion awaiting approval can be rejected", "conveyor rollback staging"],
        id="reject-after-approval",
    ),
    pytest.param(
        "vic",
        ["reject", "{waiting}"],
        1,
        ["vic (viewer) may not reject promotions to staging"],
        id="reject-by-viewer",
    ),
    pytest.param(
        "bob",
        ["rollback", "staging"],
        1,
        ["no other live version before pk:1: there is nothing to roll back to"],
        id="rollback-without-previous",
    ),
    pytest.param(
        "bob",
        ["rollback", "production"],
        1,
        ["'production' has no live version to roll back", "--to production"],
        id="rollback-nothing-live",
    ),
    pytest.param(
        "vic",
        ["promote", "pk:3", "--to", "test"],
        1,
        ["vic (viewer) may not promote to test: it needs the developer role", "access.users"],
        id="viewer-promotes",
    ),
    pytest.param(
        "bob",
        ["approve", "999"],
        2,
        ["no promotion #999", "conveyor history ENV"],
        id="unknown-promotion",
    ),
    pytest.param(
        "bad name!",
        ["promote", "pk:3", "--to", "test"],
        2,
        ["invalid user name 'bad name!'", "CONVEYOR_USER"],
        id="invalid-user-name",
    ),
]


@pytest.mark.parametrize(("user", "args", "code", "says"), REFUSALS)
def test_refused_with_why_and_what_to_do_and_nothing_changes(
    scene: Scene, user: str, args: list[str], code: int, says: list[str]
) -> None:
    proc = cli(scene.root, *(a.format(**scene.ids) for a in args), user=user)
    assert_user_error(proc, code, *(s.format(**scene.ids) for s in says))
    assert snapshot(scene.root) == scene.before


def test_usage_mistakes_exit_2_without_a_traceback(scene: Scene) -> None:
    for args, says in (
        (["promote", "pk:1"], "Missing option '--to'"),
        (["approve", "abc"], "'abc' is not a valid integer"),
        (["rollback"], "Missing argument 'ENV'"),
    ):
        proc = cli(scene.root, *args)
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr and "--help" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert snapshot(scene.root) == scene.before


def test_a_corrupt_package_is_refused_before_any_change(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = project_copy(tmp_path_factory, tmp_path_factory.mktemp("corrupt") / "p", THREE_ENVS)
    with connect(root) as conn:
        digest = conn.execute(
            sa.text("SELECT package_digest FROM model_versions WHERE version = 1")
        ).scalar_one()
    blob = root / ".conveyor" / "artifacts" / "objects" / digest[:2] / digest[2:]
    assert blob.is_file()
    blob.chmod(0o644)
    blob.write_bytes(b"not the package" + blob.read_bytes()[15:])
    before = snapshot(root)

    proc = cli(root, "promote", "pk:1", "--to", "test")
    assert_user_error(
        proc, 1, "the release package of pk:1 cannot be used", "conveyor model package pk:1"
    )
    assert snapshot(root) == before
    # the hint works: the package is rebuilt, byte for byte, and the promotion goes through
    ok(cli(root, "model", "package", "pk:1"))
    assert cli_json(root, "promote", "pk:1", "--to", "test")["status"] == "live"


def test_a_port_in_use_is_refused_and_nothing_is_deployed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from conveyor.deploy import local
    from conveyor.engine.project import open_project

    port = free_port()
    envs = f"""
    environments:
      - name: edge
        target: {{kind: local, port: {port}}}
    """
    root = project_copy(tmp_path_factory, tmp_path_factory.mktemp("port") / "p", envs)
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        before = snapshot(root)
        assert_user_error(
            cli(root, "deploy", "edge"),
            2,
            f"environment 'edge': cannot listen on 127.0.0.1:{port}",
            f"stop what is using port {port}",
            "target.port in conveyor.yaml",
        )
        assert snapshot(root) == before
        assert snapshot(root)["deployments"] == []

        # a promotion into it ends as failed at once: nothing is left open
        proc = cli(root, "promote", "pk:1", "--to", "edge")
        assert_user_error(proc, 1, "deploying pk:1 to edge failed", f"127.0.0.1:{port}")
        [promotion] = cli_json(root, "history", "edge")
        assert promotion["status"] == "failed"
        assert "Address already in use" in promotion["events"][-1]["message"]
        edge = by_env(cli_json(root, "status"))["edge"]
        assert (edge["live"], edge["health"], edge["deployment"]) == (None, "stopped", None)
    finally:
        taken.close()
        with open_project(root, environ={}) as project:
            local.stop(project, "edge")


# -- identity ----------------------------------------------------------------------------------


def test_identity_roles_default_role_and_tokens(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = project_copy(
        tmp_path_factory,
        tmp_path_factory.mktemp("identity") / "p",
        ACCESS + "  default_role: viewer\n" + THREE_ENVS,
    )
    assert cli_json(root, "whoami", user="bob") == {
        "user": "bob",
        "roles": ["approver"],
        "via": "CONVEYOR_USER",
    }
    assert cli_json(root, "whoami", user="zed")["roles"] == ["viewer"]  # default_role
    assert_user_error(
        cli(root, "promote", "pk:1", "--to", "test", user="zed"),
        1,
        "zed (viewer) may not promote to test",
    )

    token = ok(cli(root, "token", "create", user="bob")).stdout.strip()
    assert token.startswith("cvy_") and len(token) > 40
    # only the digest is stored
    stored = b"".join(p.read_bytes() for p in (root / ".conveyor").glob("conveyor.db*"))
    assert token.encode() not in stored
    assert snapshot(root)["tokens"][0][0] == hashlib.sha256(token.encode()).hexdigest()

    # the token's user is the actor, whatever CONVEYOR_USER says
    assert cli_json(root, "whoami", user="alice", CONVEYOR_TOKEN=token) == {
        "user": "bob",
        "roles": ["approver"],
        "via": "token",
    }
    promoted = cli_json(root, "promote", "pk:1", "--to", "test", user="zed", CONVEYOR_TOKEN=token)
    assert (promoted["status"], promoted["requested_by"]) == ("live", "bob")

    # tokens for someone else: admins only
    assert_user_error(
        cli(root, "token", "create", "--user", "carol", user="alice"),
        1,
        "may not create a token for carol",
        "admin",
    )
    carols = ok(cli(root, "token", "create", "--user", "carol", user="root")).stdout.strip()
    assert cli_json(root, "whoami", CONVEYOR_TOKEN=carols)["user"] == "carol"

    before = snapshot(root)
    assert_user_error(
        cli(root, "whoami", CONVEYOR_TOKEN="cvy_" + "x" * 43), 1, "CONVEYOR_TOKEN is not valid"
    )
    assert snapshot(root)["audit_log"] == before["audit_log"]
    assert_user_error(
        cli(root, "token", "revoke", "--user", "bob", user="carol"),
        1,
        "may not revoke the tokens of bob",
        "admin",
    )
    said = ok(cli(root, "token", "revoke", user=None, CONVEYOR_TOKEN=token)).stdout
    assert "revoked 1 token of bob" in said
    revoked = snapshot(root)
    proc = cli(root, "promote", "pk:2", "--to", "test", CONVEYOR_TOKEN=token)
    assert_user_error(proc, 1, "CONVEYOR_TOKEN is not valid (revoked)", "conveyor token create")
    assert snapshot(root) == revoked

    assert audit_lines(root) == [
        ("bob", "token.create", "ok", "bob"),
        ("bob", "promote", "requested", "#1 pk:1 -> test"),
        ("bob", "deploy", "live", "#1 pk:1 -> test"),
        ("root", "token.create", "ok", "carol"),
        ("bob", "token.revoke", "ok", "bob"),
    ]


def test_deploy_renders_the_live_versions_manifests_for_kubernetes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``conveyor deploy ENV --target kubernetes --render DIR`` through the real command:
    the live version's Deployment and Service, valid against the Kubernetes schemas, naming
    the version and its package digest; nothing live yet is a usage error."""
    import kubernetes_validate
    import yaml

    root = project_copy(
        tmp_path_factory, tmp_path_factory.mktemp("render") / "p", ACCESS + THREE_ENVS
    )
    out = root / "manifests"
    before = snapshot(root)
    assert_user_error(
        cli(root, "deploy", "test", "--target", "kubernetes", "--render", str(out)),
        2,
        "has no live version to render",
        "conveyor promote MODEL:VERSION --to test",
    )
    assert snapshot(root) == before and not out.exists()
    assert_user_error(
        cli(root, "deploy", "test", "--target", "kubernetes"), 2, "needs --render DIR"
    )

    ok(cli(root, "promote", "pk:1", "--to", "test"))
    rendered = cli_json(root, "deploy", "test", "--target", "kubernetes", "--render", str(out))
    files = sorted(Path(f).name for f in rendered["files"])
    assert files == sorted(p.name for p in out.iterdir()) and len(files) == 2
    docs = {d["kind"]: d for d in (yaml.safe_load(p.read_text()) for p in out.iterdir())}
    assert set(docs) == {"Deployment", "Service"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, "1.30", strict=True)
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "pk:1" in " ".join(container.get("command", []) + container.get("args", []))
    with connect(root) as conn:
        digest = conn.execute(
            sa.text("SELECT package_digest FROM model_versions WHERE name='pk' AND version=1")
        ).scalar_one()
    assert digest in yaml.safe_dump(docs["Deployment"])
    assert ("alice", "deploy.render", "ok", "test") in audit_lines(root)


def test_a_local_environment_with_several_workers_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    envs = f"""
    environments:
      - name: edge
        target: {{kind: local, port: {free_port()}, workers: 4}}
    """
    root = project_copy(tmp_path_factory, tmp_path_factory.mktemp("workers") / "p", envs)
    before = snapshot(root)
    assert_user_error(
        cli(root, "deploy", "edge"),
        2,
        "asks for 4 workers; a local environment runs one serving process",
        "kubernetes target",
    )
    assert snapshot(root) == before
