"""Hypothesis strategies that synthesise data from a schema, for property tests of features.

from hypothesis import given
from conveyor.testing.strategies import frames

@given(frames("schemas/applications.yaml", max_rows=50))
def test_features_never_produce_nan(df): ...
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from conveyor.checks.schema import ColumnSchema, LogicalType, Schema, load_schema

INT_SPAN = 10**9


def values(column: ColumnSchema) -> st.SearchStrategy[Any]:
    """Values that the schema accepts for ``column`` (never null)."""
    kind = column.type
    if kind == LogicalType.INTEGER:
        lo = int(column.min) if column.min is not None else -INT_SPAN  # type: ignore[arg-type]
        hi = int(column.max) if column.max is not None else INT_SPAN  # type: ignore[arg-type]
        return st.integers(lo, hi)
    if kind == LogicalType.FLOAT:
        return st.floats(
            min_value=float(column.min) if column.min is not None else -1e9,  # type: ignore[arg-type]
            max_value=float(column.max) if column.max is not None else 1e9,  # type: ignore[arg-type]
            allow_nan=False,
            allow_infinity=column.allow_infinite,
        )
    if kind == LogicalType.BOOLEAN:
        return st.booleans()
    if kind == LogicalType.CATEGORICAL and column.domain:
        return st.sampled_from(list(column.domain))
    if kind == LogicalType.DATETIME:
        start = column.min if isinstance(column.min, datetime) else datetime(1970, 1, 1)
        end = column.max if isinstance(column.max, datetime) else datetime(2100, 1, 1)
        return st.datetimes(
            min_value=start.replace(tzinfo=None), max_value=end.replace(tzinfo=None)
        )
    return st.text(min_size=1, max_size=20)


def cells(column: ColumnSchema) -> st.SearchStrategy[Any]:
    base = values(column)
    return st.one_of(st.none(), base) if column.max_null_fraction > 0 else base


def frames(
    schema: Schema | str | Path, *, min_rows: int = 1, max_rows: int = 30
) -> st.SearchStrategy[pd.DataFrame]:
    """DataFrames whose every value fits ``schema``, with the schema's columns in order.
    (Null fractions and uniqueness are the property test's business, not enforced here.)"""
    loaded = schema if isinstance(schema, Schema) else load_schema(Path(schema))

    def build(n: int) -> st.SearchStrategy[pd.DataFrame]:
        columns = [st.lists(cells(c), min_size=n, max_size=n) for c in loaded.columns]
        return st.tuples(*columns).map(
            lambda cols: pd.DataFrame(
                {c.name: v for c, v in zip(loaded.columns, cols, strict=True)}
            )
        )

    return st.integers(min_rows, max_rows).flatmap(build)
