"""The schema file: versioned, commented, human-editable YAML (``docs/schema.md``).

:func:`schema_to_yaml` and :func:`save_schema` write it; :func:`load_schema` and
:func:`schema_from_yaml` read it back and raise :class:`~conveyor.errors.ConfigError` naming
the file and the key path when it is invalid.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from conveyor.checks.schema_types import (
    RANGED,
    SCHEMA_VERSION,
    AnomalyKind,
    Bound,
    ColumnSchema,
    LogicalType,
    Schema,
)
from conveyor.config import safe_load_limited
from conveyor.core.checks import Severity
from conveyor.errors import ConfigError, did_you_mean

MAX_SCHEMA_BYTES = 10_000_000
INFER_HINT = "infer one with 'conveyor data schema infer DATA -o schema.yaml'"

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
