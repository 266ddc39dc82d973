"""The validation report: every :class:`Anomaly` found, and its renderings.

:class:`ValidationReport` is what :func:`conveyor.checks.validation.validate` returns; it
renders as JSON, text and Markdown, and :meth:`ValidationReport.check_results` turns it into
the :class:`~conveyor.core.checks.CheckResult` values a gate decides on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from conveyor.checks.schema_types import AnomalyKind
from conveyor.core.checks import CheckResult, Severity

HINTS = {
    AnomalyKind.MISSING_COLUMN: "add the column to the data, or remove it from the schema",
    AnomalyKind.EXTRA_COLUMN: "add the column to the schema, or drop it from the data",
    AnomalyKind.TYPE: "fix the data, or change the column's type in the schema",
    AnomalyKind.NULLS: "fill the missing values upstream, or raise max_null_fraction",
    AnomalyKind.OUT_OF_RANGE: "if these values are valid, widen min / max in the schema",
    AnomalyKind.UNSEEN_CATEGORY: "if these values are valid, add them to the domain",
    AnomalyKind.DUPLICATE: "remove the repeated rows upstream, or set unique: false",
    AnomalyKind.NON_FINITE: "replace infinities upstream, or set allow_infinite: true",
}
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}

Example = str | int | float | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    column: str
    kind: AnomalyKind
    severity: Severity
    message: str
    count: int = 0  # offending values (or rows); 0 for a missing or extra column
    examples: tuple[Example, ...] = ()  # a few offending values, JSON-safe
    example_counts: tuple[int, ...] = ()  # occurrences of each example, when counted
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.severity == Severity.ERROR

    @property
    def hint(self) -> str:
        return HINTS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "column": self.column,
            "kind": str(self.kind),
            "severity": str(self.severity),
            "message": self.message,
            "count": self.count,
            "examples": list(self.examples),
        }
        if self.example_counts:
            out["example_counts"] = list(self.example_counts)
        out["metrics"] = dict(self.metrics)
        out["hint"] = self.hint
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationReport:
    rows: int
    columns: tuple[str, ...]  # the data's columns, in its order
    checked: tuple[str, ...]  # schema columns found in the data, whose values were checked
    anomalies: tuple[Anomaly, ...]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # per checked column

    @property
    def blocking(self) -> bool:
        """True when any anomaly has error severity: a blocking gate fails on it."""
        return any(a.blocking for a in self.anomalies)

    def count(self, severity: Severity) -> int:
        return sum(a.severity == severity for a in self.anomalies)

    def for_column(self, column: str) -> list[Anomaly]:
        return [a for a in self.anomalies if a.column == column]

    def summary(self) -> str:
        shape = f"{self.rows:,} rows, {len(self.columns)} columns"
        if not self.anomalies:
            return f"no anomalies in {shape} ({len(self.checked)} checked against the schema)"
        parts = [counted(self.count(s), str(s)) for s in reversed(Severity) if self.count(s)]
        verdict = "blocking" if self.blocking else "not blocking"
        total = counted(len(self.anomalies), "anomaly")
        return f"{total} ({', '.join(parts)}) in {shape}; {verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": list(self.columns),
            "checked": list(self.checked),
            "blocking": self.blocking,
            "summary": self.summary(),
            "anomalies": [a.to_dict() for a in self.anomalies],
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_text(self) -> str:
        """Plain lines for a terminal or a CI log: the summary, then one line per anomaly."""
        lines = [f"data validation: {self.summary()}"]
        for a in self.anomalies:
            lines.append(f"  {a.severity:<7} {a.column}: {a.kind}: {a.message}")
            lines.append(f"          fix: {a.hint}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = [f"**Data validation**: {self.summary()}"]
        if self.anomalies:
            lines += [
                "",
                "| severity | column | anomaly | count | details |",
                "|---|---|---|---:|---|",
            ]
            for a in self.anomalies:
                cells = [str(a.severity), f"`{a.column}`", str(a.kind), f"{a.count:,}", a.message]
                lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def check_results(self, name: str = "schema") -> list[CheckResult]:
        """One result per column with anomalies, then the overall one (kind ``data``).

        A result fails when it holds a warning or an error anomaly; its severity is the worst
        one, so only error anomalies block. A missing column is a failure, never a pass.
        """
        results = []
        for column in dict.fromkeys(a.column for a in self.anomalies):
            found = self.for_column(column)
            results.append(
                CheckResult(
                    name=f"{name}:{column}",
                    kind="data",
                    passed=_passed(found),
                    severity=_worst(found),
                    metrics=dict(self.metrics.get(column, {})),
                    message="; ".join(f"{a.kind}: {a.message}" for a in found),
                    details={"column": column, "anomalies": [a.to_dict() for a in found]},
                )
            )
        overall = {
            "rows": float(self.rows),
            "columns_checked": float(len(self.checked)),
            "anomalies": float(len(self.anomalies)),
            "errors": float(self.count(Severity.ERROR)),
            "warnings": float(self.count(Severity.WARNING)),
        }
        results.append(
            CheckResult(
                name=name,
                kind="data",
                passed=_passed(self.anomalies),
                severity=_worst(self.anomalies),
                metrics=overall,
                message=self.summary(),
                details={"checked": list(self.checked), "columns": list(self.columns)},
            )
        )
        return results


def _passed(anomalies: tuple[Anomaly, ...] | list[Anomaly]) -> bool:
    return all(a.severity == Severity.INFO for a in anomalies)


def _worst(anomalies: tuple[Anomaly, ...] | list[Anomaly]) -> Severity:
    return max((a.severity for a in anomalies), key=_RANK.__getitem__, default=Severity.ERROR)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is 1: "1 row", "3,000 rows"."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"
