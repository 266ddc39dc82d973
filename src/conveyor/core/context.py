"""What a running step can reach: ``log_metric`` / ``log_metrics`` record numbers on its run."""

from __future__ import annotations

import contextvars
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.errors import UsageError

_CURRENT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "conveyor_step", default=None
)


@dataclass(slots=True)
class StepContext:
    step: str
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)


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
