"""``environments:`` and ``access:`` in ``conveyor.yaml``: where versions are delivered, how
they get there, and who may move them.

An environment is a named stage in an ordered list (the scaffold uses test, staging,
production). A version enters an environment only after it has been live in the one before,
by the environment's promotion policy, once the gates it names have passed.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
Role = Literal["viewer", "developer", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "developer", "approver", "admin")
Gate = Literal["data", "model", "infra", "load", "shadow", "canary"]
GATES: tuple[Gate, ...] = ("data", "model", "infra", "load", "shadow", "canary")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(value: str | float | int) -> float:
    """A duration: a number of seconds, or text such as ``500ms``, ``10s``, ``5m``, ``1h``."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"'{value}' is not a duration; write e.g. 10s, 500ms, 5m or 1h")
    return float(match.group(1)) * _UNIT[match.group(2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Duration = str | float


def _positive_duration(value: Duration) -> Duration:
    if seconds(value) <= 0:
        raise ValueError("must be a positive duration")
    return value


class LoadGateConfig(_Model):
    """The ``load`` gate: a closed-loop load test of the package, judged by an SLO."""

    concurrency: int = Field(default=8, ge=1, le=4096)
    duration: Duration = "10s"
    warmup: Duration = "2s"
    slo: dict[str, Any] = Field(default_factory=dict)

    _check_duration = field_validator("duration")(_positive_duration)


class ShadowGateConfig(_Model):
    """The ``shadow`` gate: replay requests logged in ``source`` (by default the environment
    before this one) against the candidate, and require its answers to agree."""

    source: str | None = None
    min_requests: int = Field(default=100, ge=1)
    min_agreement: float = Field(default=0.95, ge=0.0, le=1.0)
    # labels: the predicted classes must agree (a retrained model's scores never match the
    # logged ones exactly); scores: every output within ``tolerance``
    compare: Literal["labels", "scores"] = "labels"
    tolerance: float = Field(default=1e-6, ge=0.0)  # scores this close agree
    max_requests: int = Field(default=2_000, ge=1)


class RolloutConfig(_Model):
    """How a version goes live: ``replace`` (load, check, swap at once), ``canary`` (traffic
    steps, each analysed against the stable version, rolled back by itself on failure), or
    ``shadow`` (the candidate answers a copy of live traffic, compared, before the swap)."""

    strategy: Literal["replace", "canary", "shadow"] = "replace"
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    min_requests: int = Field(default=200, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_p99_ratio: float | None = Field(default=2.0, gt=0)  # canary p99 / stable p99
    max_shift: float = Field(default=0.25, gt=0.0)  # prediction distribution shift (PSI)
    min_agreement: float = Field(default=0.95, ge=0.0, le=1.0)  # live shadow
    step_timeout: Duration = "10m"

    _check_timeout = field_validator("step_timeout")(_positive_duration)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[int]) -> list[int]:
        if not steps or steps[-1] != 100:
            raise ValueError("canary steps must end at 100 (percent of traffic)")
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError("canary steps must be increasing percentages between 1 and 100")
        return steps


class TargetConfig(_Model):
    """Where an environment runs: ``local`` (a supervised uvicorn process on ``port``) or
    ``kubernetes`` (rendered manifests)."""

    kind: Literal["local", "kubernetes"] = "local"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # kubernetes
    namespace: str = "default"
    image: str | None = None
    replicas: int = Field(default=1, ge=1, le=1000)
    kserve: bool = False
    resources: dict[str, Any] = Field(default_factory=dict)


class EnvironmentConfig(_Model):
    name: str
    promote: Literal["auto", "approval", "manual"] = "auto"
    gates: list[Gate] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)  # user names, or role:NAME
    load: LoadGateConfig = Field(default_factory=LoadGateConfig)
    shadow: ShadowGateConfig = Field(default_factory=ShadowGateConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not ENV_NAME_RE.fullmatch(name):
            raise ValueError(
                f"'{name}' is not a valid environment name: use lower-case letters, digits "
                "and '-', starting with a letter (at most 31 characters)"
            )
        return name

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, approvers: list[str]) -> list[str]:
        for who in approvers:
            if who.startswith("role:") and who[5:] not in ROLES:
                raise ValueError(f"unknown role in '{who}'; roles are {', '.join(ROLES)}")
        return approvers

    @model_validator(mode="after")
    def _policy_needs_approvers(self) -> EnvironmentConfig:
        if self.promote != "auto" and not self.approvers:
            raise ValueError(
                f"environment '{self.name}' has promote: {self.promote} but no approvers; "
                "add e.g. approvers: [role:approver]"
            )
        return self


class AccessConfig(_Model):
    """Who may do what. ``users`` maps a user name to roles; anyone else has
    ``default_role``. The local actor is ``$CONVEYOR_USER`` (else the login name), or the
    user of the token in ``$CONVEYOR_TOKEN``."""

    users: dict[str, list[Role]] = Field(default_factory=dict)
    default_role: Role = "developer"


def check_environments(environments: list[EnvironmentConfig]) -> list[EnvironmentConfig]:
    """Names unique, local ports unique, shadow sources known and earlier in the list."""
    seen: dict[str, int] = {}
    ports: dict[int, str] = {}
    for index, env in enumerate(environments):
        if env.name in seen:
            raise ValueError(f"environment '{env.name}' is listed twice")
        seen[env.name] = index
        port = env.target.port
        if env.target.kind == "local" and port is not None:
            if port in ports:
                raise ValueError(
                    f"environments '{ports[port]}' and '{env.name}' both use port {port}"
                )
            ports[port] = env.name
        if "shadow" in env.gates:
            source = env.shadow.source
            if source is None and index == 0:
                raise ValueError(
                    f"environment '{env.name}' has a shadow gate but no environment before "
                    "it to replay; set shadow.source"
                )
            if source is not None and seen.get(source, len(environments)) >= index:
                raise ValueError(
                    f"environment '{env.name}': shadow.source '{source}' must be an "
                    "environment listed before it"
                )
    return environments
