"""Compile a scikit-learn model to ONNX, serve it with onnxruntime, and prove the two agree.

The ONNX form is an optimisation, never a different model: :func:`prove_equivalence` compares
both runtimes row by row, and only a model whose every check passes (:func:`equivalent`) may
be served by onnxruntime (DESIGN.md section 6, infra validation).

Inputs. A model that starts with a ``ColumnTransformer`` gets **one ONNX input per column**,
named after the column (float32, int64 or string): skl2onnx selects the transformer's columns
by input name, and text cannot share a float tensor with numbers. Any other model (a plain
estimator, or a Pipeline of numeric steps) gets **one float32 tensor** ``X`` of shape
``(rows, columns)`` in the model's column order: one conversion and one input per call, the
cheapest path for single-row serving. Either way :class:`OnnxModel` takes a DataFrame and
builds the inputs itself, selecting columns by name; the layout and the columns are stored in
the ONNX file's metadata. A missing text value is fed as the string ``"nan"``, which is how
skl2onnx writes a ``nan`` category of a OneHotEncoder.

skl2onnx and onnxruntime are the optional extra ``onnx`` (``pip install 'conveyor-ml[onnx]'``)
and are imported only when a function here needs them.
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.model_output import model_output
from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import ConveyorError, UsageError

DEFAULT_TOLERANCE = 1e-5
WORST_ROWS = 10
PROBE_ROWS = 100  # rows of the sample given a missing value, per column
INSTALL_HINT = "pip install 'conveyor-ml[onnx]'"
META = "conveyor."  # prefix of the metadata keys compile_onnx writes into the ONNX file
Kind = Literal["float", "int", "string"]
Predict = Literal["predict_proba", "predict"]
# Everything skl2onnx raises for a model it cannot convert (NameError: an option it rejects).
CONVERT_ERRORS = (RuntimeError, ValueError, TypeError, NotImplementedError, KeyError, NameError)
ORT_ERRORS = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NotImplemented")
# skl2onnx <= 1.20 writes tree leaves' missing-value flags as Python bools; protobuf 6.3x warns
# about it, protobuf >= 7.34 refuses it (see _unsupported).
PROTOBUF_BOOL = r"Field onnx\.AttributeProto\.ints: Expected an int, got a boolean"
_MISSING = "onnx:missing_values"


class OnnxUnsupported(UsageError):
    """A model, or one of its steps, cannot be compiled to an equivalent ONNX graph."""


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(
            f"ONNX support needs {name}, which is not installed", hint=INSTALL_HINT
        ) from None


# --- compiling --------------------------------------------------------------------------------


def compile_onnx(model: Any, sample: pd.DataFrame) -> bytes:
    """The ONNX bytes of a fitted scikit-learn ``model``, typed from ``sample``'s columns.

    The inputs are one float32 tensor, or one input per column for a model that starts with
    a ColumnTransformer (see the module docstring). Classifiers output ``label`` and, when
    they have ``predict_proba``, ``probabilities`` as a plain ``(rows, classes)`` tensor
    (skl2onnx's ZipMap is off). A model skl2onnx cannot
    convert, or would convert into a graph known to predict differently (categorical
    features of HistGradientBoosting), raises :class:`OnnxUnsupported` naming the step.
    """
    skl2onnx = _import("skl2onnx")
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
    classifier = _is_classifier(model)
    meta = {
        "layout": layout,
        "columns": json.dumps([[c, k] for c, k in kinds.items()]),
        "task": "classifier" if classifier else "regressor",
        "proba": json.dumps(classifier and callable(getattr(model, "predict_proba", None))),
        "label_dtype": np.asarray(model.classes_).dtype.str if classifier else "",
        "estimator": type(model).__name__,
    }
    _import("onnx").helper.set_model_props(onx, {META + k: v for k, v in meta.items()})
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


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model)) and hasattr(model, "classes_")


def _initial_types(kinds: dict[str, Kind], layout: str) -> list[tuple[str, Any]]:
    types = _import("skl2onnx.common.data_types")
    if layout == "tensor":
        return [("X", types.FloatTensorType([None, len(kinds)]))]
    tensor = {
        "float": types.FloatTensorType,
        "int": types.Int64TensorType,
        "string": types.StringTensorType,
    }
    return [(c, tensor[k]([None, 1])) for c, k in kinds.items()]


def _convert(skl2onnx: ModuleType, model: Any, initial_types: list[tuple[str, Any]]) -> Any:
    proba = _is_classifier(model) and callable(getattr(model, "predict_proba", None))
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


# --- serving ----------------------------------------------------------------------------------


class OnnxModel:
    """An onnxruntime session over :func:`compile_onnx` bytes, called like the sklearn model.

    ``predict`` returns labels with the dtype of the model's ``classes_`` (a regressor's
    values as float64), ``predict_proba`` a float64 ``(rows, classes)`` array: the shapes and
    types scikit-learn returns. ``threads`` is onnxruntime's intra-op thread count; 1 suits
    serving, where requests, not one prediction, use the cores.
    """

    def __init__(self, onnx_bytes: bytes, *, threads: int = 1) -> None:
        ort = _import("onnxruntime")
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

    def predict(self, X: pd.DataFrame) -> npt.NDArray[Any]:
        """Labels (classifier) or values (regressor), as scikit-learn's ``predict``."""
        return self._first(self.session.run(None, self._feeds(X))[0])

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
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

    def _feeds(self, X: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
        # Serving path. pandas 3 selects columns slowly (X[cols]: ~130 us for one row of 20),
        # so a frame already in the model's column order goes to numpy whole.
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


# --- proving equivalence ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outputs:
    labels: npt.NDArray[Any] | None  # a classifier's labels
    scores: npt.NDArray[np.float64] | None  # (rows, k): probabilities, or regression values


def prove_equivalence(
    model: Any,
    onnx_bytes: bytes,
    golden: pd.DataFrame,
    sample: pd.DataFrame,
    *,
    score_tolerance: float = DEFAULT_TOLERANCE,
    predict: Predict = "predict_proba",
) -> list[CheckResult]:
    """Checks (kind "infra") that ONNX predicts what ``model`` predicts, row by row.

    Three checks: the ``golden`` rows, the (larger) ``sample``, and the sample's first rows
    with a missing value put in each float or text column in turn, since converters may
    route a missing value differently from scikit-learn (RandomForest's does) and a sample
    without one would never show it. A classifier's labels must be identical; its scores
    (``predict="predict_proba"``) or a regressor's values (``predict="predict"``) must differ
    by at most ``score_tolerance`` times ``max(1, |value|)``: absolute for probabilities.

    Why 1e-5: ONNX computes in float32, whose rounding step is 1.2e-7 of a value. A linear
    model over tens of features or a boosted ensemble of hundreds of trees accumulates some
    tens of those in its raw score (the suite measures up to ~5e-7 on probabilities), and
    the sigmoid or softmax does not enlarge an absolute error. 1e-5 leaves 20x headroom over
    that noise while any real difference (a lost step, a changed coefficient, one tree
    taking another branch) moves probabilities by far more.

    Metrics: ``rows_compared``, ``mismatched_labels``, ``max_abs_diff``, ``rows_over_tolerance``;
    details: the tolerance and up to 10 worst rows (index, sklearn, onnx, abs_diff).
    """
    if predict not in ("predict_proba", "predict"):
        raise UsageError(f"predict must be 'predict_proba' or 'predict', not {predict!r}")
    for what, rows in (("golden", golden), ("sample", sample)):
        if rows.empty:
            raise UsageError(f"the {what} rows are empty: nothing to prove equivalence on")
    onnx_model = OnnxModel(onnx_bytes)
    if predict == "predict_proba" and not (
        onnx_model.has_predict_proba and callable(getattr(model, "predict_proba", None))
    ):
        raise UsageError(
            f"{type(model).__name__} (or its ONNX form) has no predict_proba",
            hint="pass predict='predict' to compare labels (or a regressor's values)",
        )
    checks = [("onnx:golden", "golden", golden), ("onnx:sample", "sample", sample)]
    results = [
        _check(
            name, what, onnx_model, X, _sklearn_outputs(model, X, predict), predict, score_tolerance
        )
        for name, what, X in checks
    ]
    return [*results, _missing_values_check(model, onnx_model, sample, predict, score_tolerance)]


def equivalent(results: list[CheckResult]) -> bool:
    """True only when every check of :func:`prove_equivalence` passed: ONNX may serve."""
    return bool(results) and all(r.passed for r in results)


def _sklearn_outputs(model: Any, X: pd.DataFrame, predict: Predict) -> _Outputs:
    if not _is_classifier(model):
        values = model_output(model, X, "predict").astype(np.float64)
        return _Outputs(None, values.reshape(len(X), -1))
    labels = model_output(model, X, "predict")
    if predict == "predict":
        return _Outputs(labels, None)
    return _Outputs(labels, model_output(model, X, "predict_proba").astype(np.float64))


def _onnx_outputs(onnx_model: OnnxModel, X: pd.DataFrame, predict: Predict) -> _Outputs:
    first, proba = onnx_model._both(X)
    if not onnx_model.is_classifier:
        return _Outputs(None, first.reshape(len(X), -1))
    return _Outputs(first, proba if predict == "predict_proba" else None)


def _check(
    name: str,
    what: str,
    onnx_model: OnnxModel,
    X: pd.DataFrame,
    sk: _Outputs,
    predict: Predict,
    tol: float,
) -> CheckResult:
    errors: tuple[type[BaseException], ...] = (ConveyorError, *onnx_model._errors)
    try:
        ox = _onnx_outputs(onnx_model, X, predict)
    except errors as exc:
        message = f"{what}: onnxruntime could not score the {len(X)} rows: {exc}"
        return CheckResult(name=name, kind="infra", passed=False, message=message)
    return _verdict(name, what, sk, ox, [_plain(i) for i in X.index], tol)


def _verdict(
    name: str, what: str, sk: _Outputs, ox: _Outputs, index: list[Any], tol: float
) -> CheckResult:
    rows = len(index)
    wrong_label = np.zeros(rows, dtype=bool)
    diff = np.zeros(rows)
    over = np.zeros(rows, dtype=bool)
    metrics = {"rows_compared": float(rows)}
    if sk.labels is not None and ox.labels is not None:
        wrong_label = np.asarray(sk.labels != ox.labels, dtype=bool).reshape(rows)
        metrics["mismatched_labels"] = float(wrong_label.sum())
    if sk.scores is not None and ox.scores is not None:
        diff = _row_diff(sk.scores, ox.scores)
        over = diff > tol * np.maximum(1.0, np.nanmax(np.abs(sk.scores), axis=1, initial=0.0))
        finite = diff[np.isfinite(diff)]
        metrics["max_abs_diff"] = float(finite.max()) if finite.size else 0.0
        metrics["rows_over_tolerance"] = float(over.sum())
        if sk.labels is not None:
            metrics["tied_labels"] = float((wrong_label & _ties(sk.scores, tol)).sum())
    order = np.lexsort((-diff, ~wrong_label))  # wrong labels first, then largest diff
    worst = [i for i in order[:WORST_ROWS] if wrong_label[i] or diff[i] > 0]
    bad = wrong_label | over
    return CheckResult(
        name=name,
        kind="infra",
        passed=not bad.any(),
        metrics=metrics,
        message=_message(what, metrics, int(bad.sum()), [index[i] for i in worst[:5]], tol),
        details={
            "tolerance": tol,
            "worst_rows": [_row(index[i], i, sk, ox, diff[i]) for i in worst],
        },
    )


def _ties(scores: npt.NDArray[np.float64], tol: float) -> npt.NDArray[np.bool_]:
    """Rows whose two best classes score within ``tol``: float32 may break the tie otherwise."""
    if scores.shape[1] < 2:
        return np.zeros(scores.shape[0], dtype=bool)
    top = np.sort(scores, axis=1)[:, -2:]
    return np.asarray(top[:, 1] - top[:, 0] <= tol)


def _message(what: str, metrics: dict[str, float], bad: int, worst: list[Any], tol: float) -> str:
    rows = int(metrics["rows_compared"])
    if not bad:
        if "max_abs_diff" in metrics:
            return f"{what}: {rows} rows agree (max |diff| {metrics['max_abs_diff']:.2g})"
        return f"{what}: {rows} rows, identical labels"
    parts = [f"{int(metrics.get('mismatched_labels', 0))} labels"]
    if metrics.get("tied_labels"):
        parts[0] += f" ({int(metrics['tied_labels'])} of them ties between two classes)"
    if "rows_over_tolerance" in metrics:
        parts.append(f"{int(metrics['rows_over_tolerance'])} scores over {tol:g}")
    return (
        f"{what}: ONNX differs from scikit-learn on {bad} of {rows} rows ({', '.join(parts)}); "
        f"worst rows: {', '.join(repr(i) for i in worst)}"
    )


def _row_diff(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Per row, the largest absolute difference; NaN on one side only is infinitely far."""
    if a.shape != b.shape:
        return np.full(a.shape[0], np.inf)
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a - b))
    diff = np.where(one_nan, np.inf, diff)
    return np.asarray(diff.max(axis=1, initial=0.0))


def _row(index: Any, i: int, sk: _Outputs, ox: _Outputs, diff: float) -> dict[str, Any]:
    def side(out: _Outputs) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if out.labels is not None:
            found["label"] = _plain(out.labels[i])
        if out.scores is not None and i < len(out.scores):
            found["scores"] = [_plain(v) for v in out.scores[i]]
        return found

    return {"index": index, "sklearn": side(sk), "onnx": side(ox), "abs_diff": _plain(diff)}


def _plain(value: Any) -> Any:
    """A JSON-able form of an index label or output value (NaN and infinity become None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _missing_values_check(
    model: Any, onnx_model: OnnxModel, sample: pd.DataFrame, predict: Predict, tol: float
) -> CheckResult:
    """The sample's first rows with a missing value in each float or text column in turn."""
    blocks: list[pd.DataFrame] = []
    outputs: list[_Outputs] = []
    rejected: list[str] = []
    ints = [c for c, k in onnx_model.kinds.items() if k == "int"]
    # A column the sample lacks has already failed the other checks.
    for column in [c for c in onnx_model.columns if c not in ints and c in sample.columns]:
        block = sample.iloc[:PROBE_ROWS].copy()
        block[column] = pd.Series(np.nan, index=block.index, dtype=block[column].dtype)
        try:
            outputs.append(_sklearn_outputs(model, block, predict))
        except UsageError:  # the model refuses a missing value here: nothing to compare
            rejected.append(column)
            continue
        blocks.append(block.set_axis([f"{i} ({column} missing)" for i in block.index]))
    details = {"rejected_by_sklearn": rejected, "int_columns_not_probed": ints}
    note = (
        f"; scikit-learn rejects missing values in {rejected[:5]} but onnxruntime does not: "
        "validate inputs before serving"
        if rejected
        else ""
    )
    if not blocks:
        message = "missing values: no column to probe" + note
        return CheckResult(
            name=_MISSING,
            kind="infra",
            passed=True,
            severity=Severity.INFO,
            message=message,
            details=details,
        )
    probe = pd.concat(blocks)
    result = _check(_MISSING, "missing values", onnx_model, probe, _stack(outputs), predict, tol)
    return CheckResult(
        name=_MISSING,
        kind="infra",
        passed=result.passed,
        metrics=result.metrics,
        message=result.message + note,
        details={**result.details, **details},
    )


def _stack(outputs: list[_Outputs]) -> _Outputs:
    labels = [o.labels for o in outputs if o.labels is not None]
    scores = [o.scores for o in outputs if o.scores is not None]
    return _Outputs(
        np.concatenate(labels) if labels else None, np.concatenate(scores) if scores else None
    )
