"""MLflow's scoring protocol: ``POST /invocations`` with ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` JSON, or a CSV body with a header line.

Each form becomes a mapping of column name to values, checked by the signature; the answer is
``{"predictions": [...]}`` as MLflow's scoring server writes it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.serve import json_codec
from conveyor.serve.problems import Refused, bad_request, shown, type_name, unprocessable
from conveyor.serve.signature import ABSENT, FLOATS, INTEGERS, Array, ColumnSpec, Signature

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
SPLIT_KEYS = frozenset({"columns", "data", "index"})
JSON = "application/json"
CSV = "text/csv"


@dataclass(frozen=True, slots=True, kw_only=True)
class Raw:
    """A payload's values before checking: by column, or as rows in the order of ``names``."""

    rows: int
    columns: Mapping[str, Sequence[Any]] | None = None
    data: Sequence[Sequence[Any]] = ()
    names: Sequence[str] = ()

    def convert(self, signature: Signature) -> Sequence[Array]:
        if self.columns is None:
            return signature.convert_rows(self.data, self.names)
        return signature.convert(self.columns, self.rows)


def parse(body: bytes, media_type: str, signature: Signature, max_rows: int) -> Sequence[Array]:
    """Typed columns from an ``/invocations`` body (``media_type`` is JSON or CSV)."""
    if media_type == CSV:
        raw = csv_columns(body, signature, max_rows)
    else:
        raw = json_columns(json_codec.loads(body), signature, max_rows)
    return raw.convert(signature)


def check_rows(rows: int, max_rows: int, where: str) -> int:
    if rows == 0:
        raise bad_request(f"{where} has no rows", field=where, hint="send at least one row")
    if rows > max_rows:
        raise Refused(
            413,
            f"{where} has {rows} rows; at most {max_rows} are accepted in one request",
            field=where,
            hint="split the batch into several requests",
        )
    return rows


def json_columns(doc: Any, signature: Signature, max_rows: int) -> Raw:
    if not isinstance(doc, dict):
        raise bad_request(
            f"the body is a JSON {type_name(doc)}; expected an object with one of "
            f"{', '.join(FORMATS)}",
            hint='e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}',
        )
    params = doc.get("params")
    if params:
        raise bad_request(
            "this model takes no params", field="params", hint="remove the 'params' key"
        )
    unknown = [k for k in doc if k not in FORMATS and k != "params"]
    if unknown:
        raise bad_request(
            f"unknown key '{shown(str(unknown[0]))[1:-1]}' in the body",
            field=str(unknown[0]),
            hint=f"use exactly one of {', '.join(FORMATS)}",
        )
    given = [k for k in FORMATS if k in doc]
    if len(given) != 1:
        raise bad_request(
            "the body must have exactly one of "
            + ", ".join(FORMATS)
            + (f"; it has {', '.join(given)}" if given else ""),
            hint='e.g. {"dataframe_records": [{"column": value, ...}]}',
        )
    key = given[0]
    value = doc[key]
    if key == "dataframe_split":
        return _split(value, signature, max_rows)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise bad_request(
                f"dataframe_records is a {type_name(value)}; expected an array of objects",
                field=key,
            )
        return _records(value, signature, max_rows, key)
    return _tensor_input(value, signature, max_rows, key)


def _split(value: Any, signature: Signature, max_rows: int) -> Raw:
    where = "dataframe_split"
    if not isinstance(value, dict):
        raise bad_request(
            f"{where} is a {type_name(value)}; expected an object with 'columns' and 'data'",
            field=where,
        )
    unknown = [k for k in value if k not in SPLIT_KEYS]
    if unknown:
        raise bad_request(
            f"unknown key '{shown(str(unknown[0]))[1:-1]}' in {where}",
            field=f"{where}.{unknown[0]}",
            hint="dataframe_split has 'columns', 'data' and optionally 'index'",
        )
    if "data" not in value:
        raise bad_request(f"{where} has no 'data'", field=f"{where}.data")
    columns = value.get("columns")
    if columns is None:
        columns = signature.names
    elif isinstance(columns, list) and tuple(columns) == signature.order:
        pass  # the signature's own columns, in its order: nothing more to check
    elif not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise bad_request(
            f"{where}.columns must be an array of column names", field=f"{where}.columns"
        )
    elif len(set(columns)) != len(columns):
        twice = next(c for c in columns if columns.count(c) > 1)
        raise bad_request(
            f"{where}.columns names '{shown(twice)[1:-1]}' twice", field=f"{where}.columns"
        )
    return _rows(value["data"], columns, signature, max_rows, f"{where}.data")


def _rows(data: Any, columns: list[str], signature: Signature, max_rows: int, where: str) -> Raw:
    """Row-major arrays of values, in the order of ``columns``."""
    if not isinstance(data, list):
        raise bad_request(f"{where} is a {type_name(data)}; expected an array of rows", field=where)
    rows = check_rows(len(data), max_rows, where)
    if not signature.positions.keys() >= set(columns):
        raise signature.unknown_columns([c for c in columns if c not in signature.positions])
    width = len(columns)
    if set(map(type, data)) != {list} or set(map(len, data)) != {width}:
        i = next(i for i, r in enumerate(data) if not isinstance(r, list) or len(r) != width)
        row = data[i]
        got = f"{len(row)} values" if isinstance(row, list) else f"a {type_name(row)}"
        raise bad_request(
            f"{where}[{i}] has {got}; expected an array of {width} values, one per column",
            field=f"{where}[{i}]",
        )
    return Raw(rows=rows, data=data, names=columns)


def _records(records: list[Any], signature: Signature, max_rows: int, where: str) -> Raw:
    rows = check_rows(len(records), max_rows, where)
    if set(map(type, records)) != {dict}:
        i = next(i for i, r in enumerate(records) if not isinstance(r, dict))
        raise bad_request(
            f"{where}[{i}] is a {type_name(records[i])}; expected an object of column values",
            field=f"{where}[{i}]",
        )
    names: set[str] = set().union(*records)
    unknown = sorted(n for n in names if n not in signature.positions)
    if unknown:
        raise signature.unknown_columns(unknown)
    return Raw(rows=rows, columns={n: [r.get(n, ABSENT) for r in records] for n in names})


def _tensor_input(value: Any, signature: Signature, max_rows: int, where: str) -> Raw:
    """``instances`` / ``inputs`` (TensorFlow Serving's forms): rows as objects, rows as
    arrays in signature order, columns as an object of arrays, or one column's values."""
    if isinstance(value, dict):
        return _columnar(value, signature, max_rows, where)
    if not isinstance(value, list):
        raise bad_request(
            f"{where} is a {type_name(value)}; expected an array of rows or an object of columns",
            field=where,
        )
    check_rows(len(value), max_rows, where)
    kinds = set(map(type, value))
    if kinds == {dict}:
        return _records(value, signature, max_rows, where)
    if kinds == {list}:
        return _rows(value, signature.names, signature, max_rows, where)
    if len(signature.columns) == 1 and not kinds & {dict, list}:
        return Raw(rows=len(value), columns={signature.columns[0].name: value})
    raise bad_request(
        f"{where} mixes {', '.join(sorted({type_name(v) for v in value}))}; "
        "expected rows that are all objects or all arrays",
        field=where,
    )


def _columnar(value: dict[str, Any], signature: Signature, max_rows: int, where: str) -> Raw:
    unknown = [n for n in value if n not in signature.positions]
    if unknown:
        raise signature.unknown_columns(unknown)
    if not value:
        raise bad_request(f"{where} has no columns", field=where, hint="send at least one row")
    if not any(isinstance(v, list) for v in value.values()):
        return Raw(rows=1, columns={n: [v] for n, v in value.items()})  # one row of scalars
    lengths = {n: len(v) if isinstance(v, list) else -1 for n, v in value.items()}
    rows = max(lengths.values())
    odd = next((n for n, length in lengths.items() if length != rows), None)
    if odd is not None:
        got = f"{lengths[odd]} values" if lengths[odd] >= 0 else "a single value"
        raise bad_request(
            f"{where}.{shown(odd)[1:-1]} has {got}, but other columns have {rows}",
            field=f"{where}.{odd}",
            hint="every column needs one value per row",
        )
    check_rows(rows, max_rows, where)
    return Raw(rows=rows, columns=value)


# -- CSV -------------------------------------------------------------------------------------


def csv_columns(body: bytes, signature: Signature, max_rows: int) -> Raw:
    """Columns of a CSV body whose first line names the columns. An empty field is a missing
    value, except in a string column, where it is the empty string."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_request(f"the CSV body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise bad_request(f"the CSV body is malformed: {exc}") from None
    lines = [line for line in lines if line]
    if not lines:
        raise bad_request("the CSV body is empty", hint="send a header line and at least one row")
    header, data = lines[0], lines[1:]
    check_rows(len(data), max_rows, "the CSV body")
    if len(set(header)) != len(header):
        twice = next(c for c in header if header.count(c) > 1)
        raise bad_request(f"the CSV header names '{shown(twice)[1:-1]}' twice", field=twice)
    unknown = [c for c in header if c not in signature.positions]
    if unknown:
        raise signature.unknown_columns(unknown)
    width = len(header)
    for i, line in enumerate(data):
        if len(line) != width:
            raise bad_request(
                f"CSV line {i + 2} has {len(line)} fields; the header has {width}",
                field=f"line {i + 2}",
            )
    raw: dict[str, Sequence[Any]] = {}
    for j, name in enumerate(header):
        spec = signature.columns[signature.positions[name]]
        raw[name] = [_csv_value(spec, line[j], i) for i, line in enumerate(data)]
    return Raw(rows=len(data), columns=raw)


_TRUE = frozenset({"true", "1", "t", "yes"})
_FALSE = frozenset({"false", "0", "f", "no"})


def _csv_value(spec: ColumnSpec, text: str, row: int) -> Any:
    if spec.type == "string":
        return text
    if text == "":
        return None
    try:
        if spec.type in FLOATS:
            return float(text)
        if spec.type in INTEGERS:
            return int(text)
    except ValueError:
        expected = "a number" if spec.type in FLOATS else "an integer"
        raise unprocessable(
            f"column '{spec.name}', row {row}: expected {expected}, got {shown(text)}",
            field=spec.name,
        ) from None
    if spec.type == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise unprocessable(
            f"column '{spec.name}', row {row}: expected true or false, got {shown(text)}",
            field=spec.name,
        )
    return text  # datetime: parsed with the column


def response(predictions: Array) -> bytes:
    return json_codec.dumps({"predictions": predictions})
