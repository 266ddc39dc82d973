"""Export a package as an MLflow model directory that ``mlflow.pyfunc.load_model`` loads.

The export uses MLflow's own ``sklearn`` flavor, so MLflow needs nothing of Conveyor. By
default the model stays the package's skops file, byte for byte (MLflow 3.9 and later load
skops models, trusting the types listed under ``skops_trusted_types``). For older MLflow,
``serialization="pickle"`` writes ``model.pkl``: the model is loaded here with skops under
Conveyor's allowlist and pickled. Loading that file runs whatever the pickle says, so it is an
explicit choice for MLflow interop, never the default.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from conveyor.errors import UsageError
from conveyor.registry.package import dumps
from conveyor.registry.package_read import Package, read_package

Serialization = Literal["skops", "pickle"]
SERIALIZATIONS = ("skops", "pickle")


def export_mlflow(
    package_dir: Path,
    out_dir: Path,
    *,
    serialization: Serialization = "skops",
    trusted_types: Sequence[str] = (),
) -> Path:
    """Write the MLflow model directory of the package at ``package_dir`` to ``out_dir`` (which
    must not exist, or be empty). Returns ``out_dir``."""
    if serialization not in SERIALIZATIONS:
        raise UsageError(
            f"unknown serialization '{serialization}'", hint=f"use one of {list(SERIALIZATIONS)}"
        )
    package = read_package(package_dir)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(
            f"{out} already exists and is not an empty directory",
            hint="choose a new output directory, or remove this one",
        )
    out.mkdir(parents=True, exist_ok=True)
    if serialization == "skops":
        model_file = "model.skops"
        shutil.copyfile(package.model_path, out / model_file)
    else:
        model_file = "model.pkl"
        model = package.load_model(trusted_types)  # skops, under Conveyor's allowlist
        with open(out / model_file, "wb") as f:
            pickle.dump(model, f, protocol=pickle.DEFAULT_PROTOCOL)
    for name in ("requirements.txt", "python_env.yaml", "input_example.json"):
        shutil.copyfile(package.directory / name, out / name)
    example = (package.directory / "input_example.json").read_text(encoding="utf-8")
    serving = dumps({"dataframe_split": json.loads(example)})
    (out / "serving_input_example.json").write_text(serving, encoding="utf-8")
    (out / "conda.yaml").write_text(_conda_yaml(package), encoding="utf-8")
    (out / "MLmodel").write_text(_mlmodel(package, model_file, serialization), encoding="utf-8")
    return out


def _python_version(package: Package) -> str:
    return str(package.mlmodel["flavors"]["python_function"]["python_version"])


def _conda_yaml(package: Package) -> str:
    import yaml

    pins = [f"{n}=={v}" for n, v in sorted(package.requirements().items())]
    doc = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={_python_version(package)}", "pip", {"pip": pins}],
    }
    text: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return text


def _mlmodel(package: Package, model_file: str, serialization: str) -> str:
    import yaml

    source = package.mlmodel
    model = package.manifest["model"]
    sklearn_flavor: dict[str, Any] = {
        "pickled_model": model_file,
        "serialization_format": serialization,
        "sklearn_version": source["flavors"]["sklearn"]["sklearn_version"],
        "code": None,
    }
    if serialization == "skops":
        sklearn_flavor["skops_trusted_types"] = list(model.get("skops_trusted_types") or [])
    doc = {
        "artifact_path": source.get("artifact_path", "model"),
        "flavors": {
            "python_function": {
                "loader_module": "mlflow.sklearn",
                "model_path": model_file,
                "predict_fn": model["predict"],
                "python_version": _python_version(package),
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            },
            "sklearn": sklearn_flavor,
        },
        "model_uuid": source.get("model_uuid"),
        "utc_time_created": source.get("utc_time_created"),
        "signature": source.get("signature"),
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
            "serving_input_path": "serving_input_example.json",
        },
        "metadata": {
            "conveyor": {
                "name": package.manifest["name"],
                "version": package.manifest["version"],
                "run_id": package.manifest["run_id"],
                "model_digest": model["digest"],
            }
        },
    }
    text: str = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
    return text
