from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conveyor.errors import UsageError
from conveyor.loadtest.client import Endpoint
from conveyor.loadtest.payloads import (
    Rows,
    build_payload,
    datatype_of,
    protocol_of,
    rows_from_file,
    rows_from_split,
)

MLFLOW = Endpoint.parse("http://127.0.0.1:28601/invocations")
V2 = Endpoint.parse("http://127.0.0.1:28601/v2/models/credit-risk/infer")


def body(request: bytes) -> dict:  # type: ignore[type-arg]
    return json.loads(request.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


def rows(n: int) -> Rows:
    return Rows(columns=["i", "x"], data=[[i, i / 2] for i in range(n)], sources=("test",))


def test_one_row_per_request_cycles_through_every_row() -> None:
    payload = build_payload(MLFLOW, rows(5))
    assert len(payload.requests) == 5
    sent = [body(r)["dataframe_split"]["data"] for r in payload.requests]
    assert sent == [[[i, i / 2]] for i in range(5)]
    assert all(body(r)["dataframe_split"]["columns"] == ["i", "x"] for r in payload.requests)


def test_several_rows_per_request_wrap_around_and_cover_every_row() -> None:
    payload = build_payload(MLFLOW, rows(5), rows_per_request=2)
    firsts = [[row[0] for row in body(r)["dataframe_split"]["data"]] for r in payload.requests]
    assert firsts == [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]
    assert payload.to_json()["rows_per_request"] == 2


def test_v2_requests_carry_one_tensor_per_column() -> None:
    assert protocol_of(V2) == "v2" and protocol_of(MLFLOW) == "mlflow"
    typed = Rows(
        columns=["age", "income", "region"],
        data=[[31, 52000.5, "north"], [45, 61000.0, "south"]],
        sources=("t",),
        types={"age": "integer"},
    )
    payload = build_payload(V2, typed, rows_per_request=2)
    (doc,) = [body(r) for r in payload.requests]
    assert doc["inputs"] == [
        {"name": "age", "shape": [2], "datatype": "INT32", "data": [31, 45]},
        {"name": "income", "shape": [2], "datatype": "FP64", "data": [52000.5, 61000.0]},
        {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["north", "south"]},
    ]


def test_datatypes_from_values() -> None:
    assert datatype_of([1, 2]) == "INT64"
    assert datatype_of([1, 2.5, None]) == "FP64"
    assert datatype_of([True, None]) == "BOOL"
    assert datatype_of(["a", 1]) == "BYTES"


def test_nan_is_sent_as_null_and_infinity_is_refused() -> None:
    with_nan = Rows(columns=["x"], data=[[math.nan]], sources=("t",))
    assert body(build_payload(MLFLOW, with_nan).requests[0])["dataframe_split"]["data"] == [[None]]
    with_inf = Rows(columns=["x"], data=[[math.inf]], sources=("t",))
    with pytest.raises(UsageError, match="infinite"):
        build_payload(MLFLOW, with_inf)


def test_rows_from_a_wrapped_or_bare_split() -> None:
    bare = rows_from_split({"columns": ["a"], "data": [[1]], "dtypes": {"a": "int64"}}, "f")
    wrapped = rows_from_split({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, "f")
    assert bare.data == wrapped.data == [[1]]


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"columns": ["a"]},
        {"columns": ["a", "b"], "data": [[1]]},
        {"columns": ["a"], "data": []},
    ],
)
def test_a_payload_that_is_not_a_split_says_what_to_write(doc: object) -> None:
    with pytest.raises(UsageError) as err:
        rows_from_split(doc, "inputs.json")
    assert "inputs.json" in err.value.message


def test_rows_from_json_and_csv_files(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}}')
    (tmp_path / "in.csv").write_text("a,b\n1,x\n2,y\n")
    assert rows_from_file(tmp_path / "in.json").data == [[1], [2]]
    from_csv = rows_from_file(tmp_path / "in.csv")
    assert from_csv.columns == ["a", "b"] and from_csv.data == [[1, "x"], [2, "y"]]
    (tmp_path / "in.txt").write_text("")
    with pytest.raises(UsageError, match="unknown input format"):
        rows_from_file(tmp_path / "in.txt")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="cannot read"):
        rows_from_file(tmp_path / "bad.json")
