"""What a batch prediction job reports: its progress, its outcome, and its input checks.

A job reports :class:`BatchProgress` after each chunk and returns a :class:`BatchReport`; a job
refused for bad rows raises :class:`BatchRefused`, which carries the report. The check results
it records (:func:`input_checks`) say, column by column, which rows failed which check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import GateFailedError
from conveyor.registry.batch_rows import Problem


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchProgress:
    """Where a job is, reported after each chunk (and once, with no rows, when it starts)."""

    run_id: str
    rows: int  # rows read so far
    total: int | None  # rows in the input: exact for Parquet, estimated from lines for CSV
    chunks: int
    predicted: int
    quarantined: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """What a batch prediction job did; ``status`` is ``succeeded`` or ``refused``."""

    run_id: str
    status: str
    model: str
    method: str
    model_digest: str
    package_digest: str
    input: str
    input_digest: str
    output: str
    output_digest: str | None
    quarantine: str | None
    quarantine_digest: str | None
    rows: int
    predicted: int
    quarantined: int
    chunks: int
    duration_s: float
    problems: tuple[Problem, ...] = ()
    checks: tuple[CheckResult, ...] = ()

    def summary(self) -> str:
        if self.status == "refused":
            return f"refused: bad rows in {self.input}; nothing was written (run {self.run_id})"
        aside = f"; {self.quarantined:,} set aside in {self.quarantine}" if self.quarantine else ""
        return (
            f"predicted {self.predicted:,} of {self.rows:,} rows with {self.model} "
            f"({self.method}) into {self.output}{aside} (run {self.run_id})"
        )

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["problems"] = [p.to_json() for p in self.problems]
        data["checks"] = [
            {"name": c.name, "passed": c.passed, "severity": str(c.severity), "message": c.message}
            for c in self.checks
        ]
        return data


class BatchRefused(GateFailedError):
    """A chunk held rows the model must not see, and no quarantine file was given."""

    def __init__(self, message: str, *, hint: str, report: BatchReport) -> None:
        super().__init__(message, hint=hint)
        self.report = report


ProgressCallback = Callable[[BatchProgress], None]


def input_checks(
    problems: Sequence[Problem],
    *,
    set_aside: bool,
    rows: int,
    bad: int,
    quarantined: int,
    against: str,
    source: str,
    checked: list[str],
) -> list[CheckResult]:
    """One failed check per column with problems, then ``input`` over all ``rows`` checked
    against ``against``; warnings when bad rows were ``set_aside``, else errors."""
    severity = Severity.WARNING if set_aside else Severity.ERROR
    by_column: dict[str, list[Problem]] = {}
    for p in problems:
        by_column.setdefault(p.column, []).append(p)
    results = [_column_check(column, found, severity) for column, found in by_column.items()]
    results.append(
        CheckResult(
            name="input",
            kind="data",
            passed=not by_column,
            severity=severity,
            metrics={
                "rows": float(rows),
                "bad_rows": float(bad),
                "quarantined": float(quarantined),
            },
            message=f"{rows:,} rows checked against {against}: "
            + (f"{bad:,} bad" if bad else "all valid"),
            details={"input": source, "checked": checked},
        )
    )
    return results


def _column_check(column: str, found: list[Problem], severity: Severity) -> CheckResult:
    return CheckResult(
        name=f"input:{column}",
        kind="data",
        passed=False,
        severity=severity,
        metrics={str(p.kind): float(p.rows) for p in found},
        message="; ".join(p.describe(column=False) for p in found),
        details={"column": column, "problems": [p.to_json() for p in found]},
    )
