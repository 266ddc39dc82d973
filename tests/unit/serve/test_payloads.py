"""MLflow's /invocations forms and v2 inference requests, parsed into the same typed columns."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from conveyor.serve import invocations, protocol_v2
from conveyor.serve.problems import Refused
from conveyor.serve.signature import ColumnSpec, Signature

SIG = Signature(
    columns=(
        ColumnSpec(name="age", type="double"),
        ColumnSpec(name="children", type="long"),
        ColumnSpec(name="region", type="string"),
    )
)
ROWS = [[31.5, 2, "north"], [40.0, 0, "south"]]
NAMES = ["age", "children", "region"]
FORMS = {
    "dataframe_split": {"dataframe_split": {"columns": NAMES, "data": ROWS}},
    "split without columns": {"dataframe_split": {"data": ROWS, "index": [0, 1]}},
    "dataframe_records": {"dataframe_records": [dict(zip(NAMES, r, strict=True)) for r in ROWS]},
    "instances as objects": {"instances": [dict(zip(NAMES, r, strict=True)) for r in ROWS]},
    "instances as rows": {"instances": ROWS},
    "inputs as columns": {"inputs": {n: [r[i] for r in ROWS] for i, n in enumerate(NAMES)}},
    "params null": {"dataframe_split": {"columns": NAMES, "data": ROWS}, "params": None},
}


def parse(body: bytes | dict, media: str = "application/json", max_rows: int = 100) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return [c.tolist() for c in invocations.parse(raw, media, SIG, max_rows)]


@pytest.mark.parametrize("form", FORMS)
def test_every_mlflow_form_gives_the_same_columns(form: str) -> None:
    assert parse(FORMS[form]) == [[31.5, 40.0], [2, 0], ["north", "south"]]


def test_csv_with_a_header_line() -> None:
    body = b'region,age,children\r\nnorth,31.5,2\r\n"south",40,0\r\n'
    assert parse(body, "text/csv") == [[31.5, 40.0], [2, 0], ["north", "south"]]


def test_one_row_of_scalars_and_a_single_column_model() -> None:
    assert parse({"inputs": {"age": 1, "children": 2, "region": "x"}}) == [[1.0], [2], ["x"]]
    one = Signature.from_mlflow([{"name": "x", "type": "double"}])
    cols = invocations.parse(b'{"instances": [1, 2.5]}', "application/json", one, 10)
    assert cols[0].tolist() == [1.0, 2.5]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "is not valid JSON"),
        (b'{"dataframe_split": {"columns": ["age"], "data": [[NaN]]}}', 400, "NaN and Infinity"),
        (b"[1, 2]", 400, "the body is a JSON array"),
        ({"dataframe": []}, 400, "unknown key 'dataframe'"),
        ({"instances": ROWS, "inputs": ROWS}, 400, "exactly one of"),
        ({"instances": ROWS, "params": {"k": 1}}, 400, "takes no params"),
        ({"dataframe_split": {"columns": NAMES, "data": []}}, 400, "has no rows"),
        ({"dataframe_split": {"columns": NAMES, "data": [[1, 2]]}}, 400, "data[0] has 2 values"),
        ({"dataframe_split": {"columns": ["age", "age"], "data": [[1, 1]]}}, 400, "twice"),
        ({"dataframe_split": {"cols": NAMES, "data": ROWS}}, 400, "unknown key 'cols'"),
        (
            {"dataframe_records": [{"age": 1, "children": 1, "region": "x", "zip": 1}]},
            400,
            "unknown column 'zip'",
        ),
        ({"dataframe_records": [{"age": 1, "children": 1}]}, 422, "missing column 'region'"),
        ({"dataframe_records": [1, 2]}, 400, "dataframe_records[0] is a number"),
        ({"instances": [ROWS[0], {"age": 1}]}, 400, "mixes"),
        (
            {"inputs": {"age": [1, 2], "children": [1], "region": ["a", "b"]}},
            400,
            "inputs.children has 1 values",
        ),
        ({"instances": [[1, "two", "x"]]}, 422, "column 'children', row 0: expected an integer"),
    ],
)
def test_bad_payloads_are_refused_with_what_and_where(body, status, words) -> None:
    with pytest.raises(Refused) as info:
        parse(body)
    assert info.value.status == status
    assert words in str(info.value)  # the message, or its hint


def test_too_many_rows_is_413() -> None:
    with pytest.raises(Refused) as info:
        parse({"instances": ROWS * 3}, max_rows=5)
    assert info.value.status == 413 and "6 rows; at most 5" in info.value.message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "the CSV body is empty"),
        (b"age,children,region\n", "has no rows"),
        (b"age,children,region\n1,2\n", "CSV line 2 has 2 fields"),
        (b"age,children,region\n1,x,a\n", "column 'children', row 0: expected an integer, got 'x'"),
        (b"age,children,region\nnan,1,a\n", "NaN is not accepted"),
        (b"age,children,region\ninf,1,a\n", "infinity is not accepted"),
        (b"age,kids,region\n1,1,a\n", "unknown column 'kids'"),
        (b"\xff\xfe,a\n", "not UTF-8"),
    ],
)
def test_bad_csv_is_refused(body: bytes, words: str) -> None:
    with pytest.raises(Refused, match=words.replace("(", r"\(")):
        parse(body, "text/csv")


# -- v2 --------------------------------------------------------------------------------------

NUM = Signature.from_mlflow([{"name": n, "type": "double"} for n in ("a", "b")])


def infer(doc: dict, binary: bytes = b"", sig: Signature = SIG) -> protocol_v2.InferRequest:
    head = json.dumps(doc).encode()
    return protocol_v2.parse_infer(head + binary, len(head) if binary else None, sig, 100)


def test_v2_one_tensor_per_column_or_one_matrix() -> None:
    request = infer(
        {
            "id": "r1",
            "inputs": [
                {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["n", "s"]},
                {"name": "age", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [2]]},
                {"name": "children", "shape": [2], "datatype": "INT64", "data": [1, 2]},
            ],
        }
    )
    assert request.id == "r1" and request.rows == 2 and not request.binary_output
    assert [c.tolist() for c in request.columns] == [[1.5, 2.0], [1, 2], ["n", "s"]]
    matrix = infer(
        {
            "inputs": [
                {"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}
            ]
        },
        sig=NUM,
    )
    assert [c.tolist() for c in matrix.columns] == [[1.0, 3.0], [2.0, 4.0]]


def test_v2_binary_tensor_data_both_ways() -> None:
    raw = np.array([[1, 2], [3, 4]], dtype="<f8").tobytes()
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"north", b"south"))
    request = infer(
        {
            "inputs": [
                {
                    "name": "age",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 16},
                },
                {"name": "children", "shape": [2], "datatype": "INT32", "data": [1, 2]},
                {
                    "name": "region",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(words)},
                },
            ],
            "outputs": [{"name": "predictions", "parameters": {"binary_data": True}}],
        },
        raw[:16] + words,
    )
    assert request.binary_output
    assert [c.tolist() for c in request.columns] == [[1.0, 2.0], [1, 2], ["north", "south"]]
    matrix = infer(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ]
        },
        raw,
        sig=NUM,
    )
    assert [c.tolist() for c in matrix.columns] == [[1.0, 3.0], [2.0, 4.0]]


@pytest.mark.parametrize(
    ("doc", "status", "words"),
    [
        ({"inputs": []}, 400, "non-empty array"),
        ({"input": []}, 400, "unknown key 'input'"),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP99", "data": [1]}]},
            400,
            "not a v2 datatype",
        ),
        (
            {"inputs": [{"name": "a", "shape": [-1], "datatype": "FP64", "data": [1]}]},
            400,
            "shape must be",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [2], "datatype": "FP64", "data": [1]},
                    {"name": "b", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                ]
            },
            400,
            "data has 1 values",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                    {"name": "c", "shape": [1], "datatype": "FP64", "data": [1]},
                ]
            },
            400,
            "unknown column 'c'",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}]},
            422,
            "missing input 'b'",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
                ]
            },
            422,
            "datatype BYTES cannot carry",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": ["x"]},
                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
                ]
            },
            422,
            "column 'a', row 0: expected a number",
        ),
        (
            {"inputs": [{"name": "m", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            400,
            "must be [rows, 2]",
        ),
        (
            {"inputs": [{"name": "m", "shape": [0, 2], "datatype": "FP64", "data": []}]},
            400,
            "inputs has no rows",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                    {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
                ],
                "outputs": [{"name": "proba"}],
            },
            400,
            "only output is 'predictions'",
        ),
        ({"id": 5, "inputs": []}, 400, "'id' must be a string"),
    ],
)
def test_bad_v2_requests_are_refused(doc, status, words) -> None:
    with pytest.raises(Refused) as info:
        infer(doc, sig=NUM)
    assert info.value.status == status
    assert words in info.value.message


def test_v2_binary_sizes_must_add_up() -> None:
    doc = {
        "inputs": [
            {
                "name": "x",
                "shape": [1, 2],
                "datatype": "FP64",
                "parameters": {"binary_data_size": 16},
            }
        ]
    }
    with pytest.raises(Refused, match="past the end"):
        infer(doc, b"\0" * 8, sig=NUM)
    with pytest.raises(Refused, match="bytes after the last binary input"):
        infer(doc, b"\0" * 24, sig=NUM)
    head = json.dumps(doc).encode()
    with pytest.raises(Refused, match="Inference-Header-Content-Length is 9999"):
        protocol_v2.parse_infer(head, 9999, NUM, 10)
