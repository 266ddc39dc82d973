"""Compiling a fitted scikit-learn model to ONNX with skl2onnx: :func:`compile_onnx`.

A model that starts with a ``ColumnTransformer`` gets one ONNX input per column, any other one
float32 tensor ``X`` (see :mod:`conveyor.registry.onnx`); the layout and the columns are written
into the file's metadata, which :class:`~conveyor.registry.onnx_model.OnnxModel` reads. A model
skl2onnx cannot convert, or would convert into a graph known to predict differently, raises
:class:`OnnxUnsupported` naming the step.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from conveyor.errors import UsageError
from conveyor.registry.onnx_model import META, Kind, import_extra

# Everything skl2onnx raises for a model it cannot convert (NameError: an option it rejects).
CONVERT_ERRORS = (RuntimeError, ValueError, TypeError, NotImplementedError, KeyError, NameError)
# skl2onnx <= 1.20 writes tree leaves' missing-value flags as Python bools; protobuf 6.3x warns
# about it, protobuf >= 7.34 refuses it (see _unsupported).
PROTOBUF_BOOL = r"Field onnx\.AttributeProto\.ints: Expected an int, got a boolean"


class OnnxUnsupported(UsageError):
    """A model, or one of its steps, cannot be compiled to an equivalent ONNX graph."""


def compile_onnx(model: Any, sample: pd.DataFrame) -> bytes:
    """The ONNX bytes of a fitted scikit-learn ``model``, typed from ``sample``'s columns.

    The inputs are one float32 tensor, or one input per column for a model that starts with
    a ColumnTransformer (see the module docstring). Classifiers output ``label`` and, when
    they have ``predict_proba``, ``probabilities`` as a plain ``(rows, classes)`` tensor
    (skl2onnx's ZipMap is off). A model skl2onnx cannot
    convert, or would convert into a graph known to predict differently (categorical
    features of HistGradientBoosting), raises :class:`OnnxUnsupported` naming the step.
    """
    skl2onnx = import_extra("skl2onnx")
    _require_fitted(model)
    for where, estimator in _components(model, type(model).__name__):
        _require_converter(skl2onnx, where, estimator)
    columns = _feature_columns(model, sample)
    kinds = {c: _column_kind(sample[c]) for c in columns}
    layout = "columns" if _starts_with_column_transformer(model) else "tensor"
    if layout == "tensor":
        text = [c for c, k in kinds.items() if k == "string"]
        if text:
            raise UsageError(
                f"{type(model).__name__} would get text columns {text[:5]} in one float tensor",
                hint="encode text inside the model: start it with a ColumnTransformer "
                "(OneHotEncoder, OrdinalEncoder), then compile again",
            )
    onx = _convert(skl2onnx, model, _initial_types(kinds, layout))
    classifier = is_fitted_classifier(model)
    meta = {
        "layout": layout,
        "columns": json.dumps([[c, k] for c, k in kinds.items()]),
        "task": "classifier" if classifier else "regressor",
        "proba": json.dumps(classifier and callable(getattr(model, "predict_proba", None))),
        "label_dtype": np.asarray(model.classes_).dtype.str if classifier else "",
        "estimator": type(model).__name__,
    }
    import_extra("onnx").helper.set_model_props(onx, {META + k: v for k, v in meta.items()})
    return bytes(onx.SerializeToString())


def _require_fitted(model: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except (NotFittedError, TypeError) as exc:
        raise UsageError(
            f"cannot compile {type(model).__name__} to ONNX: {exc}",
            hint="compile the fitted model a training step returned",
        ) from None


def _components(model: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every estimator inside ``model`` (itself included), with a path naming it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    yield where, model
    parts: list[tuple[str, Any]] = []
    if isinstance(model, Pipeline):
        parts = [(name, step) for name, step in model.steps]
    elif isinstance(model, ColumnTransformer):
        parts = [(name, step) for name, step, _ in model.transformers_]
    elif isinstance(model, FeatureUnion):
        parts = list(model.transformer_list)
    for name, step in parts:
        if step is not None and not isinstance(step, str):  # "passthrough", "drop"
            yield from _components(step, f"{where} > {name}")


def _require_converter(skl2onnx: ModuleType, where: str, estimator: Any) -> None:
    name = type(estimator).__name__
    try:
        skl2onnx.get_model_alias(type(estimator))
    except RuntimeError:
        raise OnnxUnsupported(
            f"cannot compile {where} to ONNX: skl2onnx {skl2onnx.__version__} has no "
            f"converter for {name}",
            hint=f"replace {name} with an estimator skl2onnx supports, register a converter "
            "for it (skl2onnx.update_registered_converter), or serve the scikit-learn model",
        ) from None
    categorical = getattr(estimator, "is_categorical_", None)
    if categorical is not None and bool(np.any(categorical)):
        raise OnnxUnsupported(
            f"cannot compile {where} to ONNX: {name} uses categorical features, which "
            "skl2onnx converts as numeric thresholds, so ONNX would predict differently",
            hint="encode those columns in a ColumnTransformer (OrdinalEncoder) before the "
            "model and use categorical_features=None, or serve the scikit-learn model",
        )


def _feature_columns(model: Any, sample: pd.DataFrame) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        expected = getattr(model, "n_features_in_", sample.shape[1])
        if sample.shape[1] != expected:
            raise UsageError(
                f"{type(model).__name__} takes {expected} features; the sample has "
                f"{sample.shape[1]} columns",
                hint="pass a sample with exactly the columns the model was trained on",
            )
        return [str(c) for c in sample.columns]
    columns = [str(c) for c in names]
    missing = [c for c in columns if c not in sample.columns]
    if missing:
        raise UsageError(
            f"the sample lacks columns {type(model).__name__} was trained on: {missing[:10]}",
            hint="pass a sample of the training rows (every feature column)",
        )
    return columns


def _column_kind(column: pd.Series) -> Kind:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return "int" if not column.hasnans else "float"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "string"
    raise UsageError(
        f"column {column.name!r} has dtype {column.dtype}, which has no ONNX input type here",
        hint="convert it to numbers or text in the features step (e.g. a date to its parts)",
    )


def _starts_with_column_transformer(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[0][1]
    return isinstance(model, ColumnTransformer)


def is_fitted_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model)) and hasattr(model, "classes_")


def _initial_types(kinds: dict[str, Kind], layout: str) -> list[tuple[str, Any]]:
    types = import_extra("skl2onnx.common.data_types")
    if layout == "tensor":
        return [("X", types.FloatTensorType([None, len(kinds)]))]
    tensor = {
        "float": types.FloatTensorType,
        "int": types.Int64TensorType,
        "string": types.StringTensorType,
    }
    return [(c, tensor[k]([None, 1])) for c, k in kinds.items()]


def _convert(skl2onnx: ModuleType, model: Any, initial_types: list[tuple[str, Any]]) -> Any:
    proba = is_fitted_classifier(model) and callable(getattr(model, "predict_proba", None))
    options = {id(model): {"zipmap": False}} if proba else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PROTOBUF_BOOL, category=DeprecationWarning)
        try:
            return skl2onnx.convert_sklearn(model, initial_types=initial_types, options=options)
        except CONVERT_ERRORS as exc:
            raise _unsupported(model, exc) from None


def _unsupported(model: Any, exc: BaseException) -> OnnxUnsupported:
    lines = [str(e).strip().splitlines() for e in (exc, exc.__cause__) if e is not None]
    reason = "; ".join(line[0][:200] for line in lines if line)
    name = type(model).__name__
    hint = "serve the scikit-learn model, or replace the step skl2onnx cannot convert"
    if "Expected an int, got a boolean" in reason:
        hint = (
            "skl2onnx 1.20 writes tree models that protobuf >= 7.34 refuses: "
            "pip install 'protobuf<7.34'"
        )
    return OnnxUnsupported(f"skl2onnx could not convert {name}: {reason}", hint=hint)
