"""Validating data against a schema: every anomaly of every column, vectorised.

:func:`validate` returns a :class:`ValidationReport` listing each :class:`Anomaly` (a missing
or extra column, a wrong type, too many nulls, values out of range, unseen categories,
repeated values in a unique column, infinities). Nothing is raised for bad data: the report is
the result, and :meth:`ValidationReport.check_results` turns it into the
:class:`~conveyor.core.checks.CheckResult` values a gate decides on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.datasets import (
    ValueKind,
    as_frame,
    column_names,
    duplicated,
    json_value,
    numbers,
    text_counts,
    timestamps,
    utc_naive,
    value_counts,
    value_kind,
)
from conveyor.checks.schema import AnomalyKind, ColumnSchema, LogicalType, Schema
from conveyor.core.checks import CheckResult, Severity

MAX_EXAMPLES = 5
MAX_CATEGORIES_SHOWN = 10

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
# Which kinds of values each logical type accepts as they are; text is parsed when it can be.
_ACCEPTS = {
    LogicalType.INTEGER: {ValueKind.INTEGER, ValueKind.FLOAT, ValueKind.STRING},
    LogicalType.FLOAT: {ValueKind.INTEGER, ValueKind.FLOAT, ValueKind.STRING},
    LogicalType.BOOLEAN: {ValueKind.BOOLEAN},
    LogicalType.DATETIME: {ValueKind.DATETIME, ValueKind.STRING},
    LogicalType.CATEGORICAL: {ValueKind.STRING, ValueKind.INTEGER, ValueKind.BOOLEAN},
    LogicalType.TEXT: {ValueKind.STRING, ValueKind.OTHER},
}

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
        parts = [_n(self.count(s), str(s)) for s in reversed(Severity) if self.count(s)]
        verdict = "blocking" if self.blocking else "not blocking"
        return f"{_n(len(self.anomalies), 'anomaly')} ({', '.join(parts)}) in {shape}; {verdict}"

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


# --- validation --------------------------------------------------------------------------


def validate(data: Any, schema: Schema) -> ValidationReport:
    """Check ``data`` (a DataFrame or pyarrow Table) against ``schema``; list every anomaly.

    Column order does not matter. Raises UsageError only when the data cannot be checked at
    all (not a table, or two columns with one name).
    """
    frame = as_frame(data)
    names = column_names(frame)
    position = {n: i for i, n in enumerate(names)}
    anomalies: list[Anomaly] = []
    metrics: dict[str, dict[str, float]] = {}
    checked: list[str] = []
    for column in schema.columns:
        if column.name not in position:
            message = "in the schema but not in the data"
            anomalies.append(_anomaly(schema, column, AnomalyKind.MISSING_COLUMN, message))
            continue
        check = _ColumnCheck(schema, column, frame.iloc[:, position[column.name]])
        anomalies += check.run()
        metrics[column.name] = check.metrics
        checked.append(column.name)
    expected = set(schema.names)
    for extra in (n for n in names if n not in expected):
        message = "in the data but not in the schema"
        anomalies.append(_anomaly(schema, None, AnomalyKind.EXTRA_COLUMN, message, name=extra))
    return ValidationReport(
        rows=len(frame),
        columns=tuple(names),
        checked=tuple(checked),
        anomalies=tuple(anomalies),
        metrics=metrics,
    )


def _anomaly(
    schema: Schema,
    column: ColumnSchema | None,
    kind: AnomalyKind,
    message: str,
    *,
    name: str = "",
    severity: Severity | None = None,
    count: int = 0,
    examples: Any = (),
    example_counts: Any = (),
    metrics: dict[str, float] | None = None,
) -> Anomaly:
    return Anomaly(
        column=column.name if column is not None else name,
        kind=kind,
        severity=severity or schema.severity_of(kind, column),
        message=message,
        count=count,
        examples=tuple(json_value(v) for v in examples),
        example_counts=tuple(int(c) for c in example_counts),
        metrics=metrics or {},
    )


class _ColumnCheck:
    """The checks of one column present in the data; ``metrics`` records what was measured."""

    def __init__(self, schema: Schema, column: ColumnSchema, series: pd.Series) -> None:
        self.schema, self.column, self.series = schema, column, series
        self.metrics: dict[str, float] = {}
        self.found: list[Anomaly] = []

    def add(self, kind: AnomalyKind, message: str, **kwargs: Any) -> None:
        self.found.append(_anomaly(self.schema, self.column, kind, message, **kwargs))

    def run(self) -> list[Anomaly]:
        nulls = self.check_nulls()
        present = len(self.series) - nulls
        logical = self.column.type
        if present == 0:
            return self.found  # no value to hold to a type, range, domain or uniqueness
        kind = value_kind(self.series)
        if logical == LogicalType.NULL:
            self.add(
                AnomalyKind.TYPE,
                f"{_n(present, 'value')} in a column the schema has no type for "
                "(it held no value when the schema was inferred); set its type",
                severity=self.column.severity.get(AnomalyKind.TYPE, Severity.WARNING),
                count=present,
                examples=self.series.dropna().iloc[:MAX_EXAMPLES],
            )
            return self.found
        if kind not in _ACCEPTS[logical]:
            self.wrong_type(f"{self.series.dtype}", present, self.series.dropna())
        elif logical in (LogicalType.INTEGER, LogicalType.FLOAT):
            self.check_numbers(present)
        elif logical == LogicalType.DATETIME:
            self.check_datetimes(present)
        elif logical == LogicalType.CATEGORICAL:
            self.check_domain()
        if self.column.unique:
            self.check_unique()
        return self.found

    def wrong_type(self, found: str, count: int, offending: pd.Series) -> None:
        self.metrics["type_errors"] = float(count)
        self.add(
            AnomalyKind.TYPE,
            f"expected {self.column.type} values, found {found} "
            f"({_n(count, 'value')}{_eg(offending.iloc[:MAX_EXAMPLES])})",
            count=count,
            examples=offending.iloc[:MAX_EXAMPLES],
        )

    def check_nulls(self) -> int:
        rows = len(self.series)
        nulls = int(self.series.isna().sum())
        fraction = nulls / rows if rows else 0.0
        allowed = self.column.max_null_fraction
        self.metrics["null_fraction"] = fraction
        if fraction > allowed + 1e-12:
            self.add(
                AnomalyKind.NULLS,
                f"{_n(nulls, 'null')} ({_pct(fraction)} of {_n(rows, 'row')}); "
                f"at most {_pct(allowed)} allowed",
                count=nulls,
                metrics={"null_fraction": fraction, "max_null_fraction": allowed},
            )
        return nulls

    def check_numbers(self, present: int) -> None:
        values = numbers(self.series)
        if values.size < present:  # text that is not a number
            parsed = pd.to_numeric(self.series, errors="coerce")
            bad = self.series[self.series.notna() & parsed.isna()]
            self.wrong_type("text that is not a number", len(bad), bad)
            return
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            if self.column.type == LogicalType.INTEGER:
                fractional = ~finite | (np.floor(values) != values)
                if fractional.any():
                    bad_values = pd.Series(values[fractional])
                    self.wrong_type("numbers with fractions", int(fractional.sum()), bad_values)
                    return
            elif not self.column.allow_infinite:
                self.check_finite(values, finite)
            values = values[finite]
        self.check_range(values, self.column.min, self.column.max)

    def check_finite(self, values: np.ndarray[Any, Any], finite: np.ndarray[Any, Any]) -> None:
        infinite = values[~finite]
        self.metrics["non_finite"] = float(infinite.size)
        if infinite.size:
            positive = int((infinite > 0).sum())
            signs = ((np.inf, positive), (-np.inf, infinite.size - positive))
            shown = [(v, n) for v, n in signs if n]
            self.add(
                AnomalyKind.NON_FINITE,
                f"{_n(int(infinite.size), 'infinite value')} ({positive:,} inf, "
                f"{infinite.size - positive:,} -inf)",
                count=int(infinite.size),
                examples=[v for v, _ in shown],
                example_counts=[n for _, n in shown],
            )

    def check_datetimes(self, present: int) -> None:
        stamps = timestamps(self.series)
        if len(stamps) < present:
            parsed = pd.to_datetime(self.series, errors="coerce", format="ISO8601", utc=True)
            bad = self.series[self.series.notna() & parsed.isna()]
            self.wrong_type("text that is not an ISO 8601 date-time", len(bad), bad)
            return
        lo = None if self.column.min is None else utc_naive(self.column.min)
        hi = None if self.column.max is None else utc_naive(self.column.max)
        self.check_range(stamps, lo, hi)

    def check_range(self, values: Any, lo: Any, hi: Any) -> None:
        """Values (an array, or a Series of timestamps) outside [lo, hi]; None: no limit."""
        if lo is None and hi is None:
            return
        below = np.asarray(values < lo) if lo is not None else np.zeros(len(values), bool)
        above = np.asarray(values > hi) if hi is not None else np.zeros(len(values), bool)
        n_below, n_above = int(below.sum()), int(above.sum())
        self.metrics["out_of_range"] = float(n_below + n_above)
        if n_below + n_above:
            outside = below | above
            # distinct examples, in row order
            examples = pd.Series(values[outside]).drop_duplicates().iloc[:MAX_EXAMPLES]
            lo_text, hi_text = _show(self.column.min), _show(self.column.max)
            if lo is None or hi is None:
                where = f"above max {hi_text}" if lo is None else f"below min {lo_text}"
            else:
                where = f"outside [{lo_text}, {hi_text}] ({n_below:,} below, {n_above:,} above)"
            self.add(
                AnomalyKind.OUT_OF_RANGE,
                f"{_n(n_below + n_above, 'value')} {where}{_eg(examples)}",
                count=n_below + n_above,
                examples=examples,
                metrics={"below": float(n_below), "above": float(n_above)},
            )

    def check_domain(self) -> None:
        counts = text_counts(self.series)
        unseen = counts[~counts.index.isin(list(self.column.domain or ()))]
        rows = int(unseen.sum())
        self.metrics["unseen_categories"] = float(len(unseen))
        self.metrics["unseen_rows"] = float(rows)
        if len(unseen):
            top = unseen.iloc[:MAX_CATEGORIES_SHOWN]
            listed = ", ".join(f"{_show(v)} ({n:,})" for v, n in top.items())
            more = f" and {len(unseen) - len(top):,} more" if len(unseen) > len(top) else ""
            self.add(
                AnomalyKind.UNSEEN_CATEGORY,
                f"{_n(len(unseen), 'value')} not in the domain, in {_n(rows, 'row')}: "
                f"{listed}{more}",
                count=rows,
                examples=top.index,
                example_counts=top.to_numpy(),
                metrics={"unseen_categories": float(len(unseen))},
            )

    def check_unique(self) -> None:
        repeats = duplicated(self.series)
        count = int(repeats.sum())
        self.metrics["duplicates"] = float(count)
        if count:
            top = value_counts(self.series[repeats]).iloc[:MAX_EXAMPLES]
            listed = ", ".join(f"{_show(v)} ({n + 1:,} times)" for v, n in top.items())
            self.add(
                AnomalyKind.DUPLICATE,
                f"{_n(count, 'row')} repeat a value of a unique column: {listed}",
                count=count,
                examples=top.index,
                example_counts=top.to_numpy() + 1,
            )


def _show(value: Any) -> str:
    value = json_value(value)
    return repr(value) if isinstance(value, str) else str(value)


def _eg(values: Any) -> str:
    shown = [_show(v) for v in values]
    return f"; e.g. {', '.join(shown)}" if shown else ""


def _n(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"
