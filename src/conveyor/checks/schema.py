"""Data schemas: inferred from a table, kept as versioned, human-editable YAML.

A :class:`Schema` lists the expected columns in order; each :class:`ColumnSchema` says the
column's logical type, how many nulls it may hold, and, by type, its range, its domain of
categories, whether its values are unique and whether infinities are allowed.
:func:`infer_schema` writes down what the data shows; a person then edits the YAML
(``docs/schema.md``) and :func:`conveyor.checks.validation.validate` checks new data against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

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
from conveyor.config import safe_load_limited
from conveyor.core.checks import Severity
from conveyor.errors import ConfigError, UsageError, did_you_mean

SCHEMA_VERSION = 1
MAX_SCHEMA_BYTES = 10_000_000
INFER_HINT = "infer one with 'conveyor data schema infer DATA -o schema.yaml'"


class LogicalType(StrEnum):
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"  # few distinct values, listed in the domain
    TEXT = "text"  # free text or identifiers
    DATETIME = "datetime"
    NULL = "null"  # no value was ever seen and the dtype does not say what it holds


RANGED = (LogicalType.INTEGER, LogicalType.FLOAT, LogicalType.DATETIME)


class AnomalyKind(StrEnum):
    MISSING_COLUMN = "missing_column"
    EXTRA_COLUMN = "extra_column"
    TYPE = "type"
    NULLS = "nulls"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"
    DUPLICATE = "duplicate"
    NON_FINITE = "non_finite"


DEFAULT_SEVERITY = {kind: Severity.ERROR for kind in AnomalyKind} | {
    AnomalyKind.EXTRA_COLUMN: Severity.WARNING
}

Bound = int | float | datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnSchema:
    name: str
    type: LogicalType
    max_null_fraction: float = 0.0  # the allowed share of nulls (NaN counts as null), 0..1
    min: Bound | None = None  # integer, float and datetime columns; inclusive
    max: Bound | None = None
    domain: tuple[str, ...] | None = None  # categorical: allowed values by their text form
    unique: bool = False  # no non-null value may repeat
    allow_infinite: bool = False  # float: +-inf are values, not anomalies
    severity: dict[AnomalyKind, Severity] = field(default_factory=dict)  # per-kind overrides


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    columns: tuple[ColumnSchema, ...]
    version: int = SCHEMA_VERSION  # of the YAML format
    rows: int | None = None  # rows it was inferred from; informational
    severity: dict[AnomalyKind, Severity] = field(default_factory=dict)  # per-kind overrides

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise UsageError(f"schema names column(s) {twice} more than once")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema | None:
        return next((c for c in self.columns if c.name == name), None)

    def severity_of(self, kind: AnomalyKind, column: ColumnSchema | None = None) -> Severity:
        """The column's override, else the schema's, else the default for ``kind``."""
        if column is not None and kind in column.severity:
            return column.severity[kind]
        return self.severity.get(kind, DEFAULT_SEVERITY[kind])


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


# --- inference ---------------------------------------------------------------------------


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


# --- YAML form ---------------------------------------------------------------------------

HEADER = """\
# Conveyor data schema, format version {version}{source}.
# Edit it by hand, then check data with: conveyor data validate DATA --schema THIS_FILE
# Each column: name, type (integer | float | boolean | categorical | text | datetime | null),
#   max_null_fraction (share of nulls allowed, 0..1), min / max (integer, float, datetime;
#   inclusive), domain (categorical: the allowed values), unique (no value may repeat),
#   allow_infinite (float), severity (anomaly kind -> error | warning | info).
# Unknown keys are errors. The full reference is docs/schema.md.
"""


class _Dumper(yaml.SafeDumper):
    """Block mappings, one key per line; lists of plain values on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, list | dict) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def schema_to_yaml(schema: Schema) -> str:
    """The schema as commented, human-editable YAML that :func:`schema_from_yaml` reads back."""
    doc: dict[str, Any] = {"version": schema.version}
    if schema.rows is not None:
        doc["rows"] = schema.rows
    if schema.severity:
        doc["severity"] = {str(k): str(v) for k, v in schema.severity.items()}
    doc["columns"] = [_column_doc(c) for c in schema.columns]
    source = f", inferred from {schema.rows:,} rows" if schema.rows is not None else ""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=96)
    return HEADER.format(version=schema.version, source=source) + body


def _column_doc(column: ColumnSchema) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": column.name,
        "type": str(column.type),
        "max_null_fraction": column.max_null_fraction,
    }
    for key, value in (("min", column.min), ("max", column.max)):
        if value is not None:
            doc[key] = value.isoformat() if isinstance(value, datetime) else value
    if column.domain is not None:
        doc["domain"] = list(column.domain)
    if column.unique:
        doc["unique"] = True
    if column.allow_infinite:
        doc["allow_infinite"] = True
    if column.severity:
        doc["severity"] = {str(k): str(v) for k, v in column.severity.items()}
    return doc


def save_schema(schema: Schema, path: Path | str) -> None:
    Path(path).write_text(schema_to_yaml(schema), encoding="utf-8")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ColumnFile(_Model):
    name: str
    type: LogicalType
    max_null_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    min: Any = None  # checked against the type in _to_column, with a precise message
    max: Any = None
    domain: list[Any] | None = None
    unique: StrictBool = False
    allow_infinite: StrictBool = False
    severity: dict[AnomalyKind, Severity] = Field(default_factory=dict)


class _SchemaFile(_Model):
    version: int
    rows: int | None = Field(default=None, ge=0)
    severity: dict[AnomalyKind, Severity] = Field(default_factory=dict)
    columns: list[_ColumnFile]


def load_schema(path: Path | str) -> Schema:
    """Read and check a schema file; ConfigError names the file and the key path."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such schema file", hint=INFER_HINT) from None
    if size > MAX_SCHEMA_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SCHEMA_BYTES // 1_000_000} MB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text", hint=INFER_HINT) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return schema_from_yaml(text, str(path))


def schema_from_yaml(text: str, path: str = "schema.yaml") -> Schema:
    # Schemas list category domains, so they may hold many more values than a project file.
    data = safe_load_limited(text, path, max_nodes=5_000_000)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a schema is a mapping with 'version' and 'columns', "
            f"not {type(data).__name__}",
            hint=INFER_HINT,
        )
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: version: schema format {version} is newer than this Conveyor reads "
            f"({SCHEMA_VERSION})",
            hint="upgrade Conveyor, or infer the schema again with this version",
        )
    try:
        model = _SchemaFile.model_validate(data)
    except ValidationError as exc:
        raise _format_error(exc.errors(), path, data) from None
    if model.version < 1:
        raise ConfigError(f"{path}: version: must be {SCHEMA_VERSION}")
    columns = [_to_column(c, f"{path}: columns[{i}]") for i, c in enumerate(model.columns)]
    seen: dict[str, int] = {}
    for i, column in enumerate(columns):
        if column.name in seen:
            raise ConfigError(
                f"{path}: columns[{i}].name: '{column.name}' is also columns[{seen[column.name]}]",
                hint="each column appears once; remove or rename one",
            )
        seen[column.name] = i
    return Schema(
        columns=tuple(columns), version=model.version, rows=model.rows, severity=model.severity
    )


def _to_column(model: _ColumnFile, where: str) -> ColumnSchema:
    where = f"{where} ('{model.name}')"
    kind = model.type
    for key in ("min", "max"):
        if getattr(model, key) is not None and kind not in RANGED:
            raise ConfigError(
                f"{where}.{key}: a {kind} column has no range",
                hint="only integer, float and datetime columns take min and max; remove it",
            )
    lo, hi = _bound(model.min, kind, f"{where}.min"), _bound(model.max, kind, f"{where}.max")
    if lo is not None and hi is not None and _order_key(lo) > _order_key(hi):
        raise ConfigError(f"{where}: min {lo} is greater than max {hi}", hint="swap them")
    if (model.domain is None) == (kind == LogicalType.CATEGORICAL):
        raise ConfigError(
            f"{where}.domain: "
            + ("a categorical column needs one" if model.domain is None else f"a {kind} has none"),
            hint="domain lists the allowed values of a categorical column, and only of one",
        )
    if model.allow_infinite and kind != LogicalType.FLOAT:
        raise ConfigError(f"{where}.allow_infinite: only float columns hold infinities")
    return ColumnSchema(
        name=model.name,
        type=kind,
        max_null_fraction=model.max_null_fraction,
        min=lo,
        max=hi,
        domain=None if model.domain is None else _domain(model.domain, f"{where}.domain"),
        unique=model.unique,
        allow_infinite=model.allow_infinite,
        severity=model.severity,
    )


def _bound(value: Any, kind: LogicalType, where: str) -> Bound | None:
    if value is None:
        return None
    if kind == LogicalType.DATETIME:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(
            f"{where}: expected an ISO 8601 date-time, not {value!r}",
            hint="write it as '2024-01-31T12:00:00' (add '+00:00' for a time zone)",
        )
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    raise ConfigError(
        f"{where}: expected a finite number, not {value!r}",
        hint="write a plain number; leave the key out for no limit",
    )


def _order_key(bound: Bound) -> Any:
    if isinstance(bound, datetime):
        return bound.astimezone(UTC).replace(tzinfo=None) if bound.tzinfo else bound
    return bound


def _domain(values: list[Any], where: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for i, value in enumerate(values):
        if isinstance(value, list | dict) or value is None:
            raise ConfigError(
                f"{where}[{i}]: expected a plain value, not {value!r}",
                hint="list each allowed value as text; nulls are governed by max_null_fraction",
            )
        out[str(value)] = None
    return tuple(out)


def _format_error(errors: list[Any], path: str, data: Any) -> ConfigError:
    """One message from pydantic's errors: the key path as written, with a suggestion."""
    err = max(errors, key=lambda e: (e.get("type") == "extra_forbidden", len(e.get("loc", ()))))
    loc = list(err.get("loc", ()))
    shown: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            shown[-1:] = [f"{shown[-1] if shown else ''}[{part}]"]
            node = node[part]
        elif isinstance(node, dict) and part in node:
            shown.append(str(part))
            node = node[part]
        elif err.get("type") == "extra_forbidden" or (isinstance(part, str) and part != "[key]"):
            shown.append(str(part))  # an unknown or a missing key
            break
        else:
            break
    keypath = ".".join(shown) or "(top level)"
    if err.get("type") == "extra_forbidden":
        model = _ColumnFile if loc[:1] == ["columns"] and len(loc) == 3 else _SchemaFile
        known = list(model.model_fields)
        return ConfigError(
            f"{path}: {keypath}: unknown key",
            hint=did_you_mean(str(loc[-1]), known) or f"allowed keys here: {', '.join(known)}",
        )
    hint = "see docs/schema.md for the form of each key"
    expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
    if expected and isinstance(err.get("input"), str):
        hint = did_you_mean(err["input"], expected) or hint
    return ConfigError(f"{path}: {keypath}: {err.get('msg', 'invalid value')}", hint=hint)
