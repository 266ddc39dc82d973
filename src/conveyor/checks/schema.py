"""Data schemas: inferred from a table, kept as versioned, human-editable YAML.

A :class:`Schema` lists the expected columns in order; each :class:`ColumnSchema` says the
column's logical type, how many nulls it may hold, and, by type, its range, its domain of
categories, whether its values are unique and whether infinities are allowed.
:func:`infer_schema` writes down what the data shows; a person then edits the YAML
(``docs/schema.md``) and :func:`conveyor.checks.validation.validate` checks new data against it.

This module infers schemas; the values are defined in :mod:`conveyor.checks.schema_types`
and the YAML file format in :mod:`conveyor.checks.schema_file`, both re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.datasets import (
    ValueKind,
    as_frame,
    column_names,
    distinct_count,
    numbers,
    text_counts,
    timestamps,
    value_kind,
)
from conveyor.checks.schema_file import (
    HEADER,
    INFER_HINT,
    MAX_SCHEMA_BYTES,
    load_schema,
    save_schema,
    schema_from_yaml,
    schema_to_yaml,
)
from conveyor.checks.schema_types import (
    DEFAULT_SEVERITY,
    RANGED,
    SCHEMA_VERSION,
    AnomalyKind,
    Bound,
    ColumnSchema,
    LogicalType,
    Schema,
)

__all__ = [
    "DEFAULT_SEVERITY",
    "HEADER",
    "INFER_HINT",
    "MAX_SCHEMA_BYTES",
    "RANGED",
    "SCHEMA_VERSION",
    "AnomalyKind",
    "Bound",
    "ColumnSchema",
    "InferOptions",
    "LogicalType",
    "Schema",
    "infer_column",
    "infer_schema",
    "load_schema",
    "save_schema",
    "schema_from_yaml",
    "schema_to_yaml",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class InferOptions:
    max_categories: int = 50  # text with at most this many distinct values is categorical,
    max_domain: int = 1000  # ...or with at most this many, if they are few per row:
    category_ratio: float = 0.01  # distinct values <= this share of the non-null values
    null_slack: float = 1.5  # allowed nulls: max(observed * slack, observed + margin)
    null_margin: float = 0.01
    min_rows_unique: int = 20  # fewer non-null values never make a column unique
    # Inferred numeric ranges are widened by this share of the observed span on each side
    # (never across zero), so that a fresh sample's extremes are not flagged as anomalies.
    range_margin: float = 0.1


# --- inference ----------------------------------------------------------------------------


def infer_schema(data: Any, options: InferOptions | None = None) -> Schema:
    """The schema ``data`` (a DataFrame or pyarrow Table) satisfies, column by column."""
    frame = as_frame(data)
    opts = options or InferOptions()
    names = column_names(frame)
    columns = tuple(infer_column(n, frame.iloc[:, i], opts) for i, n in enumerate(names))
    return Schema(columns=columns, rows=len(frame))


def infer_column(name: str, series: pd.Series, options: InferOptions) -> ColumnSchema:
    rows = len(series)
    nulls = int(series.isna().sum())
    allowed = _allowed_nulls(nulls, rows, options)
    kind = value_kind(series)
    if rows - nulls == 0:
        return _infer_without_values(name, series, kind, allowed)
    if kind == ValueKind.INTEGER:
        values = numbers(series)
        low, high = _widened(float(values.min()), float(values.max()), options)
        return ColumnSchema(
            name=name,
            type=LogicalType.INTEGER,
            max_null_fraction=allowed,
            min=math.floor(low),
            max=math.ceil(high),
            unique=_is_unique(series, rows - nulls, options),
        )
    if kind == ValueKind.FLOAT:
        finite = (values := numbers(series))[np.isfinite(values)]
        lo, hi = (
            _widened(float(finite.min()), float(finite.max()), options)
            if finite.size
            else (None, None)
        )
        return ColumnSchema(
            name=name, type=LogicalType.FLOAT, max_null_fraction=allowed, min=lo, max=hi
        )
    if kind == ValueKind.DATETIME:
        return _infer_datetime(name, series, allowed)
    if kind in (ValueKind.BOOLEAN, ValueKind.OTHER):  # timedelta, period...: held as text
        logical = LogicalType.BOOLEAN if kind == ValueKind.BOOLEAN else LogicalType.TEXT
        return ColumnSchema(name=name, type=logical, max_null_fraction=allowed)
    return _infer_text(name, series, rows - nulls, allowed, options)


def _widened(lo: float, hi: float, options: InferOptions) -> tuple[float, float]:
    margin = (hi - lo) * options.range_margin
    low, high = lo - margin, hi + margin
    if lo >= 0 > low:
        low = 0.0  # a column never seen negative stays non-negative
    if hi <= 0 < high:
        high = 0.0
    return low, high


def _allowed_nulls(nulls: int, rows: int, options: InferOptions) -> float:
    if rows == 0:
        return 1.0  # nothing observed, nothing to hold new data to
    if nulls == 0:
        return 0.0
    observed = nulls / rows
    allowed = max(observed * options.null_slack, observed + options.null_margin)
    return min(1.0, max(observed, round(allowed, 6)))  # six decimals read well in YAML


def _is_unique(series: pd.Series, present: int, options: InferOptions) -> bool:
    return present >= options.min_rows_unique and distinct_count(series) == present


def _infer_without_values(
    name: str, series: pd.Series, kind: ValueKind, allowed: float
) -> ColumnSchema:
    """No row or only nulls: the type from the dtype, no range; ``null`` when it says nothing."""
    by_kind = {
        ValueKind.INTEGER: LogicalType.INTEGER,
        ValueKind.FLOAT: LogicalType.FLOAT,
        ValueKind.BOOLEAN: LogicalType.BOOLEAN,
        ValueKind.DATETIME: LogicalType.DATETIME,
        ValueKind.STRING: LogicalType.TEXT,
        ValueKind.OTHER: LogicalType.TEXT,
    }
    if isinstance(series.dtype, pd.CategoricalDtype):
        domain = tuple(sorted(str(c) for c in series.dtype.categories))
        return ColumnSchema(
            name=name, type=LogicalType.CATEGORICAL, max_null_fraction=allowed, domain=domain
        )
    logical = by_kind.get(kind, LogicalType.NULL)
    return ColumnSchema(name=name, type=logical, max_null_fraction=allowed)


def _infer_datetime(name: str, series: pd.Series, allowed: float) -> ColumnSchema:
    stamps = timestamps(series)
    aware = getattr(series.dtype, "tz", None) is not None

    def bound(stamp: pd.Timestamp) -> datetime:
        value: datetime = stamp.to_pydatetime()
        return value.replace(tzinfo=UTC) if aware else value

    # Bounds are kept to the microsecond, rounded outwards so every value stays inside.
    lo, hi = bound(stamps.min().floor("us")), bound(stamps.max().ceil("us"))
    return ColumnSchema(
        name=name, type=LogicalType.DATETIME, max_null_fraction=allowed, min=lo, max=hi
    )


def _infer_text(
    name: str, series: pd.Series, present: int, allowed: float, options: InferOptions
) -> ColumnSchema:
    distinct = distinct_count(series)
    unique = present >= options.min_rows_unique and distinct == present
    if isinstance(series.dtype, pd.CategoricalDtype):
        categorical = distinct <= options.max_domain
    else:
        few = distinct <= options.max_categories
        sparse = distinct <= options.max_domain and distinct <= options.category_ratio * present
        categorical = not unique and (few or sparse)
    if not categorical:
        return ColumnSchema(
            name=name, type=LogicalType.TEXT, max_null_fraction=allowed, unique=unique
        )
    domain = tuple(sorted(str(v) for v in text_counts(series).index))
    return ColumnSchema(
        name=name, type=LogicalType.CATEGORICAL, max_null_fraction=allowed, domain=domain
    )
