"""The OpenAPI document describes both APIs with the model's own columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from conveyor.serve.model import ServedModel
from conveyor.serve.openapi import document
from conveyor.serve.signature import ColumnSpec, Signature


def test_document_has_both_apis_and_the_row_schema() -> None:
    frame = pd.DataFrame({"age": [1.0, 2.0, 3.0, 4.0], "kids": [0, 1, 0, 2]})
    model = LogisticRegression().fit(frame, np.array([0, 1, 0, 1]))
    sig = Signature(
        columns=(
            ColumnSpec(name="age", type="double", required=False),
            ColumnSpec(name="kids", type="long"),
        )
    )
    doc = document(ServedModel.from_estimator(model, name="churn", signature=sig), "0.1")
    assert doc["openapi"].startswith("3.0")
    assert {"/v2/models/{model_name}/infer", "/invocations", "/metrics", "/openapi.json"} <= set(
        doc["paths"]
    )
    row = doc["components"]["schemas"]["Row"]
    assert row["properties"] == {
        "age": {"type": "number", "nullable": True},
        "kids": {"type": "integer", "format": "int64"},
    }
    assert row["required"] == ["kids"] and row["additionalProperties"] is False
    refusals = doc["paths"]["/invocations"]["post"]["responses"]
    assert {"400", "413", "415", "422", "503", "504"} <= set(refusals)
    assert "public" in doc["info"]["description"]
