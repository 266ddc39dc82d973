"""Batch prediction's row checks: each input row against the package's signature and schema.

The package's signature (and its data schema, when it holds ``schema.yaml``) gives the columns
to check (:func:`input_columns`); :func:`check_rows` checks a chunk of them vectorised, column
by column, and says which rows are bad and why, one reason per row. A :class:`Tally` keeps the
problems of every chunk checked, with a few example values each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.datasets import utc_naive
from conveyor.checks.schema import AnomalyKind, ColumnSchema, LogicalType, Schema, load_schema
from conveyor.errors import UsageError
from conveyor.registry.package_read import Package

SCHEMA_FILE = "schema.yaml"
MAX_EXAMPLES = 5
SHOWN_CHARS = 60
FLOATS, INTEGERS = frozenset({"float", "double"}), frozenset({"integer", "long"})
# Column types that hold a missing value (NaN, None, NaT), as the prediction service decides.
HOLDS_MISSING = FLOATS | {"string", "datetime"}
TEXT_TYPES = frozenset({"string", "datetime"})  # read from CSV as text, then parsed
TYPES = FLOATS | INTEGERS | TEXT_TYPES | {"boolean"}
LIMITS = {"integer": (-(2**31), 2**31 - 1), "float": (-3.4028234e38, 3.4028234e38)}
# A column only the data schema names is type-checked as the nearest signature type.
SCHEMA_TYPES = {
    LogicalType.INTEGER: "long",
    LogicalType.FLOAT: "double",
    LogicalType.BOOLEAN: "boolean",
    LogicalType.DATETIME: "datetime",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Rows of one column that failed one check, with a few of their values."""

    column: str
    kind: AnomalyKind
    what: str
    rows: int
    examples: tuple[str, ...] = ()

    def describe(self, column: bool = True) -> str:
        noun = "row" if self.rows == 1 else "rows"
        shown = ", ".join(repr(e) for e in self.examples)
        text = f"{self.rows:,} {noun}: {self.what}" + (f" (e.g. {shown})" if shown else "")
        return f"{self.column}: {text}" if column else text

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": str(self.kind),
            "what": self.what,
            "rows": self.rows,
            "examples": list(self.examples),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InputColumn:
    """A column checked row by row: a model input (``type`` set) or a data schema column."""

    name: str
    type: str | None  # MLflow type (for a data schema column: the nearest one, or None)
    feature: bool = True  # a model input (in the signature), not only a data schema column
    required: bool = True
    schema: ColumnSchema | None = None

    @property
    def holds_missing(self) -> bool:
        if self.schema is not None and self.schema.max_null_fraction <= 0:
            return False
        if not self.feature:
            return True
        return not self.required and self.type in HOLDS_MISSING


def input_columns(package: Package, schema: Schema | None) -> tuple[InputColumn, ...]:
    """The model's input columns from the package signature, then the data schema's others."""
    raw = (package.mlmodel.get("signature") or {}).get("inputs")
    try:
        specs: list[dict[str, Any]] = json.loads(raw) if isinstance(raw, str) else list(raw or ())
        names = [(str(s["name"]), str(s["type"]), bool(s.get("required", True))) for s in specs]
    except (ValueError, TypeError, KeyError, AttributeError):
        names = []
    if not names:
        raise UsageError(
            f"the package of {package.ref} has no readable input signature",
            hint="package the version again with 'conveyor model package'",
        )
    unknown = [f"{n} ({t})" for n, t, _ in names if t not in TYPES]
    if unknown:
        raise UsageError(
            f"{package.ref}: signature column types {unknown} cannot be read from a file",
            hint=f"batch prediction reads {', '.join(sorted(TYPES))} columns",
        )
    by_name = {c.name: c for c in schema.columns} if schema else {}
    model = [InputColumn(name=n, type=t, required=r, schema=by_name.get(n)) for n, t, r in names]
    taken = {c.name for c in model}
    extra = [
        InputColumn(name=c.name, type=SCHEMA_TYPES.get(c.type), feature=False, schema=c)
        for c in by_name.values()
        if c.name not in taken
    ]
    return (*model, *extra)


def package_schema(package: Package) -> Schema | None:
    """The package's data schema (``schema.yaml``, listed in its manifest), if it has one."""
    rel = package.manifest.get("schema")
    rel = rel if isinstance(rel, str) else SCHEMA_FILE
    if rel not in package.manifest.get("files", {}):
        return None
    return load_schema(package.directory / rel)


Found = tuple[AnomalyKind, np.ndarray[Any, Any], str, bool]  # kind, rows, what, show the value


def _shown(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("null").str.slice(0, SHOWN_CHARS)


def _convert(kind: str | None, s: pd.Series) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    """The column as ``kind`` (NaN / NaT where it is not one), and which values are not."""
    present = s.notna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):  # e.g. Parquet dictionary columns
        s = s.astype(s.dtype.categories.dtype)
    if kind is None or kind == "string":
        if kind is None or isinstance(s.dtype, pd.StringDtype):
            return s, np.zeros(len(s), bool)
        if s.dtype == object:
            text = s.map(lambda v: isinstance(v, str), na_action="ignore")
            return s, present & ~text.fillna(True).to_numpy(dtype=bool)
        return s, present  # numbers, booleans, dates: not text
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(s.dtype):
            return s, np.zeros(len(s), bool)
        mapped = s.astype("string").str.lower().map({"true": True, "false": False})
        return mapped, present & mapped.isna().to_numpy()
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            parsed = s
        else:
            parsed = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
        if getattr(parsed.dtype, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed, present & parsed.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        return s, present
    numeric = pd.api.types.is_numeric_dtype(s.dtype)
    numbers = s if numeric else pd.to_numeric(s, errors="coerce")
    wrong = present & numbers.isna().to_numpy()
    if kind in INTEGERS:
        floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            wrong |= present & ~wrong & (~np.isfinite(floats) | (np.floor(floats) != floats))
    return numbers, wrong


def check_column(column: InputColumn, s: pd.Series) -> tuple[pd.Series, list[Found]]:
    """The column converted to its type, and the rows that fail a check (vectorised)."""
    kind = column.type
    null = s.isna().to_numpy()
    values, wrong = _convert(kind, s)
    found: list[Found] = []
    if not column.holds_missing:
        found.append((AnomalyKind.NULLS, null, "missing value in a required column", False))
    found.append((AnomalyKind.TYPE, wrong, f"expected {kind}, got", True))
    ok = ~null & ~wrong
    schema = column.schema
    lo, hi = (schema.min, schema.max) if schema is not None else (None, None)
    if kind in FLOATS | INTEGERS:
        floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(floats)
        if kind in FLOATS and not (schema is not None and schema.allow_infinite):
            found.append((AnomalyKind.NON_FINITE, ok & ~finite, "not a finite number:", True))
        limits = LIMITS.get(kind)
        if limits is not None:
            outside = ok & finite & ((floats < limits[0]) | (floats > limits[1]))
            found.append((AnomalyKind.OUT_OF_RANGE, outside, f"out of range for {kind}:", True))
        if lo is not None or hi is not None:
            found.append(
                (AnomalyKind.OUT_OF_RANGE, ok & _outside(floats, lo, hi), _range(lo, hi), True)
            )
    elif kind == "datetime" and (lo is not None or hi is not None):
        bounds = [None if b is None else utc_naive(b) for b in (lo, hi)]
        found.append(
            (AnomalyKind.OUT_OF_RANGE, ok & _outside(values, *bounds), _range(lo, hi), True)
        )
    if schema is not None and schema.type == LogicalType.CATEGORICAL and schema.domain:
        unseen = ~s.astype("string").isin(list(schema.domain)).to_numpy(dtype=bool)
        found.append((AnomalyKind.UNSEEN_CATEGORY, ok & unseen, "not in the domain:", True))
    return values, [f for f in found if f[1].any()]


def _outside(values: Any, lo: Any, hi: Any) -> np.ndarray[Any, Any]:
    """Values below ``lo`` or above ``hi`` (None: no bound); NaN and NaT are never outside."""
    none = np.zeros(len(values), bool)
    with np.errstate(invalid="ignore"):
        low = np.asarray(values < lo, dtype=bool) if lo is not None else none
        high = np.asarray(values > hi, dtype=bool) if hi is not None else none
    outside: np.ndarray[Any, Any] = low | high
    return outside


def _range(lo: Any, hi: Any) -> str:
    return f"outside [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]:"


@dataclass(slots=True)
class Tally:
    """Problems over every chunk checked: rows and a few example values per column and kind."""

    found: dict[tuple[str, AnomalyKind], Problem] = field(default_factory=dict)

    def add(self, column: str, kind: AnomalyKind, what: str, rows: int, examples: Any) -> None:
        old = self.found.get((column, kind))
        seen = old.examples if old else ()
        fresh = [e for e in dict.fromkeys(examples) if e not in seen]
        self.found[(column, kind)] = Problem(
            column=column,
            kind=kind,
            what=old.what if old else what,
            rows=rows + (old.rows if old else 0),
            examples=(*seen, *fresh)[:MAX_EXAMPLES],
        )

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(self.found.values())


def check_rows(
    frame: pd.DataFrame, columns: Sequence[InputColumn], tally: Tally
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], dict[str, pd.Series]]:
    """Which rows of ``frame`` are bad, why (one text per row), and the converted columns."""
    rows = len(frame)
    bad = np.zeros(rows, bool)
    reasons = np.full(rows, "", dtype=object)
    typed: dict[str, pd.Series] = {}
    for column in columns:
        if column.name not in frame.columns:
            continue  # a data schema column the input does not have: not a model input
        s = frame[column.name]
        typed[column.name], found = check_column(column, s)
        for kind, mask, what, show in found:
            text: Any = f"{column.name}: {what}"
            examples: list[str] = []
            if show:  # the reason names the value: "a: expected double, got 'abc'"
                values = _shown(s[mask])
                examples = values.iloc[: MAX_EXAMPLES * 4].tolist()
                text = (text + " '" + values + "'").to_numpy(dtype=object)
            here = reasons[mask]
            reasons[mask] = np.where(here == "", text, here + "; " + text)
            bad |= mask
            summary = what.removesuffix(":").removesuffix(", got")
            tally.add(column.name, kind, summary, int(mask.sum()), examples)
    return bad, reasons, typed
