"""The value every check returns. Whether a failed check blocks is the gate's policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
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

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (a metric that is not a finite number becomes null)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "severity": str(self.severity),
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "message": self.message,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CheckResult:
        metrics = doc.get("metrics") or {}
        return cls(
            name=doc["name"],
            kind=doc["kind"],
            passed=bool(doc["passed"]),
            severity=Severity(doc.get("severity", "error")),
            metrics={k: (math.nan if v is None else float(v)) for k, v in metrics.items()},
            message=doc.get("message", ""),
            details=dict(doc.get("details") or {}),
        )


class GatePolicy(StrEnum):
    BLOCKING = "blocking"  # a failed error-severity check fails the step, and so the run
    WARNING = "warning"  # failures are recorded and reported, the run goes on


def blocking_failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.passed and r.severity == Severity.ERROR]


def describe(result: CheckResult) -> str:
    return f"{result.name}: {result.message}" if result.message else result.name
