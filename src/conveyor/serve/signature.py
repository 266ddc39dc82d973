"""The model's input signature, and request values turned into typed numpy columns.

Every protocol (v2 tensors, MLflow's dataframe forms, CSV) ends here: a mapping of column name
to the values sent for it. :meth:`Signature.convert` checks each value against the column's
type and returns one numpy array per column, in the signature's order, or refuses the request
naming the column, the row and what was expected.

Choices (see docs/serving.md): a column the signature does not have is refused (400); a
missing value (``null``, an absent key, an empty CSV field, NaN) is accepted only in a column
whose spec says ``required: false`` and whose type can hold it (float, double, string,
datetime); infinity is always refused (422).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from conveyor.errors import UsageError, did_you_mean
from conveyor.serve.problems import Refused, bad_request, shown, type_name, unprocessable

Array = npt.NDArray[Any]

DTYPES: dict[str, np.dtype[Any]] = {
    "boolean": np.dtype(np.bool_),
    "integer": np.dtype(np.int32),
    "long": np.dtype(np.int64),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
    "string": np.dtype(object),
    "datetime": np.dtype("datetime64[ns]"),
}
V2_DATATYPES = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "datetime": "BYTES",
}
FLOATS = frozenset({"float", "double"})
INTEGERS = frozenset({"integer", "long"})
NUMERIC = FLOATS | INTEGERS | {"boolean"}
INT32 = np.iinfo(np.int32)
FLOAT32_MAX = float(np.finfo(np.float32).max)
SHOWN_NAMES = 5


class Block(Sequence[Array]):
    """Typed columns that are the rows of one C-ordered ``(columns, rows)`` float64 matrix.

    A request of plain numbers for an all-double signature becomes one matrix in one numpy
    call; keeping it lets the model take it whole (its transpose is the column-major
    ``(rows, columns)`` matrix that stacking the columns would build) and lets micro-batching
    join requests with one concatenation instead of one per column. Its items, the columns,
    are views of the matrix's rows."""

    __slots__ = ("matrix",)

    def __init__(self, matrix: Array) -> None:
        self.matrix = matrix

    def __len__(self) -> int:
        return len(self.matrix)

    @overload
    def __getitem__(self, index: int) -> Array: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Array]: ...

    def __getitem__(self, index: int | slice) -> Array | Sequence[Array]:
        return self.matrix[index] if isinstance(index, int) else list(self.matrix[index])

    def __iter__(self) -> Iterator[Array]:
        return iter(self.matrix)


def join_columns(parts: Sequence[Sequence[Array]]) -> Sequence[Array]:
    """The typed columns of several requests, their rows one after another (a micro-batch, a
    file of the prediction log): blocks in one concatenation, other columns one by one."""
    blocks = [p for p in parts if isinstance(p, Block)]
    if len(blocks) == len(parts):
        return Block(np.concatenate([b.matrix for b in blocks], axis=1))
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


class _Absent:
    """A key a record did not have (told apart from an explicit ``null`` only in messages)."""

    def __repr__(self) -> str:
        return "absent"


ABSENT: Any = _Absent()
_FLOAT_TYPES = frozenset({float, int})
_MISSING_TYPES = (type(None), _Absent)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnSpec:
    """One input column: its name, MLflow type and whether a value is required."""

    name: str
    type: str
    required: bool = True

    @property
    def dtype(self) -> np.dtype[Any]:
        return DTYPES[self.type]

    @property
    def holds_missing(self) -> bool:
        """Whether a missing value is accepted (and becomes NaN, None or NaT)."""
        return not self.required and self.type not in INTEGERS and self.type != "boolean"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "required": self.required}


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """The ordered input columns a model accepts."""

    columns: tuple[ColumnSpec, ...]
    positions: dict[str, int] = field(init=False, repr=False, compare=False)
    order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    all_double: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.columns:
            raise UsageError("a signature needs at least one input column")
        positions = {c.name: i for i, c in enumerate(self.columns)}
        if len(positions) != len(self.columns):
            raise UsageError("the signature names a column twice", hint="column names are unique")
        for c in self.columns:
            if c.type not in DTYPES:
                raise UsageError(
                    f"column '{c.name}' has type '{c.type}', which the service cannot serve",
                    hint=f"use one of {', '.join(DTYPES)}",
                )
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "order", tuple(positions))
        object.__setattr__(self, "all_double", all(c.type == "double" for c in self.columns))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> bool:
        return all(c.type in NUMERIC for c in self.columns)

    @classmethod
    def from_mlflow(cls, inputs: str | Sequence[Mapping[str, Any]]) -> Signature:
        """From MLflow's ``signature.inputs`` (a JSON string or its parsed list)."""
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs
        try:
            columns = tuple(
                ColumnSpec(
                    name=str(s["name"]), type=str(s["type"]), required=bool(s.get("required", True))
                )
                for s in specs
            )
        except (KeyError, TypeError) as exc:
            raise UsageError(
                f"the model signature is not a list of named column specs: {exc}",
                hint="serve a package built by 'conveyor model package', whose signature has "
                "one {name, type} per column",
            ) from None
        return cls(columns=columns)

    @classmethod
    def from_frame(cls, frame: Any) -> Signature:
        """One required column per column of a pandas DataFrame, typed by its dtype."""
        from conveyor.registry.package import mlflow_type

        return cls(
            columns=tuple(
                ColumnSpec(name=str(name), type=mlflow_type(dtype, str(name)))
                for name, dtype in frame.dtypes.items()
            )
        )

    def to_mlflow(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.columns]

    def convert(self, raw: Mapping[str, Sequence[Any]], rows: int) -> list[Array]:
        """Typed columns in signature order from ``raw`` (column name -> ``rows`` values)."""
        unknown = [name for name in raw if name not in self.positions]
        if unknown:
            raise self.unknown_columns(unknown)
        arrays: list[Array] = []
        missing: list[str] = []
        for spec in self.columns:
            values = raw.get(spec.name)
            if values is None:
                if spec.required:
                    missing.append(spec.name)
                    continue
                values = [None] * rows
            arrays.append(convert_values(spec, values))
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise unprocessable(
                f"missing column '{missing[0]}'{more}",
                field=missing[0],
                hint="send every required input column; GET /v2/models/<name> lists them",
            )
        return arrays

    def convert_rows(self, data: Sequence[Sequence[Any]], names: Sequence[str]) -> Sequence[Array]:
        """Typed columns from rows of values in the order of ``names`` (known, unique).

        When every column is a double and every value a plain finite number, the rows become
        one matrix in one numpy call (a :class:`Block`); otherwise each column is checked on
        its own, which names the first offending value."""
        if (
            self.all_double
            and len(names) == len(self.columns)
            and set(map(type, itertools.chain.from_iterable(data))) <= _FLOAT_TYPES
        ):
            try:
                matrix = np.array(data, dtype=np.float64)
            except OverflowError:
                matrix = None
            if matrix is not None and np.isfinite(matrix).all():
                if tuple(names) != self.order:
                    where = {n: j for j, n in enumerate(names)}
                    matrix = matrix[:, [where[n] for n in self.order]]
                return Block(np.ascontiguousarray(matrix.T))
        return self.convert(dict(zip(names, zip(*data, strict=True), strict=True)), len(data))

    def unknown_columns(self, unknown: Sequence[str]) -> Refused:
        first = str(unknown[0])
        suggestion = did_you_mean(first, self.names)
        listed = ", ".join(f"'{shown(str(n))[1:-1]}'" for n in unknown[:SHOWN_NAMES])
        more = f" and {len(unknown) - SHOWN_NAMES} more" if len(unknown) > SHOWN_NAMES else ""
        noun = "column" if len(unknown) == 1 else "columns"
        return bad_request(
            f"unknown {noun} {listed}{more}: the model has no such input",
            field=first,
            hint=suggestion
            or "send only the model's input columns; GET /v2/models/<name> lists them",
        )


# -- one column ------------------------------------------------------------------------------


def _refuse(spec: ColumnSpec, row: int, what: str) -> Refused:
    return unprocessable(f"column '{spec.name}', row {row}: {what}", field=spec.name)


def _no_value(spec: ColumnSpec, row: int, value: Any) -> Refused:
    said = "has no value" if value is ABSENT else "is null"
    if spec.type in INTEGERS or spec.type == "boolean":
        why = f"a {spec.type} column cannot hold a missing value"
    else:
        why = "the column is required"
    return _refuse(spec, row, f"{said}; {why}")


def _wrong(spec: ColumnSpec, row: int, value: Any, expected: str) -> Refused:
    if isinstance(value, _MISSING_TYPES):
        return _no_value(spec, row, value)
    return _refuse(spec, row, f"expected {expected}, got {type_name(value)} {shown(value)}")


def convert_values(spec: ColumnSpec, values: Sequence[Any]) -> Array:
    """The values of one column (plain JSON values) as a numpy array of the column's dtype."""
    if spec.type in FLOATS:
        return _floats(spec, values)
    if spec.type in INTEGERS:
        return _integers(spec, values)
    if spec.type == "boolean":
        kinds = set(map(type, values))
        if kinds <= {bool}:
            return np.array(values, dtype=np.bool_)
        row = next(i for i, v in enumerate(values) if type(v) is not bool)
        raise _wrong(spec, row, values[row], "true or false")
    return _texts(spec, values)


def _floats(spec: ColumnSpec, values: Sequence[Any]) -> Array:
    if set(map(type, values)) <= _FLOAT_TYPES:
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:
            row = next(i for i, v in enumerate(values) if abs(v) > 1e308)
            raise _refuse(spec, row, "the number is out of range") from None
    else:
        arr = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            kind = type(v)
            if kind is float or kind is int:
                try:
                    arr[i] = v
                except OverflowError:
                    raise _refuse(spec, i, "the number is out of range") from None
            elif isinstance(v, _MISSING_TYPES) and spec.holds_missing:
                arr[i] = math.nan
            else:
                raise _wrong(spec, i, v, "a number")
    return _finite(spec, arr)


def _finite(spec: ColumnSpec, arr: Array) -> Array:
    """``arr`` (float64) without infinities, and without NaN unless the column holds missing
    values; narrowed to float32 for a float column."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        inf = bad[np.isinf(arr[bad])]
        if len(inf):
            raise _refuse(spec, int(inf[0]), "infinity is not accepted")
        if not spec.holds_missing:
            raise _refuse(spec, int(bad[0]), "NaN is not accepted; the column is required")
    if spec.type == "float":
        over = finite & (np.abs(np.where(finite, arr, 0.0)) > FLOAT32_MAX)
        if over.any():
            raise _refuse(spec, int(np.flatnonzero(over)[0]), "out of range for a float column")
        return arr.astype(np.float32)
    return arr


def _integers(spec: ColumnSpec, values: Sequence[Any]) -> Array:
    arr: Array
    if set(map(type, values)) <= {int}:
        try:
            arr = np.array(values, dtype=np.int64)
        except OverflowError:
            row = next(i for i, v in enumerate(values) if abs(v) > 2**62)
            raise _refuse(spec, row, "the integer is out of range") from None
    else:
        arr = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            kind = type(v)
            if kind is int or (kind is float and math.isfinite(v) and v.is_integer()):
                try:
                    arr[i] = v
                except OverflowError:
                    raise _refuse(spec, i, "the integer is out of range") from None
            else:
                raise _wrong(spec, i, v, "an integer")
    if spec.type == "integer":
        out = (arr < INT32.min) | (arr > INT32.max)
        if out.any():
            raise _refuse(spec, int(np.flatnonzero(out)[0]), "out of range for an integer column")
        return arr.astype(np.int32)
    return arr


def _texts(spec: ColumnSpec, values: Sequence[Any]) -> Array:
    kinds = set(map(type, values))
    if not kinds <= {str}:
        for i, v in enumerate(values):
            if type(v) is not str and not (isinstance(v, _MISSING_TYPES) and spec.holds_missing):
                raise _wrong(spec, i, v, "a string")
        values = [None if isinstance(v, _Absent) else v for v in values]
    if spec.type == "string":
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    return _datetimes(spec, values)


def _datetimes(spec: ColumnSpec, values: Sequence[str | None]) -> Array:
    import pandas as pd

    try:
        parsed = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        for i, v in enumerate(values):
            try:
                pd.to_datetime(v, utc=True, format="ISO8601")  # type: ignore[arg-type]
            except (ValueError, TypeError, OverflowError):
                raise _refuse(spec, i, f"expected an ISO 8601 date-time, got {shown(v)}") from None
        raise unprocessable(
            f"column '{spec.name}': not ISO 8601 date-times", field=spec.name
        ) from None
    if not spec.holds_missing and parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise _no_value(spec, row, values[row])
    return np.asarray(parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]"))


# -- typed arrays (v2 binary tensors) --------------------------------------------------------


def convert_array(spec: ColumnSpec, arr: Array, field_name: str) -> Array:
    """A typed array (decoded from a v2 tensor) checked and cast to the column's dtype."""
    kind = arr.dtype.kind
    if spec.type in FLOATS and kind in "fiu":
        return _finite(spec, arr.astype(np.float64))
    if spec.type in INTEGERS and kind == "f":
        integral = np.isfinite(arr) & (np.floor(arr) == arr) & (np.abs(arr) < 2.0**62)
        if not integral.all():
            row = int(np.flatnonzero(~integral)[0])
            raise _refuse(spec, row, f"expected an integer, got {shown(float(arr[row]))}")
        arr = arr.astype(np.int64)
        kind = "i"
    if spec.type in INTEGERS and kind in "iu":
        wide = arr.astype(np.int64)
        if (kind == "u" and arr.dtype.itemsize == 8 and (arr > np.iinfo(np.int64).max).any()) or (
            spec.type == "integer" and ((wide < INT32.min) | (wide > INT32.max)).any()
        ):
            raise unprocessable(
                f"input '{field_name}': a value is out of range for a {spec.type} column",
                field=field_name,
            )
        return wide.astype(spec.dtype)
    if spec.type == "boolean" and kind == "b":
        return arr
    if spec.type in ("string", "datetime") and kind == "O":
        return convert_values(spec, arr.tolist())
    raise unprocessable(
        f"input '{field_name}': {arr.dtype} values for a {spec.type} column",
        field=field_name,
        hint=f"send datatype {V2_DATATYPES[spec.type]}",
    )
