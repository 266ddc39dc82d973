"""Reference profiles: what drift needs to know about a column, small enough to store as JSON.

:func:`profile` summarises every column of a reference DataFrame once, so later drift checks
(:func:`conveyor.checks.drift.drift`) need not reload the reference data. A column is
*numeric* or *categorical* by its dtype, with the rules of Evidently's data definition:
floats are numeric, integers are numeric unless they hold at most 10 distinct values, and
booleans, strings, ``category`` and object columns of text are categorical. Datetime and
other dtypes are *unsupported* (reported, never compared).

Null, NaN and infinite values are left out and counted (``ignored``). A numeric column keeps
its count, mean, population std, min and max, its distinct values when it has at most 20,
the reference's 10 quantile bins (inner edges and counts, for PSI and binned
Jensen-Shannon), a 20-bin histogram for reports, and its sorted values: every value when it
has at most ``quantiles`` of them, else ``quantiles`` evenly spaced quantiles (the value at
each ``(i + 0.5) / quantiles`` rank), which is what Wasserstein and KS then compare with.
A categorical column keeps the counts of its ``max_categories`` most frequent values by
their text form (``1`` and ``1.0`` are one label) and the count of the rest.

Summaries built by :func:`summarise` with no limits are exact; drift uses them for raw data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.errors import UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
TextArray = npt.NDArray[np.object_]

PROFILE_FORMAT = "conveyor.profile"
PROFILE_VERSION = 1
INTEGER_CATEGORICAL_LIMIT = 10  # integer columns with at most this many values are categories
DISCRETE_LIMIT = 20  # numeric columns with at most this many values are counted by value
QUANTILE_BINS = 10
HISTOGRAM_BINS = 20
_NUMBERS_IN_OBJECTS = {"integer", "floating", "mixed-integer-float", "decimal"}
_TEXT_IN_OBJECTS = {"string", "empty", "boolean"}
_UNSUPPORTED_IN_OBJECTS = {"datetime", "datetime64", "date", "time", "timedelta", "period"}
_REBUILD = "re-create it with conveyor.checks.profile.profile(reference).to_json()"


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True, kw_only=True)
class NumericColumn:
    """A numeric column: statistics over its ``count`` finite values (0.0 when there are none)."""

    count: int
    ignored: int  # null, NaN and +-inf values left out
    mean: float
    std: float  # population std (ddof=0), as Evidently norms Wasserstein by
    min: float
    max: float
    n_unique: int
    values: FloatArray  # sorted: every value when exact, else evenly spaced quantiles
    exact: bool
    distinct_values: FloatArray | None  # when n_unique <= DISCRETE_LIMIT
    distinct_counts: IntArray | None
    bin_edges: FloatArray  # inner edges of the quantile bins, open at both ends
    bin_counts: IntArray
    hist_edges: FloatArray
    hist_counts: IntArray
    kind: ColumnKind = ColumnKind.NUMERIC


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoricalColumn:
    """A categorical column: counts by text form (a stored profile keeps the most frequent)."""

    count: int
    ignored: int  # null values left out
    n_unique: int
    labels: TextArray
    counts: IntArray
    other: int = 0  # values of the categories a profile left out (beyond max_categories)
    mixed: bool = False  # values of several types, compared by their text form
    kind: ColumnKind = ColumnKind.CATEGORICAL


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsupportedColumn:
    dtype: str
    reason: str
    count: int = 0
    ignored: int = 0
    kind: ColumnKind = ColumnKind.UNSUPPORTED


ColumnProfile = NumericColumn | CategoricalColumn | UnsupportedColumn


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """Per-column summaries of a reference table; ``to_json`` / ``from_json`` round-trip it."""

    rows: int
    columns: Mapping[str, ColumnProfile] = field(default_factory=dict)
    quantiles: int | None = None  # None: exact (every value kept)
    max_categories: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "rows": self.rows,
            "quantiles": self.quantiles,
            "max_categories": self.max_categories,
            "columns": [{"name": n, **_column_json(c)} for n, c in self.columns.items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        """The profile ``to_json`` wrote; UsageError naming what is wrong otherwise."""
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise UsageError(
                "not a Conveyor profile (no 'format': 'conveyor.profile')", hint=_REBUILD
            )
        if data.get("version") != PROFILE_VERSION:
            raise UsageError(
                f"profile format version {data.get('version')!r} is not supported "
                f"(this Conveyor reads version {PROFILE_VERSION})",
                hint=_REBUILD,
            )
        try:
            columns = {str(c["name"]): _column_from_json(c) for c in data["columns"]}
            return cls(
                rows=int(data["rows"]),
                columns=columns,
                quantiles=data.get("quantiles"),
                max_categories=data.get("max_categories"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"damaged profile: {type(exc).__name__}: {exc}", hint=_REBUILD
            ) from None


def profile(data: pd.DataFrame, *, quantiles: int = 1000, max_categories: int = 10_000) -> Profile:
    """Summarise every column of ``data`` for later drift checks (see the module docstring).

    Numeric columns with more than ``quantiles`` values keep that many quantiles, so
    Wasserstein and KS from the profile are approximations (see docs/drift.md); categorical
    columns keep their ``max_categories`` most frequent values.
    """
    if quantiles < 2 or max_categories < 1:
        raise UsageError(
            f"profile: quantiles={quantiles}, max_categories={max_categories}",
            hint="use quantiles >= 2 and max_categories >= 1 (defaults 1000 and 10000)",
        )
    frame = checked_frame(data, "reference")
    columns = {
        str(name): compress(summarise(frame[name]), quantiles, max_categories)
        for name in frame.columns
    }
    return Profile(
        rows=len(frame), columns=columns, quantiles=quantiles, max_categories=max_categories
    )


def checked_frame(data: object, role: str) -> pd.DataFrame:
    """``data`` if it is a DataFrame with rows, columns and unique column names."""
    if not isinstance(data, pd.DataFrame):
        raise UsageError(
            f"the {role} data is a {type(data).__name__}, not a pandas DataFrame",
            hint="pass a DataFrame (pyarrow tables: table.to_pandas())",
        )
    if data.shape[1] == 0 or data.shape[0] == 0:
        raise UsageError(
            f"the {role} data is empty ({data.shape[0]} rows, {data.shape[1]} columns)",
            hint=f"drift compares two tables with rows; check where the {role} data comes from",
        )
    names = [str(c) for c in data.columns]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(
            f"the {role} data has more than one column named {', '.join(map(repr, twice))}",
            hint="give every column a distinct name",
        )
    return data


def column_kind(series: pd.Series) -> tuple[ColumnKind, str]:
    """The kind drift treats ``series`` as, and why when it is unsupported."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or pd.api.types.is_bool_dtype(dtype):
        return ColumnKind.CATEGORICAL, ""
    if pd.api.types.is_integer_dtype(dtype):
        few = series.nunique(dropna=True) <= INTEGER_CATEGORICAL_LIMIT
        return (ColumnKind.CATEGORICAL if few else ColumnKind.NUMERIC), ""
    if pd.api.types.is_float_dtype(dtype):
        return ColumnKind.NUMERIC, ""
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in _NUMBERS_IN_OBJECTS:
            return column_kind(pd.to_numeric(series, errors="coerce"))
        if inferred not in _UNSUPPORTED_IN_OBJECTS:
            return ColumnKind.CATEGORICAL, ""
    return ColumnKind.UNSUPPORTED, (
        f"dtype {dtype} is not compared for drift; exclude the column, "
        "or convert it to numbers or text"
    )


def summarise(series: pd.Series, kind: ColumnKind | None = None) -> ColumnProfile:
    """The exact summary of one column, as ``kind`` (the reference's) or by its own dtype."""
    own, reason = column_kind(series)
    if kind is None and own == ColumnKind.UNSUPPORTED:
        return UnsupportedColumn(dtype=str(series.dtype), reason=reason)
    if (kind or own) == ColumnKind.CATEGORICAL and own != ColumnKind.UNSUPPORTED:
        return _categorical(series)
    if own != ColumnKind.UNSUPPORTED and _is_numeric_dtype(series):
        return _numeric(series)
    return UnsupportedColumn(
        dtype=str(series.dtype),
        reason=f"{kind} in the reference but {series.dtype} here; "
        "fix the type where the data is produced, or cast it",
        count=int(series.notna().sum()),
    )


def compress(column: ColumnProfile, quantiles: int, max_categories: int) -> ColumnProfile:
    """``column`` with at most ``quantiles`` values or ``max_categories`` categories kept."""
    if isinstance(column, NumericColumn) and column.count > quantiles:
        ranks = -(-(2 * np.arange(quantiles) + 1) * column.count // (2 * quantiles)) - 1
        return replace(column, values=column.values[ranks], exact=False)
    if isinstance(column, CategoricalColumn) and column.labels.size > max_categories:
        kept = np.argsort(-column.counts, kind="stable")[:max_categories]
        counts = column.counts[kept]
        other = column.other + int(column.counts.sum() - counts.sum())
        return replace(column, labels=column.labels[kept], counts=counts, other=other)
    return column


def _is_numeric_dtype(series: pd.Series) -> bool:
    if pd.api.types.is_object_dtype(series.dtype):
        return pd.api.types.infer_dtype(series, skipna=True) in _NUMBERS_IN_OBJECTS | {"empty"}
    return pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(
        series.dtype, pd.CategoricalDtype
    )


def _numeric(series: pd.Series) -> NumericColumn:
    if pd.api.types.is_object_dtype(series.dtype):
        series = pd.to_numeric(series, errors="coerce")
    raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = raw[np.isfinite(raw)]  # a copy, sorted in place
    values.sort()
    n = int(values.size)
    new = np.ones(n, dtype=bool)
    np.not_equal(values[1:], values[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    discrete = starts.size <= DISCRETE_LIMIT
    ranks = -(-np.arange(1, QUANTILE_BINS) * n // QUANTILE_BINS) - 1  # inverted-CDF deciles
    bin_edges = np.unique(values[ranks]) if n else values
    with np.errstate(over="ignore", invalid="ignore"):  # sums of values near the float limit
        mean, std = (float(values.mean()), float(values.std())) if n else (0.0, 0.0)
    hist_edges = _histogram_edges(values)
    return NumericColumn(
        count=n,
        ignored=int(raw.size - n),
        mean=mean,
        std=std,
        min=float(values[0]) if n else 0.0,
        max=float(values[-1]) if n else 0.0,
        n_unique=int(starts.size),
        values=values,
        exact=True,
        distinct_values=values[starts] if discrete else None,
        distinct_counts=np.diff(np.append(starts, n)).astype(np.int64) if discrete else None,
        bin_edges=bin_edges,
        bin_counts=counts_in_bins(values, bin_edges),
        hist_edges=hist_edges,
        hist_counts=np.diff(np.searchsorted(values, hist_edges[1:-1]), prepend=0, append=n),
    )


def _histogram_edges(values: FloatArray) -> FloatArray:
    if not values.size:
        return np.zeros(0)
    low, high = float(values[0]), float(values[-1])
    if low == high or not math.isfinite(high - low):
        return np.array([low, high])
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


def counts_in_bins(sorted_values: FloatArray, inner_edges: FloatArray) -> IntArray:
    """Counts in the bins (-inf, e0], (e0, e1], ..., (e_last, inf) of sorted values."""
    at_or_below = np.searchsorted(sorted_values, inner_edges, side="right")
    return np.diff(at_or_below, prepend=0, append=sorted_values.size).astype(np.int64)


def _categorical(series: pd.Series) -> CategoricalColumn:
    ignored = int(series.isna().sum())
    mixed = pd.api.types.is_object_dtype(series.dtype) and (
        pd.api.types.infer_dtype(series, skipna=True) not in _TEXT_IN_OBJECTS | _NUMBERS_IN_OBJECTS
    )
    if mixed:
        series = series.dropna().astype(str)
    try:
        counts = series.value_counts(dropna=True, sort=False)
    except TypeError:  # unhashable values (lists, dicts): their text form
        counts, mixed = series.dropna().astype(str).value_counts(sort=False), True
    values = np.asarray(counts.to_numpy(), dtype=np.int64)
    labels = text_labels(counts.index)
    if isinstance(series.dtype, pd.CategoricalDtype):  # it counts unused categories too
        labels, values = labels[values > 0], values[values > 0]
    by_text = mixed or not pd.api.types.is_string_dtype(counts.index.dtype)
    if by_text and pd.Index(labels).has_duplicates:  # 1 and 1.0, or 1 and "1": one text form
        merged = pd.Series(values).groupby(labels, sort=False).sum()
        labels = merged.index.to_numpy(dtype=object)
        values = np.asarray(merged.to_numpy(), dtype=np.int64)
    return CategoricalColumn(
        count=int(values.sum()),
        ignored=ignored,
        n_unique=int(labels.size),
        labels=labels,
        counts=values,
        mixed=mixed,
    )


def text_labels(index: pd.Index) -> TextArray:
    """The text form of category values; whole floats print as integers (``1.0`` is ``"1"``)."""
    if pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype):
        numbers = index.to_numpy(dtype=np.float64)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & (np.abs(numbers) < 2**53)
        as_int = np.where(whole, numbers, 0).astype(np.int64).astype(str)
        return np.where(whole, as_int, numbers.astype(str)).astype(object)
    return index.astype(str).to_numpy(dtype=object)


def _column_json(column: ColumnProfile) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in fields(column):
        value = getattr(column, item.name)
        out[item.name] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


def _column_from_json(data: Mapping[str, Any]) -> ColumnProfile:
    kind = ColumnKind(data["kind"])
    if kind == ColumnKind.UNSUPPORTED:
        return UnsupportedColumn(
            dtype=str(data["dtype"]),
            reason=str(data["reason"]),
            count=int(data["count"]),
            ignored=int(data["ignored"]),
        )
    if kind == ColumnKind.CATEGORICAL:
        return CategoricalColumn(
            count=int(data["count"]),
            ignored=int(data["ignored"]),
            n_unique=int(data["n_unique"]),
            labels=np.array([str(v) for v in data["labels"]], dtype=object),
            counts=_ints(data["counts"]),
            other=int(data["other"]),
            mixed=bool(data["mixed"]),
        )
    distinct = data["distinct_values"] is not None
    return NumericColumn(
        count=int(data["count"]),
        ignored=int(data["ignored"]),
        mean=float(data["mean"]),
        std=float(data["std"]),
        min=float(data["min"]),
        max=float(data["max"]),
        n_unique=int(data["n_unique"]),
        values=_floats(data["values"]),
        exact=bool(data["exact"]),
        distinct_values=_floats(data["distinct_values"]) if distinct else None,
        distinct_counts=_ints(data["distinct_counts"]) if distinct else None,
        bin_edges=_floats(data["bin_edges"]),
        bin_counts=_ints(data["bin_counts"]),
        hist_edges=_floats(data["hist_edges"]),
        hist_counts=_ints(data["hist_counts"]),
    )


def _floats(value: Any) -> FloatArray:
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _ints(value: Any) -> IntArray:
    return np.asarray(value, dtype=np.int64).reshape(-1)
