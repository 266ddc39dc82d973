"""The schema's values: logical column types, anomaly kinds, :class:`ColumnSchema`, :class:`Schema`.

A :class:`Schema` lists the expected columns in order; each :class:`ColumnSchema` says the
column's logical type, how many nulls it may hold, and, by type, its range, its domain of
categories, whether its values are unique and whether infinities are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from conveyor.core.checks import Severity
from conveyor.errors import UsageError

SCHEMA_VERSION = 1


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
