"""How built-in steps are declared: a step whose params default to ``conveyor.yaml``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conveyor.core.context import project_root
from conveyor.core.step import Step
from conveyor.errors import ConfigError, UsageError

POLICIES = ("blocking", "warning")


def builtin(
    step: Step,
    *,
    defaults_from: Mapping[str, str],
    check_params: Callable[[dict[str, Any]], None] | None = None,
    file_params: tuple[str, ...] = (),
) -> Step:
    """``step`` with defaults read from the project file and params checked at planning."""
    return Step(
        dataclasses.replace(
            step.definition,
            defaults_from=dict(defaults_from),
            check_params=check_params,
            file_params=file_params,
        )
    )


def check_policy(step: str, policy: str) -> None:
    if policy not in POLICIES:
        raise ConfigError(
            f"{step}: policy '{policy}' is neither 'blocking' nor 'warning'",
            hint=f"set checks.*.policy or -p {step}.policy= to one of {list(POLICIES)}",
        )


def project_file(rel: str, what: str, setting: str) -> Path:
    """A file of the project, named relative to its root by a param."""
    if not rel:
        raise ConfigError(f"no {what} is configured", hint=f"set {setting} in conveyor.yaml")
    path = Path(project_root()) / rel
    if not path.is_file():
        raise UsageError(
            f"{what} '{rel}' does not exist in the project", hint=f"create it, or fix {setting}"
        )
    return path
