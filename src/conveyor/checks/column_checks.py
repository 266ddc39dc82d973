"""The checks of one column present in the data, against its :class:`ColumnSchema`.

:class:`ColumnCheck` holds the column's values to nulls, its type, its range, its domain,
uniqueness and finiteness, records what it measured, and lists each :class:`Anomaly`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.datasets import (
    ValueKind,
    duplicated,
    json_value,
    numbers,
    text_counts,
    timestamps,
    utc_naive,
    value_counts,
    value_kind,
)
from conveyor.checks.schema_types import AnomalyKind, ColumnSchema, LogicalType, Schema
from conveyor.checks.validation_report import Anomaly, counted
from conveyor.core.checks import Severity

MAX_EXAMPLES = 5
MAX_CATEGORIES_SHOWN = 10
# Which kinds of values each logical type accepts as they are; text is parsed when it can be.
_ACCEPTS = {
    LogicalType.INTEGER: {ValueKind.INTEGER, ValueKind.FLOAT, ValueKind.STRING},
    LogicalType.FLOAT: {ValueKind.INTEGER, ValueKind.FLOAT, ValueKind.STRING},
    LogicalType.BOOLEAN: {ValueKind.BOOLEAN},
    LogicalType.DATETIME: {ValueKind.DATETIME, ValueKind.STRING},
    LogicalType.CATEGORICAL: {ValueKind.STRING, ValueKind.INTEGER, ValueKind.BOOLEAN},
    LogicalType.TEXT: {ValueKind.STRING, ValueKind.OTHER},
}


def anomaly(
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
    """An anomaly of ``column`` (or of the column ``name``); the schema decides its severity
    unless one is given."""
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


class ColumnCheck:
    """The checks of one column present in the data; ``metrics`` records what was measured."""

    def __init__(self, schema: Schema, column: ColumnSchema, series: pd.Series) -> None:
        self.schema, self.column, self.series = schema, column, series
        self.metrics: dict[str, float] = {}
        self.found: list[Anomaly] = []

    def add(self, kind: AnomalyKind, message: str, **kwargs: Any) -> None:
        self.found.append(anomaly(self.schema, self.column, kind, message, **kwargs))

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
                f"{counted(present, 'value')} in a column the schema has no type for "
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
            f"({counted(count, 'value')}{_eg(offending.iloc[:MAX_EXAMPLES])})",
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
                f"{counted(nulls, 'null')} ({_pct(fraction)} of {counted(rows, 'row')}); "
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
                f"{counted(int(infinite.size), 'infinite value')} ({positive:,} inf, "
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
                f"{counted(n_below + n_above, 'value')} {where}{_eg(examples)}",
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
                f"{counted(len(unseen), 'value')} not in the domain, in {counted(rows, 'row')}: "
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
                f"{counted(count, 'row')} repeat a value of a unique column: {listed}",
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


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"
