"""The served model: a fitted estimator, its signature, and the fastest correct way to call it.

The model call is the service's limit, so how the columns reach the model matters. A model
fitted on a matrix gets one, columns in signature order. A scikit-learn model fitted on a
DataFrame checks the feature names of every input, and building a DataFrame per request and
validating it costs several times the prediction of a small linear model. So, when every input
column is numeric, the service tries the columns as one numpy matrix in signature order, with
the model's recorded feature names set aside (its ``n_features_in_`` check stays), and keeps
that path only if it gives the DataFrame path's output on the example rows (labels exactly,
scores within 1e-12) without a warning. Otherwise (strings, a ColumnTransformer that selects
columns by name, any difference) each call gets a DataFrame.

The model is also timed on the example rows, so the service can call a fast model directly on
its event loop for small requests (a hop to a worker thread costs more than such a call).
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.errors import UsageError
from conveyor.serve.signature import Array, Block, Signature

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.registry.package import Package

log = logging.getLogger("conveyor.serve")

PREDICT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)
Call = Callable[[Sequence[Array]], Array]
SCORE_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSpec:
    """What one call returns per row: a dtype and the shape after the row axis."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]


class ServedModel:
    """One model version, ready to predict on typed columns in signature order. It owns
    ``estimator``: the fast input path may set the estimator's recorded feature names aside.

    Build it from a package (:meth:`from_package`) or, in tests and notebooks, directly from a
    fitted estimator (:meth:`from_estimator`).
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        estimator: Any,
        signature: Signature,
        method: str,
        examples: pd.DataFrame | None = None,
    ) -> None:
        predict = getattr(estimator, method, None)
        if method not in ("predict", "predict_proba") or not callable(predict):
            raise UsageError(
                f"{type(estimator).__name__} has no {method}() method",
                hint="serve classifiers with predict_proba and regressors with predict",
            )
        self.name = name
        self.version = str(version)
        self.estimator = estimator
        self.signature = signature
        self.method = method
        sample = example_columns(signature, examples)
        self.input_form, self._call = _choose_call(estimator, method, signature, sample)
        probe = self._call(sample)
        self.output = OutputSpec(dtype=probe.dtype, shape=tuple(probe.shape[1:]))
        self.first_row_s, self.per_row_s = _timing(self._call, sample)
        log.info("serving %s:%s with %s input", name, self.version, self.input_form)

    def rows_within(self, seconds: float) -> int:
        """How many rows one call is expected to predict within ``seconds`` (0: not even one),
        from the timing of the example rows when the model was loaded."""
        if self.first_row_s > seconds:
            return 0
        if self.per_row_s <= 0:
            return 1 << 30
        return 1 + int((seconds - self.first_row_s) / self.per_row_s)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def predict(self, columns: Sequence[Array]) -> Array:
        """The model's output for typed columns (one array per signature column)."""
        return self._call(columns)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        *,
        name: str = "model",
        version: str | int = "1",
        signature: Signature | None = None,
        method: str | None = None,
        examples: pd.DataFrame | None = None,
    ) -> ServedModel:
        """Serve a copy of a fitted estimator (the service may set its recorded feature names
        aside; the caller's estimator is left as it is). The signature defaults to
        ``examples``' columns, or to ``feature_names_in_`` as doubles."""
        estimator = copy.deepcopy(estimator)
        if signature is None:
            if examples is not None:
                signature = Signature.from_frame(examples)
            else:
                names = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
                if not names:
                    raise UsageError(
                        "no signature: the estimator has no feature_names_in_",
                        hint="pass signature= or examples= (a DataFrame of input rows)",
                    )
                signature = Signature.from_mlflow([{"name": n, "type": "double"} for n in names])
        if method is None:
            has_proba = callable(getattr(estimator, "predict_proba", None))
            method = "predict_proba" if has_proba else "predict"
        return cls(
            name=name,
            version=str(version),
            estimator=estimator,
            signature=signature,
            method=method,
            examples=examples,
        )

    @classmethod
    def from_onnx(cls, package: Package, onnx_bytes: bytes) -> ServedModel:
        """Serve the package's version with its ONNX file instead of scikit-learn."""
        signature_doc = (package.mlmodel.get("signature") or {}).get("inputs")
        examples = package.golden_inputs()
        signature = (
            Signature.from_mlflow(signature_doc)
            if signature_doc
            else Signature.from_frame(examples)
        )
        return cls(
            name=str(package.manifest["name"]),
            version=str(package.manifest["version"]),
            estimator=OnnxEstimator(onnx_bytes),
            signature=signature,
            method=package.predict,
            examples=examples,
        )

    @classmethod
    def from_package(cls, package: Package, trusted_types: Sequence[str] = ()) -> ServedModel:
        """Serve a verified package: its model (loaded with skops under the allowlist), its
        signature, its predict method, and its golden inputs as the example rows."""
        signature_doc = (package.mlmodel.get("signature") or {}).get("inputs")
        examples = package.golden_inputs()
        signature = (
            Signature.from_mlflow(signature_doc)
            if signature_doc
            else Signature.from_frame(examples)
        )
        return cls(
            name=str(package.manifest["name"]),
            version=str(package.manifest["version"]),
            estimator=package.load_model(trusted_types),
            signature=signature,
            method=package.predict,
            examples=examples,
        )


class OnnxEstimator:
    """An ONNX model (proven equivalent by ``conveyor model validate --onnx``) in the shape of
    a scikit-learn estimator: a DataFrame in (or, for a model of one float tensor, the matrix
    of its columns in its order), the same outputs out."""

    def __init__(self, onnx_bytes: bytes) -> None:
        from conveyor.registry.onnx import OnnxModel

        self.model = OnnxModel(onnx_bytes)
        self.feature_names_in_ = np.asarray(self.model.columns, dtype=object)

    def predict(self, X: pd.DataFrame | Array) -> Array:
        return self.model.predict(X)

    def predict_proba(self, X: pd.DataFrame | Array) -> Array:
        return self.model.predict_proba(X)


def _timing(call: Call, sample: list[Array], repeat: int = 5) -> tuple[float, float]:
    """(seconds for one row, seconds per further row): the best of ``repeat`` calls each."""
    one = [c[:1] for c in sample]
    first = min(_seconds(call, one) for _ in range(repeat))
    rows = len(sample[0])
    if rows < 2:
        return first, first
    many = min(_seconds(call, sample) for _ in range(repeat))
    return first, max(0.0, (many - first) / (rows - 1))


def _seconds(call: Call, columns: list[Array]) -> float:
    start = time.perf_counter()
    call(columns)
    return time.perf_counter() - start


def example_columns(signature: Signature, examples: pd.DataFrame | None) -> list[Array]:
    """Typed columns of the example rows, or one synthetic row (zeros, False, "")."""
    columns: list[Array] = []
    for spec in signature.columns:
        if examples is not None and spec.name in examples.columns and len(examples):
            values = examples[spec.name]
            if spec.type in ("string",):
                columns.append(values.to_numpy(dtype=object))
            else:
                columns.append(values.to_numpy(dtype=spec.dtype))
        elif spec.type == "string":
            columns.append(np.array([""], dtype=object))
        else:
            columns.append(np.zeros(1, dtype=spec.dtype))
    rows = {len(c) for c in columns}
    if len(rows) != 1:
        shortest = min(rows)
        columns = [c[:shortest] for c in columns]
    return columns


def _frame_call(predict: Callable[[Any], Any], names: list[str]) -> Call:
    import pandas as pd

    def call(columns: Sequence[Array]) -> Array:
        frame = pd.DataFrame(dict(zip(names, columns, strict=True)), copy=False)
        return np.asarray(predict(frame))

    return call


def _array_call(predict: Callable[[Any], Any]) -> Call:
    # Column-major, as pandas hands a numeric DataFrame's block to scikit-learn, so the
    # model sums in the same order and gives the same bits. A Block is that matrix already.
    def call(columns: Sequence[Array]) -> Array:
        if isinstance(columns, Block):
            return np.asarray(predict(columns.matrix.T))
        return np.asarray(predict(np.stack(columns).T))

    return call


def _named_step(estimator: Any) -> Any:
    """The estimator that checks feature names: a pipeline's first real step, or itself."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        for _, step in steps:
            if step is not None and step != "passthrough":
                return _named_step(step)
        return None
    return estimator


def _same(a: Array, b: Array) -> bool:
    """Equal outputs: the same labels, or scores within 1e-12 (the golden predictions of a
    package are checked to 1e-9)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=0, atol=SCORE_TOLERANCE, equal_nan=True))
    return bool(np.array_equal(a, b))


def _choose_call(
    estimator: Any, method: str, signature: Signature, sample: list[Array]
) -> tuple[str, Call]:
    predict = getattr(estimator, method)
    step = _named_step(estimator)
    names = getattr(step, "__dict__", {}).get("feature_names_in_")
    array = _array_call(predict)
    if names is None:  # fitted on a matrix: it takes one, columns in signature order
        _reference(array, sample, estimator, method)
        return "numpy", array
    frame = _frame_call(predict, signature.names)
    want = _reference(frame, sample, estimator, method)
    if not signature.numeric or list(map(str, names)) != signature.names:
        return "dataframe", frame  # strings, or a model that selects columns by name
    del step.feature_names_in_
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = array(sample)
    except (*PREDICT_ERRORS, Warning):
        got = None
    if got is not None and _same(got, want):
        return "numpy", array
    step.feature_names_in_ = names  # restore: the DataFrame path checks names again
    return "dataframe", frame


def _reference(call: Call, sample: list[Array], estimator: Any, method: str) -> Array:
    try:
        return call(sample)
    except PREDICT_ERRORS as exc:
        raise UsageError(
            f"{type(estimator).__name__}.{method}() fails on the example rows: "
            f"{type(exc).__name__}: {exc}",
            hint="the signature and the example rows must be what the model was trained on",
        ) from None
