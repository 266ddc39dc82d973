"""Export to MLflow: MLflow itself, in its own virtual environment, loads the exported directory
(and Conveyor's own package, through its ``loader_module``) and predicts what the package does.

The MLflow venv is built once per requirement set under ``~/.cache/conveyor-tests/`` (override
with CONVEYOR_TEST_CACHE) and reused across runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration.test_package import make_packaged

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CACHE = Path(os.environ.get("CONVEYOR_TEST_CACHE", Path.home() / ".cache" / "conveyor-tests"))
SRC = Path(__file__).resolve().parents[2] / "src"

PREDICT = """
import json, sys
import pandas as pd
import mlflow.pyfunc

model_dir, inputs = sys.argv[1], json.load(open(sys.argv[2]))
frame = pd.DataFrame(inputs["data"], columns=inputs["columns"]).astype(inputs["dtypes"])
model = mlflow.pyfunc.load_model(model_dir)
print(json.dumps(model.predict(frame).tolist()))
"""


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Path]:
    return make_packaged(tmp_path_factory.mktemp("mlflow") / "proj")


def _pypi_reachable() -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "mlflow"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode == 0


def mlflow_python(requirements: str) -> Path:
    """A venv with MLflow and the package's exact requirements (built once, then reused)."""
    wanted = ["mlflow>=3.9", *requirements.split()]
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    venv = CACHE / f"mlflow-venv-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    if not _pypi_reachable():
        if IN_CI:
            pytest.fail("PyPI is not reachable, and CI=true requires the MLflow export test")
        pytest.skip("PyPI is not reachable: cannot install MLflow for the export test")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *wanted],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (venv / ".complete").write_text("\n".join(wanted))
    return python


def mlflow_predict(python: Path, model_dir: Path, inputs: Path, **env: str) -> list[Any]:
    proc = subprocess.run(
        [str(python), "-c", PREDICT, str(model_dir), str(inputs)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: list[Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_mlflow_loads_the_export_and_predicts_the_same(packaged, tmp_path: Path) -> None:
    import yaml

    from conveyor.registry.mlflow_export import export_mlflow
    from conveyor.registry.package import read_package

    _root, _mv, directory = packaged
    package = read_package(directory)
    python = mlflow_python((directory / "requirements.txt").read_text())
    golden = package.golden_predictions()
    inputs = directory / "golden" / "inputs.json"

    skops_dir = export_mlflow(directory, tmp_path / "skops")
    assert not (skops_dir / "model.pkl").exists()
    assert (skops_dir / "model.skops").read_bytes() == package.model_path.read_bytes()
    mlmodel = yaml.safe_load((skops_dir / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["predict_fn"] == "predict_proba"
    assert mlmodel["signature"] == package.mlmodel["signature"]
    assert mlflow_predict(python, skops_dir, inputs) == golden

    pickle_dir = export_mlflow(directory, tmp_path / "pickle", serialization="pickle")
    assert (pickle_dir / "model.pkl").is_file()
    assert mlflow_predict(python, pickle_dir, inputs) == golden

    # MLflow also loads Conveyor's own package, through its loader_module, where Conveyor is
    # importable.
    assert mlflow_predict(python, directory, inputs, PYTHONPATH=str(SRC)) == golden


def test_export_refuses_a_non_empty_output_directory(packaged, tmp_path: Path) -> None:
    from conveyor.errors import UsageError
    from conveyor.registry.mlflow_export import export_mlflow

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not an empty directory"):
        export_mlflow(packaged[2], out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(UsageError, match="unknown serialization 'joblib'"):
        export_mlflow(packaged[2], tmp_path / "new", serialization="joblib")  # type: ignore[arg-type]


def test_export_writes_mlflow_environment_files(packaged, tmp_path: Path) -> None:
    import yaml

    from conveyor.registry.mlflow_export import export_mlflow

    directory = packaged[2]
    out = export_mlflow(directory, tmp_path / "out")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "MLmodel",
        "conda.yaml",
        "input_example.json",
        "model.skops",
        "python_env.yaml",
        "requirements.txt",
        "serving_input_example.json",
    ]
    reqs = (directory / "requirements.txt").read_text().split()
    conda = yaml.safe_load((out / "conda.yaml").read_text())
    assert conda["dependencies"][-1] == {"pip": reqs}
    env = yaml.safe_load((out / "python_env.yaml").read_text())
    assert env["dependencies"] == ["-r requirements.txt"]
    serving = json.loads((out / "serving_input_example.json").read_text())
    assert serving["dataframe_split"]["columns"] == ["a", "b", "k"]
