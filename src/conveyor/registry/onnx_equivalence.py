"""Proving that ONNX predicts what scikit-learn predicts, row by row, before it may serve.

The ONNX form is an optimisation, never a different model: :func:`prove_equivalence` compares
both runtimes on the golden rows, a larger sample, and the sample with missing values put in
each column in turn; only a model whose every check passes (:func:`equivalent`) may be served
by onnxruntime (DESIGN.md section 6, infra validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.model_output import model_output
from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import ConveyorError, UsageError
from conveyor.registry.onnx_compile import is_fitted_classifier
from conveyor.registry.onnx_model import OnnxModel

DEFAULT_TOLERANCE = 1e-5
WORST_ROWS = 10
PROBE_ROWS = 100  # rows of the sample given a missing value, per column
Predict = Literal["predict_proba", "predict"]
_MISSING = "onnx:missing_values"


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
    if not is_fitted_classifier(model):
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
