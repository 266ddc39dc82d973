"""Serving a compiled model with onnxruntime: :class:`OnnxModel`, called like the sklearn model.

The ONNX file carries Conveyor's metadata (keys prefixed :data:`META`): its input layout, one
float32 tensor ``X`` or one input per column, and each column's kind. :class:`OnnxModel` reads
them and builds the inputs from a DataFrame itself, selecting columns by name (see
:mod:`conveyor.registry.onnx`). onnxruntime, skl2onnx and onnx are the optional extra ``onnx``,
imported only when needed (:func:`import_extra`).
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.errors import UsageError

INSTALL_HINT = "pip install 'conveyor-ml[onnx]'"
META = "conveyor."  # prefix of the metadata keys compile_onnx writes into the ONNX file
Kind = Literal["float", "int", "string"]
ORT_ERRORS = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NotImplemented")


def import_extra(name: str) -> ModuleType:
    """The module ``name`` of the optional extra ``onnx``, or a UsageError saying how to
    install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(
            f"ONNX support needs {name}, which is not installed", hint=INSTALL_HINT
        ) from None


class OnnxModel:
    """An onnxruntime session over :func:`compile_onnx` bytes, called like the sklearn model.

    ``predict`` returns labels with the dtype of the model's ``classes_`` (a regressor's
    values as float64), ``predict_proba`` a float64 ``(rows, classes)`` array: the shapes and
    types scikit-learn returns. ``threads`` is onnxruntime's intra-op thread count; 1 suits
    serving, where requests, not one prediction, use the cores.
    """

    def __init__(self, onnx_bytes: bytes, *, threads: int = 1) -> None:
        ort = import_extra("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: shape warnings would print per call
        try:
            self.session = ort.InferenceSession(
                onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except _ort_errors(ort) as exc:
            raise UsageError(f"not a loadable ONNX model: {exc}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if META + "layout" not in meta:
            raise UsageError(
                "the ONNX model has no Conveyor metadata (layout, columns)",
                hint="compile it with conveyor.registry.onnx.compile_onnx",
            )
        self.layout: str = meta[META + "layout"]
        self.kinds: dict[str, Kind] = dict(json.loads(meta[META + "columns"]))
        self.columns: list[str] = list(self.kinds)
        self._index = pd.Index(self.columns)
        self.is_classifier: bool = meta[META + "task"] == "classifier"
        self.has_predict_proba: bool = json.loads(meta[META + "proba"])
        self._label_dtype = np.dtype(meta[META + "label_dtype"] or "float64")
        self._errors = _ort_errors(ort)

    def predict(self, X: pd.DataFrame | npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Labels (classifier) or values (regressor), as scikit-learn's ``predict``."""
        return self._first(self.session.run(None, self._feeds(X))[0])

    def predict_proba(self, X: pd.DataFrame | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Class probabilities, ``(rows, classes)``, as scikit-learn's ``predict_proba``."""
        if not self.has_predict_proba:
            raise UsageError(
                "this ONNX model has no predict_proba (its scikit-learn model had none)",
                hint="call predict() instead",
            )
        return np.asarray(self.session.run(None, self._feeds(X))[1], dtype=np.float64)

    def _both(self, X: pd.DataFrame) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64] | None]:
        """``predict`` and, when the model has it, ``predict_proba`` from one run."""
        outputs = self.session.run(None, self._feeds(X))
        proba = np.asarray(outputs[1], dtype=np.float64) if self.has_predict_proba else None
        return self._first(outputs[0]), proba

    def _first(self, output: Any) -> npt.NDArray[Any]:
        first = np.asarray(output)
        if self.is_classifier:
            return first.astype(self._label_dtype)
        values = first.astype(np.float64)
        return values.ravel() if values.ndim == 2 and values.shape[1] == 1 else values

    def _feeds(self, X: pd.DataFrame | npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        # Serving path. A matrix of the model's columns, in its order, is the tensor itself
        # (the service passes one when it gives the same answers as a DataFrame). pandas 3
        # selects columns slowly (X[cols]: ~130 us for one row of 20), so a frame already in
        # the model's column order goes to numpy whole.
        if isinstance(X, np.ndarray):
            if self.layout != "tensor" or X.ndim != 2 or X.shape[1] != len(self.columns):
                raise TypeError(
                    f"this ONNX model takes a DataFrame of its {len(self.columns)} columns"
                )
            return {"X": X.astype(np.float32)}
        if self.layout == "tensor" and X.columns.equals(self._index):
            return {"X": _tensor_feed(X)}
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise UsageError(
                f"the rows lack columns the ONNX model takes: {missing[:10]}",
                hint="pass a DataFrame with the model's feature columns",
            )
        if self.layout == "tensor":
            return {"X": _tensor_feed(X[self.columns])}
        return {c: _column_feed(X[c], k).reshape(-1, 1) for c, k in self.kinds.items()}


def _tensor_feed(X: pd.DataFrame) -> npt.NDArray[np.float32]:
    try:
        return X.to_numpy(dtype=np.float32, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"the rows cannot be read as the numbers the ONNX model takes: {exc}",
            hint="pass numeric values in every feature column",
        ) from None


def _column_feed(column: pd.Series, kind: Kind) -> npt.NDArray[Any]:
    if kind == "float":
        return column.to_numpy(dtype=np.float32, na_value=np.nan)
    if kind == "string":
        return column.to_numpy(dtype=object, na_value="nan").astype(str)
    whole = pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
    if whole and not column.hasnans:
        return column.to_numpy(dtype=np.int64)
    try:  # floats that are whole numbers are fine; a cast would silently truncate the rest
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):
        values = np.array([np.nan])
    if not np.all(np.isfinite(values) & (values == np.round(values))):
        raise UsageError(
            f"column {column.name!r} has missing or non-integer values, but the ONNX model "
            "takes it as int64",
            hint="fill it before predicting, or compile from a sample where it has missing "
            "values (it then becomes a float input)",
        )
    return values.astype(np.int64)


def _ort_errors(ort: ModuleType) -> tuple[type[Exception], ...]:
    state = ort.capi.onnxruntime_pybind11_state
    return (RuntimeError, ValueError, *(getattr(state, n) for n in ORT_ERRORS))
