"""The value every check returns. Whether a failed check blocks is the gate's policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    name: str
    kind: str  # data | model | artifact | infra | serving
    passed: bool
    severity: Severity = Severity.ERROR
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class GatePolicy(StrEnum):
    BLOCKING = "blocking"  # a failed error-severity check fails the step, and so the run
    WARNING = "warning"  # failures are recorded and reported, the run goes on


def blocking_failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.passed and r.severity == Severity.ERROR]


def describe(result: CheckResult) -> str:
    return f"{result.name}: {result.message}" if result.message else result.name
