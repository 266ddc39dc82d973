"""What a run report holds: plain values, parsed from the JSON the built-in steps store.

The renderers (:mod:`conveyor.reports.html`, :mod:`conveyor.reports.markdown`) are pure
functions of a :class:`RunReport`, so they are tested without a database. Each ``*_from_dict``
reads one JSON contract (``conveyor.model_gate/1``, ``conveyor.validation/1``,
``conveyor.drift/1``) and raises UsageError naming what is wrong with a damaged value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from conveyor.checks.evaluation import Evaluation
from conveyor.errors import UsageError

T = TypeVar("T")
GATE_SCHEMA = "conveyor.model_gate/1"
VALIDATION_SCHEMA = "conveyor.validation/1"
DRIFT_SCHEMA = "conveyor.drift/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHeader:
    id: str
    pipeline: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    git_commit: str | None
    git_dirty: bool
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRow:
    name: str
    status: str
    duration_s: float | None
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> digest
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRow:
    step: str
    name: str
    kind: str
    passed: bool
    severity: str
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateSection:
    """The model gate's verdict; ``from_checks`` when the step failed before storing it."""

    step: str
    blessed: bool
    reasons: tuple[str, ...]
    results: tuple[CheckRow, ...]
    from_checks: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyRow:
    column: str
    kind: str
    severity: str
    message: str
    count: int = 0
    examples: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationSection:
    step: str
    summary: str
    blocking: bool
    anomalies: tuple[AnomalyRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Histogram:
    """Counts per bin (numeric: ``edges``) or per label (categorical: ``labels``)."""

    reference: tuple[int, ...]
    current: tuple[int, ...]
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    reference_other: int = 0  # outside the edges, or other labels
    current_other: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    column: str
    kind: str
    checked: bool
    drifted: bool
    verdict: str
    method: str = ""
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    note: str = ""
    histogram: Histogram | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftSection:
    step: str
    drifted: bool
    share: float
    drift_share: float
    checked: int
    drifted_count: int
    reference_rows: int | None
    current_rows: int | None
    features: tuple[FeatureDrift, ...]

    @property
    def summary(self) -> str:
        if not self.checked:
            return "no feature could be checked"
        verdict = "dataset drift" if self.drifted else "no dataset drift"
        return (
            f"drift in {self.drifted_count} of {self.checked} features ({self.share:.0%}; "
            f"the dataset drifts at {self.drift_share:.0%}): {verdict}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationSection:
    step: str
    evaluation: Evaluation


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    """Everything a report shows about one run; sections without data are empty."""

    run: RunHeader
    steps: tuple[StepRow, ...] = ()
    metrics: dict[str, float | None] = field(default_factory=dict)
    checks: tuple[CheckRow, ...] = ()
    evaluations: tuple[EvaluationSection, ...] = ()
    gates: tuple[GateSection, ...] = ()
    validations: tuple[ValidationSection, ...] = ()
    drifts: tuple[DriftSection, ...] = ()
    notes: tuple[str, ...] = ()  # artifacts that could not be read, and why


# --- parsing ------------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """A JSON number (or ``"inf"``, as drift writes infinite statistics) as a float."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def parsed(what: str, step: str, build: Callable[[], T]) -> T:
    """``build()``, with a damaged value reported as a UsageError naming the step."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"the {what} stored by step '{step}' is damaged ({type(exc).__name__}: {exc})",
            hint="re-run the step with this version of Conveyor to store it again",
        ) from None


def check_row(raw: Mapping[str, Any], step: str) -> CheckRow:
    return CheckRow(
        step=str(raw.get("step") or step),
        name=str(raw["name"]),
        kind=str(raw.get("kind", "")),
        passed=bool(raw["passed"]),
        severity=str(raw.get("severity", "error")),
        message=str(raw.get("message") or ""),
        metrics={str(k): v for k, v in (raw.get("metrics") or {}).items()},
    )


def gate_from_dict(raw: Mapping[str, Any], step: str) -> GateSection:
    def build() -> GateSection:
        return GateSection(
            step=step,
            blessed=bool(raw["blessed"]),
            reasons=tuple(str(r) for r in raw["reasons"]),
            results=tuple(check_row(r, step) for r in raw["results"]),
        )

    return parsed("model gate verdict", step, build)


def validation_from_dict(raw: Mapping[str, Any], step: str) -> ValidationSection:
    def build() -> ValidationSection:
        anomalies = tuple(
            AnomalyRow(
                column=str(a["column"]),
                kind=str(a["kind"]),
                severity=str(a["severity"]),
                message=str(a["message"]),
                count=int(a.get("count") or 0),
                examples=tuple(a.get("examples") or ()),
            )
            for a in raw["anomalies"]
        )
        return ValidationSection(
            step=step,
            summary=str(raw.get("summary") or f"{len(anomalies)} anomalies"),
            blocking=bool(raw.get("blocking", any(a.severity == "error" for a in anomalies))),
            anomalies=anomalies,
        )

    return parsed("data validation report", step, build)


def _histogram(raw: Mapping[str, Any] | None) -> Histogram | None:
    if not raw:
        return None
    return Histogram(
        reference=tuple(int(c) for c in raw["reference"]),
        current=tuple(int(c) for c in raw["current"]),
        edges=tuple(float(e) for e in raw.get("edges") or ()),
        labels=tuple(str(label) for label in raw.get("labels") or ()),
        reference_other=int(raw.get("reference_other") or 0),
        current_other=int(raw.get("current_other") or 0),
    )


def feature_from_dict(raw: Mapping[str, Any]) -> FeatureDrift:
    checked, drifted = bool(raw["checked"]), bool(raw.get("drifted", False))
    default = "not checked" if not checked else "drift" if drifted else "no drift"
    return FeatureDrift(
        column=str(raw["column"]),
        kind=str(raw.get("kind", "")),
        checked=checked,
        drifted=drifted,
        verdict=str(raw.get("verdict") or default),
        method=str(raw.get("method") or ""),
        statistic=number(raw.get("statistic")),
        p_value=number(raw.get("p_value")),
        threshold=number(raw.get("threshold")),
        note=str(raw.get("note") or ""),
        histogram=_histogram(raw.get("histogram")),
    )


def drift_from_dict(raw: Mapping[str, Any], step: str) -> DriftSection:
    def build() -> DriftSection:
        features = tuple(feature_from_dict(f) for f in raw["features"])
        checked = sum(f.checked for f in features)
        drifted_count = sum(f.drifted for f in features)
        share = drifted_count / checked if checked else 0.0
        drift_share = float(raw.get("drift_share", 0.5))
        rows = (raw.get("reference_rows"), raw.get("current_rows"))
        return DriftSection(
            step=step,
            drifted=bool(raw.get("drifted", checked > 0 and share >= drift_share)),
            share=share,
            drift_share=drift_share,
            checked=checked,
            drifted_count=drifted_count,
            reference_rows=None if rows[0] is None else int(rows[0]),
            current_rows=None if rows[1] is None else int(rows[1]),
            features=features,
        )

    return parsed("drift report", step, build)


def is_missing(value: float | None) -> bool:
    return value is None or math.isnan(value)
