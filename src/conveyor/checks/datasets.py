"""Tabular data for checks: reading CSV and Parquet, and reading the values of one column.

Checks work on pandas DataFrames; :func:`as_frame` also accepts a pyarrow Table, and
:func:`read_table` reads a file (or a directory of Parquet files) by its suffix. The column
helpers below say what kind of values a column holds (:func:`value_kind`) and hand them out
in a form the checks compare vectorised: numbers as numpy arrays, datetimes as naive UTC
timestamps, everything else by its text form.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from conveyor.errors import UsageError

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
FORMATS_HINT = "use a .csv, .parquet or .pq file, or a directory of Parquet files"


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV file, a Parquet file or a directory of Parquet files (hive partitions kept).

    Raises UsageError naming the file for a missing path, an unknown suffix, or a file that
    cannot be parsed.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory", hint="check the path to the data")
    if path.is_dir():
        return _read_parquet_dir(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _read_csv(path)
    if suffix in PARQUET_SUFFIXES:
        return _read_arrow(path, lambda: pq.read_table(path))
    shown = f"'{suffix}'" if suffix else "(no suffix)"
    raise UsageError(f"{path}: unknown data format {shown}", hint=FORMATS_HINT)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UsageError(
            f"{path}: the CSV file is empty (not even a header row)",
            hint="write a header row naming the columns, then the data",
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{path}: cannot read as CSV: {reason}",
            hint="the file must be comma-separated UTF-8 text with a header row; "
            "re-export it, or save it as Parquet",
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read_parquet_dir(path: Path) -> pd.DataFrame:
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in PARQUET_SUFFIXES
        and p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise UsageError(f"{path}: the directory holds no .parquet or .pq files", hint=FORMATS_HINT)
    return _read_arrow(
        path,
        lambda: pads.dataset(
            [str(f) for f in files],
            format="parquet",
            partitioning="hive",
            partition_base_dir=str(path),
        ).to_table(),
    )


def _read_arrow(path: Path, read: Any) -> pd.DataFrame:
    try:
        return as_frame(read())
    except pa.ArrowException as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{path}: cannot read as Parquet: {reason}",
            hint="the file is damaged, truncated or not Parquet (or the directory's files have "
            "different columns); write it again",
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def as_frame(data: Any) -> pd.DataFrame:
    """``data`` as a DataFrame: a DataFrame as is, a pyarrow Table or RecordBatch converted."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pa.Table | pa.RecordBatch):
        frame: pd.DataFrame = data.to_pandas()
        return frame
    raise UsageError(
        f"expected a pandas DataFrame or a pyarrow Table, not {type(data).__name__}",
        hint="read files with conveyor.checks.datasets.read_table(path)",
    )


def column_names(frame: pd.DataFrame) -> list[str]:
    """The column names as text, in order; names must be unique to be checked."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        twice = sorted(n for n, k in Counter(names).items() if k > 1)
        raise UsageError(
            f"the data has more than one column named {', '.join(repr(n) for n in twice)}",
            hint="give every column a distinct name before checking it",
        )
    return names


class ValueKind(StrEnum):
    """What a column's values are, from its dtype (or, for object columns, its values)."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    STRING = "string"  # text, category dtype, or a mix of types (compared by text form)
    EMPTY = "empty"  # an object column without any value: nothing says what it holds
    OTHER = "other"  # timedelta, period, interval, complex...


_OBJECT_KINDS = {
    "empty": ValueKind.EMPTY,
    "boolean": ValueKind.BOOLEAN,
    "integer": ValueKind.INTEGER,
    "floating": ValueKind.FLOAT,
    "mixed-integer-float": ValueKind.FLOAT,
    "decimal": ValueKind.FLOAT,
    "datetime": ValueKind.DATETIME,
    "datetime64": ValueKind.DATETIME,
    "date": ValueKind.DATETIME,
}


def value_kind(series: pd.Series) -> ValueKind:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype):
        return ValueKind.STRING
    if pd.api.types.is_bool_dtype(dtype):
        return ValueKind.BOOLEAN
    if pd.api.types.is_integer_dtype(dtype):
        return ValueKind.INTEGER
    if pd.api.types.is_float_dtype(dtype):
        return ValueKind.FLOAT
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ValueKind.DATETIME
    if dtype == np.dtype(object):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        return _OBJECT_KINDS.get(inferred, ValueKind.STRING)
    return ValueKind.OTHER


def numbers(series: pd.Series) -> np.ndarray[Any, Any]:
    """The non-null values of a numeric column (or an object column of numbers) as an array.

    Integer columns give an integer array, the rest float64. Values that are not numbers
    (possible in object columns only) are dropped; compare with the null count to find them.
    """
    if series.dtype == np.dtype(object) or isinstance(series.dtype, pd.StringDtype):
        series = pd.to_numeric(series, errors="coerce")
    if pd.api.types.is_integer_dtype(series.dtype):
        kept = series.dropna() if series.hasnans else series
        as_numpy: Any = getattr(series.dtype, "numpy_dtype", None) or series.dtype
        ints: np.ndarray[Any, Any] = kept.to_numpy(dtype=as_numpy)
        return ints
    values: np.ndarray[Any, Any] = series.to_numpy(dtype=np.float64, na_value=np.nan)
    kept_values: np.ndarray[Any, Any] = values[~np.isnan(values)]
    return kept_values


def timestamps(series: pd.Series) -> pd.Series:
    """The non-null values of a datetime column (or of ISO 8601 text) as naive UTC timestamps.

    Text that is not a date is dropped; compare with the null count to find it.
    """
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series, errors="coerce", format="ISO8601", utc=True)
    series = series.dropna()
    if getattr(series.dtype, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def utc_naive(value: Any) -> pd.Timestamp:
    """A datetime bound as a naive UTC timestamp (naive values are taken as UTC)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def value_counts(series: pd.Series) -> pd.Series:
    """Counts of the non-null values, most frequent first (ties in order of appearance)."""
    try:
        counts = series.value_counts(dropna=True, sort=False)
    except TypeError:  # unhashable values (lists, dicts) in an object column
        counts = series.dropna().astype(str).value_counts(sort=False)
    counts = counts[counts > 0]  # a category dtype counts its unused categories too
    return counts.sort_values(ascending=False, kind="stable")


def text_counts(series: pd.Series) -> pd.Series:
    """Like :func:`value_counts`, by text form (``1`` and ``"1"`` are one value)."""
    counts = value_counts(series)
    if isinstance(counts.index.dtype, pd.StringDtype) or (
        counts.index.dtype == object and pd.api.types.infer_dtype(counts.index) == "string"
    ):
        return counts
    counts.index = pd.Index([str(v) for v in counts.index], dtype=object)
    if counts.index.has_duplicates:
        counts = counts.groupby(level=0, sort=False).sum()
        counts = counts.sort_values(ascending=False, kind="stable")
    return counts


def distinct_count(series: pd.Series) -> int:
    try:
        return int(series.nunique(dropna=True))
    except TypeError:
        return int(series.dropna().astype(str).nunique())


def duplicated(series: pd.Series) -> np.ndarray[Any, Any]:
    """A mask of the non-null values that repeat an earlier value of the column."""
    try:
        repeats = series.duplicated(keep="first").to_numpy()
    except TypeError:
        repeats = series.astype(str).duplicated(keep="first").to_numpy()
    return np.asarray(repeats & series.notna().to_numpy(), dtype=bool)


def json_value(value: Any) -> str | int | float | bool:
    """A value fit for JSON and for messages: infinities and datetimes become text."""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
