"""Request values checked against the signature: typed columns, or a refusal naming the column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conveyor.errors import UsageError
from conveyor.serve.problems import Refused
from conveyor.serve.signature import (
    ABSENT,
    Block,
    ColumnSpec,
    Signature,
    convert_array,
    join_columns,
)

SIG = Signature(
    columns=(
        ColumnSpec(name="age", type="double"),
        ColumnSpec(name="income", type="float", required=False),
        ColumnSpec(name="children", type="long"),
        ColumnSpec(name="small", type="integer"),
        ColumnSpec(name="owner", type="boolean"),
        ColumnSpec(name="region", type="string"),
        ColumnSpec(name="note", type="string", required=False),
        ColumnSpec(name="seen", type="datetime"),
    )
)
GOOD = {
    "age": [31.5, 40],
    "income": [1000.0, None],
    "children": [2, 0],
    "small": [1, -3],
    "owner": [True, False],
    "region": ["north", "south"],
    "note": ["x", None],
    "seen": ["2026-01-02T03:04:05Z", "2026-01-02"],
}


def refusal(raw: dict, sig: Signature = SIG) -> Refused:
    with pytest.raises(Refused) as info:
        sig.convert(raw, len(next(iter(raw.values()))))
    return info.value


def test_values_become_typed_columns_in_signature_order() -> None:
    cols = SIG.convert(dict(reversed(GOOD.items())), 2)
    assert [c.dtype for c in cols] == [c.dtype for c in SIG.columns]
    assert cols[0].tolist() == [31.5, 40.0]
    assert math.isnan(cols[1][1])  # optional float: null is a missing value
    assert cols[3].dtype == np.int32 and cols[3].tolist() == [1, -3]
    assert cols[6].tolist() == ["x", None]
    assert cols[7][0] == np.datetime64("2026-01-02T03:04:05")


@pytest.mark.parametrize(
    ("column", "value", "status", "words"),
    [
        ("age", "abc", 422, "expected a number, got string 'abc'"),
        ("age", True, 422, "expected a number, got boolean"),
        ("age", None, 422, "is null; the column is required"),
        ("age", 10**400, 422, "out of range"),
        ("income", 1e39, 422, "out of range for a float column"),
        ("children", 2.5, 422, "expected an integer, got number 2.5"),
        ("children", None, 422, "a long column cannot hold a missing value"),
        ("small", 2**40, 422, "out of range for an integer column"),
        ("owner", 1, 422, "expected true or false"),
        ("region", 7, 422, "expected a string, got number 7"),
        ("seen", "yesterday", 422, "expected an ISO 8601 date-time"),
    ],
)
def test_a_wrong_value_is_refused_naming_column_and_row(column, value, status, words) -> None:
    raw = {k: list(v) for k, v in GOOD.items()}
    raw[column][1] = value
    err = refusal(raw)
    assert err.status == status and err.field == column
    assert f"column '{column}', row 1" in err.message and words in err.message


def test_an_integral_float_is_an_integer_and_an_absent_key_is_named() -> None:
    raw = {k: list(v) for k, v in GOOD.items()}
    raw["children"] = [2.0, 3]
    assert SIG.convert(raw, 2)[2].tolist() == [2, 3]
    raw["age"] = [1.0, ABSENT]
    assert "has no value" in refusal(raw).message


def test_nan_and_infinity() -> None:
    raw = {k: list(v) for k, v in GOOD.items()}
    raw["age"] = [1.0, math.inf]
    assert "infinity is not accepted" in refusal(raw).message
    raw["age"] = [1.0, math.nan]
    assert "NaN is not accepted" in refusal(raw).message
    raw["age"] = [1.0, 2.0]
    raw["income"] = [math.nan, -math.inf]
    assert "column 'income', row 1: infinity" in refusal(raw).message


def test_missing_and_unknown_columns() -> None:
    raw = {k: v for k, v in GOOD.items() if k not in ("age", "region")}
    err = refusal(raw)
    assert (err.status, err.field) == (422, "age")
    assert err.message == "missing column 'age' and 1 more"
    optional_left_out = {k: v for k, v in GOOD.items() if k not in ("income", "note")}
    cols = SIG.convert(optional_left_out, 2)
    assert np.isnan(cols[1]).all() and cols[6].tolist() == [None, None]
    err = refusal({**GOOD, "agee": [1, 2]})
    assert (err.status, err.field) == (400, "agee")
    assert "unknown column 'agee'" in err.message and err.hint == "did you mean 'age'?"
    many = {**GOOD, **{f"x{i}": [0, 0] for i in range(30)}}
    err = refusal(many)
    assert "and 25 more" in err.message and len(err.message) < 200


def test_rows_of_doubles_take_one_matrix_and_keep_the_same_rules() -> None:
    sig = Signature.from_mlflow(
        '[{"name": "a", "type": "double"}, {"name": "b", "type": "double"}]'
    )
    cols = sig.convert_rows([[2, 1.5], [4, 3.5]], ["b", "a"])
    assert [c.tolist() for c in cols] == [[1.5, 3.5], [2.0, 4.0]]
    # one (columns, rows) matrix in the signature's order, whichever order the rows came in
    assert isinstance(cols, Block) and cols.matrix.tolist() == [[1.5, 3.5], [2.0, 4.0]]
    assert sig.convert_rows([[1.5, 2], [3.5, 4]], ["a", "b"]).matrix.tolist() == [
        [1.5, 3.5],
        [2.0, 4.0],
    ]
    joined = join_columns([cols, sig.convert_rows([[6, 5.5]], ["b", "a"])])
    assert isinstance(joined, Block)
    assert [c.tolist() for c in joined] == [[1.5, 3.5, 5.5], [2.0, 4.0, 6.0]]
    mixed = join_columns([cols, [np.array([5.5]), np.array([6.0])]])  # a block and columns
    assert [c.tolist() for c in mixed] == [[1.5, 3.5, 5.5], [2.0, 4.0, 6.0]]
    with pytest.raises(Refused, match="column 'a', row 1: expected a number, got string"):
        sig.convert_rows([[1, 2], [3, "x"]], ["b", "a"])
    with pytest.raises(Refused, match="column 'b', row 0: the number is out of range"):
        sig.convert_rows([[10**400, 2]], ["b", "a"])


def test_typed_arrays_from_binary_tensors() -> None:
    age = ColumnSpec(name="age", type="double")
    assert convert_array(age, np.array([1, 2], dtype=np.int16), "age").dtype == np.float64
    with pytest.raises(Refused, match="infinity"):
        convert_array(age, np.array([1, np.inf], dtype=np.float32), "age")
    small = ColumnSpec(name="small", type="integer")
    with pytest.raises(Refused, match="out of range"):
        convert_array(small, np.array([2**40], dtype=np.int64), "small")
    assert convert_array(small, np.array([1.0, -2.0]), "small").tolist() == [1, -2]
    with pytest.raises(Refused, match="row 1: expected an integer, got 2.5"):
        convert_array(small, np.array([1.0, 2.5]), "small")
    with pytest.raises(Refused, match="send datatype INT32"):
        convert_array(small, np.array(["x"], dtype=object), "small")


def test_signatures_from_mlflow_and_frames() -> None:
    frame = pd.DataFrame(
        {"a": [1.0], "b": [1], "c": ["x"], "d": [True], "e": pd.to_datetime(["2026-01-01"])}
    )
    sig = Signature.from_frame(frame)
    assert [c.type for c in sig.columns] == ["double", "long", "string", "boolean", "datetime"]
    assert Signature.from_mlflow(sig.to_mlflow()) == sig
    with pytest.raises(UsageError, match="names a column twice"):
        Signature.from_mlflow([{"name": "a", "type": "double"}] * 2)
    with pytest.raises(UsageError, match="cannot serve"):
        Signature.from_mlflow([{"name": "a", "type": "binary"}])
    with pytest.raises(UsageError, match="not a list of named column specs"):
        Signature.from_mlflow([{"type": "double"}])
