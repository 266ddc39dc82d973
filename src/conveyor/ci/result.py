"""What ``conveyor ci`` found: its stages (each a list of check results, timed), the baseline
it compared with, and the comparison's numbers. Plain values, rendered by the report modules."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from conveyor.core.checks import CheckResult, Severity, blocking_failures


class StageStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a blocking check failed
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """One stage of the CI run; it failed when one of its checks is a blocking failure."""

    name: str  # tests | pipeline | baseline | data | model | serving
    title: str
    status: StageStatus
    duration_s: float = 0.0
    checks: tuple[CheckResult, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def blocking(self) -> list[CheckResult]:
        return blocking_failures(list(self.checks))


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    """The run the change is compared with, or why there is none."""

    base_ref: str | None
    commit: str | None  # the merge-base
    run_id: str | None
    source: str  # "store" (found by commit), "computed" (in a worktree), or "none"
    reason: str = ""  # why there is no baseline, or a caveat about the one used

    @property
    def found(self) -> bool:
        return self.run_id is not None

    def describe(self) -> str:
        short = (self.commit or "")[:10]
        if self.run_id is None:
            return f"no baseline: {self.reason}" if self.reason else "no baseline"
        how = (
            "found in the metadata store by commit"
            if self.source == "store"
            else "computed at the merge-base in a temporary git worktree"
        )
        text = f"run {self.run_id} at {short} (merge-base with {self.base_ref}), {how}"
        return f"{text}; {self.reason}" if self.reason else text


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDelta:
    name: str
    baseline: float | None
    candidate: float | None
    higher_is_better: bool | None  # None: unknown direction
    low: float | None = None  # the candidate's interval, when the evaluation has one
    high: float | None = None
    confidence: float | None = None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamChange:
    name: str
    baseline: Any
    candidate: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Numbers the report shows beside the checks."""

    metrics: tuple[MetricDelta, ...] = ()
    params: tuple[ParamChange, ...] = ()
    drifted: tuple[str, ...] = ()
    anomalies: tuple[str, ...] = ()
    # size in bytes, latency in ms: {"baseline": x, "candidate": y}
    model_size: dict[str, float] = field(default_factory=dict)
    predict_latency_ms: dict[str, float] = field(default_factory=dict)
    serving: dict[str, float] = field(default_factory=dict)  # qps, p50_ms, p99_ms, error_rate


@dataclass(frozen=True, slots=True, kw_only=True)
class CIResult:
    project: str
    pipeline: str | None
    commit: str | None
    dirty: bool
    run_id: str | None  # the candidate run
    sample: dict[str, Any]
    baseline: Baseline
    stages: tuple[Stage, ...]
    elapsed_s: float = 0.0  # wall time: the test suite overlaps the pipeline stage
    comparison: Comparison = field(default_factory=Comparison)

    @property
    def checks(self) -> list[CheckResult]:
        return [c for s in self.stages for c in s.checks]

    @property
    def blocking(self) -> list[tuple[Stage, CheckResult]]:
        return [(s, c) for s in self.stages for c in s.blocking]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "conveyor.ci/1",
            "passed": self.passed,
            "project": self.project,
            "pipeline": self.pipeline,
            "commit": self.commit,
            "dirty": self.dirty,
            "run_id": self.run_id,
            "sample": self.sample,
            "baseline": asdict(self.baseline) | {"description": self.baseline.describe()},
            "elapsed_s": self.elapsed_s,
            "stages": [
                {
                    "name": s.name,
                    "title": s.title,
                    "status": str(s.status),
                    "duration_s": s.duration_s,
                    "notes": list(s.notes),
                    "checks": [c.to_json() for c in s.checks],
                }
                for s in self.stages
            ],
            "comparison": asdict(self.comparison)
            | {"metrics": [asdict(m) | {"delta": m.delta} for m in self.comparison.metrics]},
        }


def stage_of(
    name: str,
    title: str,
    checks: list[CheckResult],
    duration_s: float,
    notes: list[str] | None = None,
) -> Stage:
    status = StageStatus.FAILED if blocking_failures(checks) else StageStatus.PASSED
    return Stage(
        name=name,
        title=title,
        status=status,
        duration_s=duration_s,
        checks=tuple(checks),
        notes=tuple(notes or ()),
    )


def skipped(name: str, title: str, why: str) -> Stage:
    return Stage(name=name, title=title, status=StageStatus.SKIPPED, notes=(why,))


def warning(c: CheckResult) -> CheckResult:
    """The same result, no longer blocking (a gate with a warning policy recorded it)."""
    if c.passed or c.severity != Severity.ERROR:
        return c
    return dataclasses.replace(c, severity=Severity.WARNING)
