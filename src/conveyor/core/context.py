"""What a running step can reach: metrics and check results recorded on its run, and where
the project is. ``log_metric`` / ``log_metrics`` / ``record_checks`` do nothing outside a run."""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.checks import CheckResult
from conveyor.errors import UsageError

_CURRENT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "conveyor_step", default=None
)


@dataclass(slots=True)
class StepContext:
    step: str
    run_id: str
    root: str = "."
    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    loader: Callable[[str], Any] | None = None  # loads the artifacts of ArtifactRef params
    inputs: dict[str, str] = field(default_factory=dict)  # argument -> input artifact digest


def current_step() -> StepContext | None:
    return _CURRENT.get()


def enter(ctx: StepContext) -> contextvars.Token[StepContext | None]:
    return _CURRENT.set(ctx)


def leave(token: contextvars.Token[StepContext | None]) -> None:
    _CURRENT.reset(token)


def log_metric(name: str, value: float) -> None:
    """Record a metric of the current step's run. Outside a run this does nothing."""
    ctx = _CURRENT.get()
    if ctx is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"metric '{name}' must be a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise UsageError(f"metric '{name}' is {number}", hint="log finite numbers only")
    ctx.metrics[str(name)] = number


def log_metrics(values: Mapping[str, float]) -> None:
    """Record several metrics of the current step's run."""
    for name, value in values.items():
        log_metric(name, value)


def record_checks(results: Iterable[CheckResult]) -> None:
    """Record check results on the current step's run (passed or not: every result is kept)."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.checks.extend(results)


def project_root() -> str:
    """The directory of the project the current step runs in (``.`` outside a run)."""
    ctx = _CURRENT.get()
    return ctx.root if ctx is not None else "."


def load_artifact(digest: str) -> Any:
    """Inside a step: the value of an artifact named by one of its ArtifactRef params."""
    ctx = _CURRENT.get()
    if ctx is None or ctx.loader is None:
        raise UsageError(
            "load_artifact() works inside a running step, for an ArtifactRef param",
            hint="annotate the param with conveyor.ArtifactRef and pass its value",
        )
    return ctx.loader(digest)


def input_digest(argument: str) -> str:
    """Inside a step: the digest of the artifact given to ``argument``."""
    ctx = _CURRENT.get()
    if ctx is None or argument not in ctx.inputs:
        raise UsageError(
            f"no input artifact '{argument}' in the current step",
            hint="call input_digest() inside a step, for one of its inputs",
        )
    return ctx.inputs[argument]
