"""The OpenAPI 3.0 document of the prediction service, built from the served model's signature.

It describes both APIs (Open Inference Protocol v2 and MLflow's ``/invocations``), health,
metrics and itself, with the row schema of the model's columns, so a client generator or a
fuzzer (schemathesis) knows what a valid request looks like and which refusals to expect.
"""

from __future__ import annotations

from typing import Any

from conveyor.serve.model import ServedModel
from conveyor.serve.protocol_v2 import DATATYPES, model_metadata
from conveyor.serve.signature import ColumnSpec

REF = "#/components/schemas/"


def _value_schema(spec: ColumnSpec) -> dict[str, Any]:
    schema: dict[str, Any]
    if spec.type in ("double", "float"):
        schema = {"type": "number"}
    elif spec.type in ("integer", "long"):
        schema = {"type": "integer", "format": "int32" if spec.type == "integer" else "int64"}
    elif spec.type == "boolean":
        schema = {"type": "boolean"}
    elif spec.type == "datetime":
        schema = {"type": "string", "format": "date-time"}
    else:
        schema = {"type": "string"}
    if spec.holds_missing:
        schema["nullable"] = True
    return schema


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF + "Error"}}},
    }


REFUSALS = {
    "400": "Malformed request: not JSON or CSV, unknown keys or columns, wrong structure, no rows.",
    "408": "The request body did not arrive in time.",
    "413": "The body or the number of rows is over the limit.",
    "415": "Unsupported content type.",
    "422": "The values do not fit the model's signature (type, missing value, NaN, infinity).",
    "503": "Too many requests in flight; retry after the Retry-After header's seconds.",
    "504": "The prediction took longer than the time limit.",
}


def _refusals(*codes: str) -> dict[str, Any]:
    return {code: _error(REFUSALS[code]) for code in codes}


def _ok(description: str, schema: dict[str, Any], media: str = "application/json") -> Any:
    return {"200": {"description": description, "content": {media: {"schema": schema}}}}


def _get(summary: str, responses: dict[str, Any], op_id: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "operationId": op_id, "responses": responses}}


def document(model: ServedModel, version: str) -> dict[str, Any]:
    """The OpenAPI document (a JSON-ready dict)."""
    columns = model.signature.columns
    row = {
        "type": "object",
        "properties": {c.name: _value_schema(c) for c in columns},
        "required": [c.name for c in columns if c.required],
        "additionalProperties": False,
    }
    name_param = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    meta = model_metadata(model)
    schemas: dict[str, Any] = {
        "Row": row,
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string"},
                "hint": {"type": "string"},
            },
        },
        "DataframeSplit": {
            "type": "object",
            "required": ["dataframe_split"],
            "additionalProperties": False,
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {
                            "type": "array",
                            "items": {"type": "string", "enum": [c.name for c in columns]},
                        },
                        "data": {"type": "array", "minItems": 1, "items": {"type": "array"}},
                        "index": {"type": "array"},
                    },
                }
            },
        },
        "DataframeRecords": {
            "type": "object",
            "required": ["dataframe_records"],
            "additionalProperties": False,
            "properties": {
                "dataframe_records": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": REF + "Row"},
                }
            },
        },
        "Instances": {
            "type": "object",
            "required": ["instances"],
            "additionalProperties": False,
            "properties": {
                "instances": {"type": "array", "minItems": 1, "items": {"$ref": REF + "Row"}}
            },
        },
        "Inputs": {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "inputs": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        c.name: {"type": "array", "items": _value_schema(c)} for c in columns
                    },
                }
            },
        },
        "Predictions": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"type": "array", "items": {}}},
        },
        "Tensor": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": {"type": "string", "enum": list(DATATYPES)},
                "parameters": {"type": "object"},
                "data": {"type": "array", "items": {}},
            },
        },
        "InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "minItems": 1, "items": {"$ref": REF + "Tensor"}},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "enum": ["predictions"]},
                            "parameters": {"type": "object"},
                        },
                    },
                },
            },
        },
        "InferenceResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": {"$ref": REF + "Tensor"}},
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": {"$ref": REF + "Tensor"}},
                "outputs": {"type": "array", "items": {"$ref": REF + "Tensor"}},
            },
            "example": meta,
        },
    }
    not_found = {"404": _error("No such model (or version) is served here.")}
    invocation_schema = {
        "oneOf": [
            {"$ref": REF + k} for k in ("DataframeSplit", "DataframeRecords", "Instances", "Inputs")
        ]
    }
    paths: dict[str, Any] = {
        "/v2": _get(
            "Server metadata",
            _ok("Name, version and extensions of the server.", {"type": "object"}),
            "server_metadata",
        ),
        "/v2/health/live": _get(
            "Liveness", _ok("The process is up.", {"type": "object"}), "server_live"
        ),
        "/v2/health/ready": _get(
            "Readiness",
            {
                **_ok("The model is loaded and the service accepts requests.", {"type": "object"}),
                "503": _error("Not ready (starting or stopping)."),
            },
            "server_ready",
        ),
        "/v2/models/{model_name}": {
            "parameters": [name_param],
            **_get(
                "Model metadata",
                {
                    **_ok("The model's inputs and outputs.", {"$ref": REF + "ModelMetadata"}),
                    **not_found,
                },
                "model_metadata",
            ),
        },
        "/v2/models/{model_name}/ready": {
            "parameters": [name_param],
            **_get(
                "Model readiness",
                {**_ok("The model is ready.", {"type": "object"}), **not_found},
                "model_ready",
            ),
        },
        "/v2/models/{model_name}/infer": {
            "parameters": [name_param],
            "post": {
                "summary": "Inference (Open Inference Protocol v2)",
                "operationId": "model_infer",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": REF + "InferenceRequest"}}},
                },
                "responses": {
                    **_ok("The predictions.", {"$ref": REF + "InferenceResponse"}),
                    **not_found,
                    **_refusals("400", "408", "413", "415", "422", "503", "504"),
                },
            },
        },
        "/invocations": {
            "post": {
                "summary": "Predictions (MLflow's scoring protocol)",
                "operationId": "invocations",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": invocation_schema},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    **_ok("The predictions.", {"$ref": REF + "Predictions"}),
                    **_refusals("400", "408", "413", "415", "422", "503", "504"),
                },
            }
        },
        "/ping": _get("Liveness (MLflow)", _ok("Up.", {"type": "string"}, "text/plain"), "ping"),
        "/health": _get(
            "Liveness (MLflow)", _ok("Up.", {"type": "string"}, "text/plain"), "health"
        ),
        "/metrics": _get(
            "Prometheus metrics",
            _ok("Prometheus text format 0.0.4.", {"type": "string"}, "text/plain"),
            "metrics",
        ),
        "/openapi.json": _get("This document", _ok("OpenAPI 3.0.", {"type": "object"}), "openapi"),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"Conveyor prediction service: {model.ref}",
            "version": version,
            "description": "Every route is public: the prediction service has no tokens. Put "
            "it behind your network's access control; authentication belongs to the "
            "management server (conveyor server).",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
