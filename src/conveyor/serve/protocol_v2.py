"""Open Inference Protocol v2 (KServe v2, Triton): metadata and inference payloads.

Inputs are either one tensor per signature column (named after it, shape ``[n]`` or
``[n, 1]``), or, for a model whose columns are all numeric, one tensor of shape ``[n, k]``
holding the ``k`` columns in signature order. The output is one tensor, ``predictions``.
Triton's binary tensor data extension is understood both ways (``tritonclient`` uses it by
default): inputs with ``parameters.binary_data_size`` are read from the bytes after the JSON
header (``Inference-Header-Content-Length``), and outputs are sent as bytes when asked.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.serve import json_codec
from conveyor.serve.invocations import check_rows
from conveyor.serve.model import ServedModel
from conveyor.serve.problems import bad_request, shown, type_name, unprocessable
from conveyor.serve.signature import (
    FLOATS,
    INTEGERS,
    V2_DATATYPES,
    Array,
    ColumnSpec,
    Signature,
    convert_array,
    convert_values,
)

NUMPY_TYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMPY_TYPES, "BYTES")
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
OUTPUT_NAME = "predictions"
MAX_ID = 256


def accepts(spec: ColumnSpec, datatype: str) -> bool:
    """Whether a tensor of ``datatype`` may carry values of the column."""
    if spec.type in FLOATS:
        return datatype.startswith(("FP", "INT", "UINT"))
    if spec.type in INTEGERS:  # floats too, if every value is integral (checked later)
        return datatype.startswith(("FP", "INT", "UINT"))
    if spec.type == "boolean":
        return datatype == "BOOL"
    return datatype == "BYTES"


def output_datatype(dtype: np.dtype[Any]) -> str:
    """The v2 datatype of an output dtype (BYTES for strings and objects)."""
    for name, candidate in NUMPY_TYPES.items():
        if candidate.kind == dtype.kind and candidate.itemsize == dtype.itemsize:
            return name
    return "BYTES"


@dataclass(frozen=True, slots=True, kw_only=True)
class InferRequest:
    id: str | None
    columns: list[Array]
    rows: int
    binary_output: bool


def model_metadata(model: ServedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "sklearn",
        "inputs": [
            {"name": c.name, "datatype": V2_DATATYPES[c.type], "shape": [-1]}
            for c in model.signature.columns
        ],
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "datatype": output_datatype(model.output.dtype),
                "shape": [-1, *model.output.shape],
            }
        ],
    }


def parse_infer(
    body: bytes, header_length: int | None, signature: Signature, max_rows: int
) -> InferRequest:
    """The typed columns of an inference request (JSON, or JSON plus binary tensors)."""
    binary = b""
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise bad_request(
                f"Inference-Header-Content-Length is {header_length}, but the body has "
                f"{len(body)} bytes",
                field="Inference-Header-Content-Length",
            )
        body, binary = body[:header_length], body[header_length:]
    doc = json_codec.loads(body)
    if not isinstance(doc, dict):
        raise bad_request(f"the body is a JSON {type_name(doc)}; expected an inference request")
    unknown = [k for k in doc if k not in REQUEST_KEYS]
    if unknown:
        raise bad_request(
            f"unknown key '{shown(str(unknown[0]))[1:-1]}' in the inference request",
            field=str(unknown[0]),
            hint="an inference request has 'inputs' and optionally 'id', 'parameters', 'outputs'",
        )
    request_id = doc.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_ID):
        raise bad_request(f"'id' must be a string of at most {MAX_ID} characters", field="id")
    params = _mapping(doc.get("parameters"), "parameters")
    binary_output = _binary_outputs(doc.get("outputs"), params)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad_request("'inputs' must be a non-empty array of tensors", field="inputs")
    tensors = [_tensor(t, i) for i, t in enumerate(inputs)]
    chunks = _binary_chunks(tensors, binary)
    if len(tensors) == 1 and tensors[0]["name"] not in signature.positions:
        columns, rows = _matrix(tensors[0], chunks[0], signature, max_rows)
    else:
        columns, rows = _per_column(tensors, chunks, signature, max_rows)
    return InferRequest(id=request_id, columns=columns, rows=rows, binary_output=binary_output)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"'{where}' must be an object", field=where)
    return value


def _binary_outputs(outputs: Any, params: Mapping[str, Any]) -> bool:
    binary = params.get("binary_data_output") is True
    if outputs is None:
        return binary
    if not isinstance(outputs, list):
        raise bad_request("'outputs' must be an array", field="outputs")
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or out.get("name") != OUTPUT_NAME:
            name = out.get("name") if isinstance(out, dict) else out
            raise bad_request(
                f"outputs[{i}] asks for {shown(name)}; the model's only output is '{OUTPUT_NAME}'",
                field=f"outputs[{i}]",
            )
        binary = (
            binary
            or _mapping(out.get("parameters"), f"outputs[{i}].parameters").get("binary_data")
            is True
        )
    return binary


def _tensor(t: Any, i: int) -> dict[str, Any]:
    where = f"inputs[{i}]"
    if not isinstance(t, dict):
        raise bad_request(f"{where} is a {type_name(t)}; expected a tensor object", field=where)
    unknown = [k for k in t if k not in INPUT_KEYS]
    if unknown:
        raise bad_request(
            f"unknown key '{shown(str(unknown[0]))[1:-1]}' in {where}", field=f"{where}"
        )
    name, shape, datatype = t.get("name"), t.get("shape"), t.get("datatype")
    if not isinstance(name, str):
        raise bad_request(f"{where}.name must be a string", field=f"{where}.name")
    label = f"input '{shown(name)[1:-1]}'"
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(type(d) is int and 0 <= d <= 2**31 for d in shape)
    ):
        raise bad_request(
            f"{label}: shape must be [rows] or [rows, columns] of non-negative integers",
            field=name,
        )
    if datatype not in DATATYPES:
        raise bad_request(
            f"{label}: datatype {shown(datatype)} is not a v2 datatype",
            field=name,
            hint="e.g. FP64, FP32, INT64, BOOL, BYTES",
        )
    params = _mapping(t.get("parameters"), f"{where}.parameters")
    size = params.get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):
        raise bad_request(f"{label}: binary_data_size must be a byte count", field=name)
    if size is None and "data" not in t:
        raise bad_request(f"{label} has no 'data'", field=name)
    return {"name": name, "shape": shape, "datatype": datatype, "size": size, "data": t.get("data")}


def _binary_chunks(tensors: list[dict[str, Any]], binary: bytes) -> list[bytes | None]:
    chunks: list[bytes | None] = []
    offset = 0
    for t in tensors:
        if t["size"] is None:
            chunks.append(None)
            continue
        end = offset + t["size"]
        if end > len(binary):
            raise bad_request(
                f"input '{t['name']}': binary_data_size runs past the end of the body",
                field=t["name"],
            )
        chunks.append(binary[offset:end])
        offset = end
    if offset != len(binary):
        raise bad_request(f"{len(binary) - offset} bytes after the last binary input")
    return chunks


def _flat(data: Any, count: int, label: str, name: str) -> list[Any]:
    """The tensor's values, flattened row-major, checked against the shape's element count."""
    values: list[Any] = data if isinstance(data, list) else [data]
    while values and any(isinstance(v, list) for v in values):
        if not all(isinstance(v, list) for v in values):
            raise bad_request(f"{label}: data nests arrays unevenly", field=name)
        values = [x for v in values for x in v]
    if len(values) != count:
        raise bad_request(
            f"{label}: data has {len(values)} values, but the shape holds {count}", field=name
        )
    return values


def _decode(t: dict[str, Any], chunk: bytes, count: int, label: str) -> Array:
    if t["datatype"] == "BYTES":
        out: list[str] = []
        pos = 0
        while pos < len(chunk):
            if pos + 4 > len(chunk):
                raise bad_request(f"{label}: truncated BYTES element", field=t["name"])
            (length,) = struct.unpack_from("<I", chunk, pos)
            raw = chunk[pos + 4 : pos + 4 + length]
            if len(raw) != length:
                raise bad_request(f"{label}: truncated BYTES element", field=t["name"])
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise unprocessable(
                    f"{label}: a BYTES element is not UTF-8", field=t["name"]
                ) from None
            pos += 4 + length
        arr = np.empty(len(out), dtype=object)
        arr[:] = out
    else:
        dtype = NUMPY_TYPES[t["datatype"]]
        if len(chunk) != count * dtype.itemsize:
            raise bad_request(
                f"{label}: {len(chunk)} bytes of {t['datatype']} do not hold {count} values",
                field=t["name"],
            )
        arr = np.frombuffer(chunk, dtype=dtype)
    if len(arr) != count:
        raise bad_request(
            f"{label}: {len(arr)} values, but the shape holds {count}", field=t["name"]
        )
    return arr


def _column(spec: ColumnSpec, t: dict[str, Any], values: list[Any] | Array) -> Array:
    """One column's values (JSON values, or an array decoded from binary data)."""
    label = f"input '{shown(t['name'])[1:-1]}'"
    if not accepts(spec, t["datatype"]):
        raise unprocessable(
            f"{label}: datatype {t['datatype']} cannot carry the {spec.type} column '{spec.name}'",
            field=t["name"],
            hint=f"send datatype {V2_DATATYPES[spec.type]}",
        )
    if isinstance(values, np.ndarray):
        return convert_array(spec, values, t["name"])
    return convert_values(spec, values)


def _per_column(
    tensors: list[dict[str, Any]], chunks: list[bytes | None], signature: Signature, max_rows: int
) -> tuple[list[Array], int]:
    names = [t["name"] for t in tensors]
    unknown = [n for n in names if n not in signature.positions]
    if unknown:
        raise signature.unknown_columns(unknown)
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise bad_request(f"input '{shown(twice)[1:-1]}' is given twice", field=twice)
    rows = tensors[0]["shape"][0]
    for t in tensors:
        shape = t["shape"]
        if shape[0] != rows or (len(shape) == 2 and shape[1] != 1):
            raise bad_request(
                f"input '{t['name']}' has shape {shape}; every column tensor must be "
                f"[{rows}] or [{rows}, 1]",
                field=t["name"],
            )
    check_rows(rows, max_rows, "inputs")
    by_name = {t["name"]: (t, c) for t, c in zip(tensors, chunks, strict=True)}
    missing = [c.name for c in signature.columns if c.name not in by_name and c.required]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise unprocessable(
            f"missing input '{missing[0]}'{more}",
            field=missing[0],
            hint="send one tensor per model input; GET /v2/models/<name> lists them",
        )
    columns: list[Array] = []
    for spec in signature.columns:
        if spec.name not in by_name:
            columns.append(convert_values(spec, [None] * rows))
            continue
        t, chunk = by_name[spec.name]
        label = f"input '{shown(t['name'])[1:-1]}'"
        values: list[Any] | Array = (
            _decode(t, chunk, rows, label)
            if chunk is not None
            else _flat(t["data"], rows, label, t["name"])
        )
        columns.append(_column(spec, t, values))
    return columns, rows


def _matrix(
    t: dict[str, Any], chunk: bytes | None, signature: Signature, max_rows: int
) -> tuple[list[Array], int]:
    width = len(signature.columns)
    shape, name = t["shape"], t["name"]
    label = f"input '{shown(name)[1:-1]}'"
    if len(shape) == 1:
        raise signature.unknown_columns([name])
    if shape[1] != width:
        raise bad_request(
            f"{label} has shape {shape}; one tensor holding every column must be "
            f"[rows, {width}], the model's columns in order",
            field=name,
        )
    if not signature.numeric:
        raise bad_request(
            f"{label}: one [rows, {width}] tensor needs numeric columns, and this model "
            "has string or date-time inputs",
            field=name,
            hint="send one tensor per column, named after it",
        )
    rows = shape[0]
    check_rows(rows, max_rows, "inputs")
    count = rows * width
    flat: Any = (
        _decode(t, chunk, count, label)
        if chunk is not None
        else _flat(t["data"], count, label, name)
    )
    return [_column(spec, t, flat[j::width]) for j, spec in enumerate(signature.columns)], rows


def response(
    model: ServedModel, request_id: str, outputs: Array, binary: bool
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    datatype = output_datatype(outputs.dtype)
    tensor: dict[str, Any] = {
        "name": OUTPUT_NAME,
        "datatype": datatype,
        "shape": list(outputs.shape),
    }
    doc: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "id": request_id,
        "outputs": [tensor],
    }
    if not binary:
        tensor["data"] = (
            outputs.reshape(-1)
            if datatype != "BYTES"
            else [str(v) for v in outputs.reshape(-1).tolist()]
        )
        return json_codec.dumps(doc), None
    if datatype == "BYTES":
        raw = b"".join(
            struct.pack("<I", len(b)) + b
            for b in (str(v).encode() for v in outputs.reshape(-1).tolist())
        )
    else:
        raw = np.ascontiguousarray(outputs, dtype=NUMPY_TYPES[datatype]).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json_codec.dumps(doc)
    return header + raw, len(header)
