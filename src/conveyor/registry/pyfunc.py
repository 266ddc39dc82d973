"""MLflow's ``python_function`` loader for Conveyor's own packages.

A package's ``MLmodel`` names this module as its ``loader_module``, so
``mlflow.pyfunc.load_model(package_dir)`` works wherever Conveyor is installed: MLflow calls
:func:`_load_pyfunc` with the model file's path, and the package is verified and its model loaded
with skops under Conveyor's allowlist (never with pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conveyor.registry.package_read import Package, read_package


class PackagedModel:
    """A package's model behind MLflow's pyfunc interface.

    ``predict`` calls the package's predict method (``predict_proba`` or ``predict``) on the
    model's feature columns of the rows, as Conveyor's evaluation did.
    """

    def __init__(self, package: Package, model: Any) -> None:
        self.package = package
        self.model = model

    def _output(self, data: Any, method: str) -> Any:
        from conveyor.checks.model_output import model_output

        return model_output(self.model, _as_frame(data), method)  # type: ignore[arg-type]

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._output(data, self.package.predict)

    def predict_proba(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._output(data, "predict_proba")

    def get_raw_model(self) -> Any:
        return self.model


def _as_frame(data: Any) -> Any:
    import pandas as pd

    return data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)


def _load_pyfunc(path: str | Path, trusted_types: Sequence[str] = ()) -> PackagedModel:
    """Load a package given its directory or its model file (MLflow passes the latter)."""
    target = Path(path)
    directory = target.parent if target.is_file() else target
    package = read_package(directory)
    return PackagedModel(package, package.load_model(trusted_types))


load_package_model = _load_pyfunc
