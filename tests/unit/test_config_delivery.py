"""``environments:`` and ``access:`` in conveyor.yaml: each mistake is a ConfigError that
names the file and the key, and says what is expected."""

from __future__ import annotations

import pytest

from conveyor.config import parse_config
from conveyor.config_delivery import seconds
from conveyor.errors import EXIT_USAGE, ConfigError

NAME = "name: demo\n"
PATH = "proj/conveyor.yaml"


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(NAME + text, PATH, {})
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.message.startswith(f"{PATH}: ")
    return info.value


def test_the_scaffold_pipeline_parses_with_its_defaults() -> None:
    cfg = parse_config(
        NAME
        + """
access:
  users: {alice: [developer], bob: [approver, admin]}
environments:
  - name: test
    gates: [infra]
    target: {port: 25001}
  - name: staging
    promote: approval
    approvers: [role:approver, carol]
    gates: [shadow]
    target: {port: 25002}
  - name: production
    promote: manual
    approvers: [role:approver]
    rollout: {strategy: canary, steps: [5, 25, 100]}
    target: {kind: kubernetes, image: registry.example.com/serve:1}
""",
        PATH,
        {},
    )
    test, staging, production = cfg.environments
    assert (test.promote, test.target.kind, test.target.port) == ("auto", "local", 25001)
    assert staging.shadow.source is None  # the environment before it
    assert production.rollout.steps == [5, 25, 100]
    assert cfg.access.default_role == "developer"
    assert cfg.access.users["bob"] == ["approver", "admin"]


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        pytest.param(
            "environments:\n  - {name: test}\n  - {name: test}\n",
            "environments",
            "environment 'test' is listed twice",
            id="duplicate-names",
        ),
        pytest.param(
            "environments:\n"
            "  - {name: test, target: {port: 25001}}\n"
            "  - {name: staging, target: {port: 25001}}\n",
            "environments",
            "environments 'test' and 'staging' both use port 25001",
            id="duplicate-ports",
        ),
        pytest.param(
            "environments:\n  - {name: staging, promote: approval}\n",
            "environments[0]",
            "'staging' has promote: approval but no approvers; add e.g. approvers: [role:approver]",
            id="approval-without-approvers",
        ),
        pytest.param(
            "environments:\n  - {name: production, promote: manual, approvers: []}\n",
            "environments[0]",
            "has promote: manual but no approvers",
            id="manual-without-approvers",
        ),
        pytest.param(
            "environments:\n  - {name: test, rollout: {strategy: canary, steps: [10, 50]}}\n",
            "environments[0].rollout.steps",
            "canary steps must end at 100",
            id="canary-steps-not-ending-at-100",
        ),
        pytest.param(
            "environments:\n  - {name: test, rollout: {steps: [50, 10, 100]}}\n",
            "environments[0].rollout.steps",
            "canary steps must be increasing percentages between 1 and 100",
            id="canary-steps-not-increasing",
        ),
        pytest.param(
            "environments:\n  - {name: test, gates: [shadow]}\n",
            "environments",
            "'test' has a shadow gate but no environment before it to replay; set shadow.source",
            id="shadow-gate-on-the-first-environment",
        ),
        pytest.param(
            "environments:\n"
            "  - {name: test}\n"
            "  - {name: staging, gates: [shadow], shadow: {source: production}}\n"
            "  - {name: production}\n",
            "environments",
            "shadow.source 'production' must be an environment listed before it",
            id="shadow-source-after-it",
        ),
        pytest.param(
            "environments:\n  - {name: Prod_1}\n",
            "environments[0].name",
            "'Prod_1' is not a valid environment name: use lower-case letters",
            id="bad-name",
        ),
        pytest.param(
            "environments:\n  - {name: " + "e" * 32 + "}\n",
            "environments[0].name",
            "at most 31 characters",
            id="name-too-long",
        ),
        pytest.param(
            "environments:\n  - {name: test, gates: [dta]}\n",
            "environments[0].gates[0]",
            "'data', 'model', 'infra', 'load', 'shadow' or 'canary'",
            id="unknown-gate",
        ),
        pytest.param(
            "environments:\n  - {name: test, promote: sometimes}\n",
            "environments[0].promote",
            "'auto', 'approval' or 'manual'",
            id="unknown-policy",
        ),
        pytest.param(
            "environments:\n  - {name: test, promote: approval, approvers: ['role:boss']}\n",
            "environments[0].approvers",
            "unknown role in 'role:boss'; roles are viewer, developer, approver, admin",
            id="unknown-approver-role",
        ),
        pytest.param(
            "environments:\n  - {name: test, load: {duration: soon}}\n",
            "environments[0].load.duration",
            "'soon' is not a duration; write e.g. 10s, 500ms, 5m or 1h",
            id="bad-duration",
        ),
        pytest.param(
            "environments:\n  - {name: test, rollout: {step_timeout: 0s}}\n",
            "environments[0].rollout.step_timeout",
            "must be a positive duration",
            id="zero-duration",
        ),
        pytest.param(
            "environments:\n  - {name: test, target: {port: 70000}}\n",
            "environments[0].target.port",
            "less than or equal to 65535",
            id="port-out-of-range",
        ),
        pytest.param(
            "access: {users: {alice: [superuser]}}\n",
            "access.users.alice[0]",
            "'viewer', 'developer', 'approver' or 'admin'",
            id="unknown-role",
        ),
        pytest.param(
            "access: {default_role: root}\n",
            "access.default_role",
            "'viewer', 'developer', 'approver' or 'admin'",
            id="unknown-default-role",
        ),
    ],
)
def test_invalid_environments_name_the_key_and_what_is_expected(
    text: str, key: str, says: str
) -> None:
    err = config_error(text)
    assert err.message.startswith(f"{PATH}: {key}: "), err.message
    assert says in err.message


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ("environments:\n  - {name: test, gatez: [data]}\n", "environments[0].gatez", "gates"),
        (
            "environments:\n  - {name: test, target: {prot: 25001}}\n",
            "environments[0].target.prot",
            "port",
        ),
        (
            "environments:\n  - {name: test, rollout: {stratgy: canary}}\n",
            "environments[0].rollout.stratgy",
            "strategy",
        ),
        ("access: {user: {alice: [admin]}}\n", "access.user", "users"),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(text: str, key: str, suggestion: str) -> None:
    err = config_error(text)
    assert err.message == f"{PATH}: {key}: unknown key"
    assert err.hint == f"did you mean '{suggestion}'?"


def test_kubernetes_environments_may_share_a_port() -> None:
    cfg = parse_config(
        NAME + "environments:\n"
        "  - {name: a, target: {kind: kubernetes, port: 8080}}\n"
        "  - {name: b, target: {kind: kubernetes, port: 8080}}\n",
        PATH,
        {},
    )
    assert [e.name for e in cfg.environments] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500ms", 0.5), ("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("2.5", 2.5), (3, 3.0)],
)
def test_durations(text: str | int, expected: float) -> None:
    assert seconds(text) == expected
