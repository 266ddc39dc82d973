"""A package's model in MLflow's terms: the ``MLmodel`` file, its signature, its input rows.

A package is an MLflow model directory as well as Conveyor's (see docs/package.md): its
``MLmodel`` names the ``python_function`` and ``sklearn`` flavors, its signature types each
column the way MLflow does, and its input example is pandas' split orient with plain values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.errors import UsageError
from conveyor.registry.package_read import MODEL_FILE

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.registry.versions import ModelVersion


def mlmodel_text(
    mv: ModelVersion,
    *,
    train_env: Mapping[str, Any],
    predict: str,
    trusted: list[str],
    created: Any,
    features: pd.DataFrame,
    output: Any,
) -> str:
    """The ``MLmodel`` YAML of ``mv``'s package: ``created`` is a datetime, ``output`` the
    model's predictions of ``features`` with ``predict``."""
    import platform

    import sklearn
    import yaml

    python = train_env.get("python") or platform.python_version()
    doc = {
        "artifact_path": "model",
        "flavors": _flavors(python, predict, trusted, sklearn.__version__),
        "model_uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"conveyor:{mv.ref}:{mv.digest}").hex,
        "utc_time_created": created.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "signature": infer_signature(features, output),
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
        },
        "metadata": {"conveyor": {"name": mv.name, "version": mv.version, "run_id": mv.run_id}},
    }
    text: str = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
    return text


def _flavors(python: str, predict: str, trusted: list[str], sklearn_version: str) -> dict[str, Any]:
    """The ``python_function`` flavor (Conveyor's loader) and the ``sklearn`` one (skops)."""
    return {
        "python_function": {
            "loader_module": "conveyor.registry.pyfunc",
            "model_path": MODEL_FILE,
            "predict_fn": predict,
            "python_version": python,
            "env": {"virtualenv": "python_env.yaml"},
        },
        "sklearn": {
            "pickled_model": MODEL_FILE,
            "serialization_format": "skops",
            "skops_trusted_types": trusted,
            "sklearn_version": sklearn_version,
            "code": None,
        },
    }


def mlflow_type(dtype: Any, column: str) -> str:
    """MLflow's column type for a pandas dtype."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        wide = getattr(dtype, "itemsize", 8) >= 8 or str(dtype).lower() == "uint32"
        return "long" if wide else "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "double" if getattr(dtype, "itemsize", 8) >= 8 else "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "string"
    raise UsageError(
        f"column '{column}' has dtype {dtype}, which has no MLflow signature type",
        hint="give the model numeric, boolean, string or datetime columns",
    )


def infer_signature(features: pd.DataFrame, output: Any) -> dict[str, Any]:
    """MLflow's signature: one column spec per feature, and the output as a tensor spec."""
    inputs = [
        {"type": mlflow_type(dtype, str(name)), "name": str(name), "required": True}
        for name, dtype in features.dtypes.items()
    ]
    if output.dtype.kind in "biuf":
        shape = [-1, *output.shape[1:]]
        outputs: list[dict[str, Any]] = [
            {"type": "tensor", "tensor-spec": {"dtype": str(output.dtype), "shape": shape}}
        ]
    else:
        outputs = [{"type": "string", "required": True}]
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(outputs),
        "params": None,
    }


def jsonable_rows(frame: pd.DataFrame) -> dict[str, Any]:
    """``{"columns", "data"}`` (pandas' split orient, as MLflow writes input examples) with
    plain Python values, so floats read back bit for bit."""
    import pandas as pd

    def plain(v: Any) -> Any:
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        return None if v is pd.NA or v is pd.NaT else v

    rows = frame.astype(object).to_numpy().tolist()
    return {
        "columns": [str(c) for c in frame.columns],
        "data": [[plain(v) for v in r] for r in rows],
    }
