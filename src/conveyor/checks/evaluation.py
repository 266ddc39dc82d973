"""Model evaluation as a JSON value: metrics, intervals, calibration, confusion, slices.

``evaluate_classifier`` takes labels and scores (binary: the positive-class probability;
multiclass: the ``(n, k)`` class probabilities), ``evaluate_regressor`` takes targets and
predictions, ``evaluate_model`` calls a fitted model. Each returns an :class:`Evaluation`,
which a run stores as an artifact (``to_json``) and a report renders (``to_markdown``).

A metric that cannot be computed on the rows given (ROC AUC with one class in ``y_true``,
precision with nothing predicted positive, R^2 of a constant target) is ``None`` with the
reason in ``undefined``; it is never reported as a number. Inputs that cannot be evaluated
(empty, mismatched lengths, NaN scores, probabilities outside [0, 1]) raise
:class:`~conveyor.errors.UsageError`.

The :class:`Evaluation` value and its renderings are defined in
:mod:`conveyor.checks.evaluation_report`, and calling a model in
:mod:`conveyor.checks.model_output`; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.bootstrap import (
    Interval,
    metric_stats,
    percentile_interval,
    point_estimate,
    resampled_values,
)
from conveyor.checks.evaluation_report import (
    SCHEMA,
    Calibration,
    CalibrationBin,
    Evaluation,
    JSONScalar,
    SliceMetrics,
    json_scalar,
)
from conveyor.checks.model_output import PREDICT_ERRORS, Predict, model_output, model_scored
from conveyor.checks.scored import Scored, scored_classification, scored_regression
from conveyor.errors import UsageError, did_you_mean

__all__ = [
    "PREDICT_ERRORS",
    "SCHEMA",
    "Calibration",
    "CalibrationBin",
    "Evaluation",
    "JSONScalar",
    "Predict",
    "SliceMetrics",
    "compute_metrics",
    "evaluate_classifier",
    "evaluate_model",
    "evaluate_regressor",
    "evaluate_scored",
    "json_scalar",
    "model_output",
    "model_scored",
    "slice_rows",
    "undefined_reason",
]


# --- metrics ------------------------------------------------------------------------------


def _predicted(s: Scored) -> npt.NDArray[np.int64]:
    """The predicted class index of each row."""
    if s.task == "binary":
        return np.asarray(s.score >= s.threshold, dtype=np.int64)
    return np.asarray(np.argmax(s.score, axis=1), dtype=np.int64)


def undefined_reason(name: str, s: Scored) -> str | None:
    """Why metric ``name`` cannot be computed on these rows, or None when it can."""
    if s.task == "regression":
        if name == "r2" and (s.n < 2 or np.ptp(s.y) == 0.0):
            return "y_true is constant (R^2 needs variation in the target)"
        if name == "mape" and not np.any(s.y != 0.0):
            return "every y_true is 0 (MAPE leaves out zero targets)"
        return None
    k = len(s.classes)
    truth = np.bincount(s.y.astype(np.int64), minlength=k)
    said = np.bincount(_predicted(s), minlength=k)
    # binary precision, recall, F1 and PR AUC are about the positive class (index 1) only
    considered = range(k) if s.task == "multiclass" or name == "roc_auc" else [1]
    absent = [repr(s.classes[c]) for c in considered if truth[c] == 0]
    unsaid = [repr(s.classes[c]) for c in considered if said[c] == 0]
    neither = [repr(s.classes[c]) for c in considered if truth[c] + said[c] == 0]
    if name in ("roc_auc", "pr_auc", "recall") and absent:
        return f"no rows of class {', '.join(absent)} in y_true"
    if name == "precision" and unsaid:
        return f"no row is predicted as class {', '.join(unsaid)}"
    if name == "f1" and neither:
        return f"class {', '.join(neither)} is neither in y_true nor predicted"
    return None


def compute_metrics(s: Scored) -> tuple[dict[str, float | None], dict[str, str]]:
    """Point estimate of every metric of the task, or None with the reason."""
    values: dict[str, float | None] = {}
    undefined: dict[str, str] = {}
    for name, stat in metric_stats(s).items():
        reason = undefined_reason(name, s)
        value = None if reason else point_estimate(stat, s.n)
        if value is not None and not np.isfinite(value):
            reason, value = "could not be computed on these rows", None
        values[name] = value
        if reason:
            undefined[name] = reason
    return values, undefined


def _intervals(
    s: Scored, defined: list[str], *, resamples: int, confidence: float, seed: int
) -> tuple[dict[str, Interval], list[str]]:
    stats = metric_stats(s, defined)
    values = resampled_values(list(stats.values()), s.n, resamples=resamples, seed=seed)
    found: dict[str, Interval] = {}
    notes: list[str] = []
    for i, name in enumerate(stats):
        interval = percentile_interval(values[i], confidence)
        if interval is None:
            bad = int((~np.isfinite(values[i])).sum())
            notes.append(f"no interval for {name}: undefined on {bad} of {resamples} resamples")
        else:
            found[name] = interval
    return found, notes


def _calibration(s: Scored, bins: int) -> Calibration:
    which = np.clip((s.score * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=s.score, minlength=bins)
    observed = np.bincount(which, weights=s.y, minlength=bins)
    out = []
    for b in range(bins):
        c = int(count[b])
        out.append(
            CalibrationBin(
                lower=b / bins,
                upper=(b + 1) / bins,
                count=c,
                mean_predicted=float(predicted[b] / c) if c else None,
                observed_rate=float(observed[b] / c) if c else None,
            )
        )
    ece = float(np.abs(predicted - observed).sum() / s.n)
    return Calibration(bins=tuple(out), ece=ece)


def _confusion(s: Scored) -> tuple[tuple[int, ...], ...]:
    k = len(s.classes)
    cells = np.bincount(s.y.astype(np.int64) * k + _predicted(s), minlength=k * k)
    return tuple(tuple(int(c) for c in row) for row in cells.reshape(k, k))


def slice_rows(slices: pd.DataFrame, n: int) -> list[tuple[str, JSONScalar, npt.NDArray[Any]]]:
    """``(column, value, row positions)`` of every value of every slice column."""
    if len(slices) != n:
        raise UsageError(
            f"slices has {len(slices)} rows but the evaluation has {n}",
            hint="pass slice columns for exactly the evaluation rows, in the same order",
        )
    out = []
    for column in slices.columns:
        groups = slices.groupby(column, dropna=False, sort=False).indices
        keyed = sorted(((json_scalar(v), rows) for v, rows in groups.items()), key=_by_value)
        out += [(str(column), value, np.asarray(rows, dtype=np.int64)) for value, rows in keyed]
    return out


def _by_value(item: tuple[JSONScalar, Any]) -> tuple[bool, str]:
    return (item[0] is None, str(item[0]))


def _slices(s: Scored, slices: pd.DataFrame, min_size: int) -> tuple[SliceMetrics, ...]:
    out = []
    for column, value, rows in slice_rows(slices, s.n):
        metrics, undefined = compute_metrics(s.take(rows))
        out.append(
            SliceMetrics(
                column=column,
                value=value,
                n=int(rows.size),
                small=bool(rows.size < min_size),
                metrics=metrics,
                undefined=undefined,
            )
        )
    return tuple(out)


# --- evaluation ---------------------------------------------------------------------------


def evaluate_scored(
    s: Scored,
    *,
    slices: pd.DataFrame | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_size: int = 30,
    calibration_bins: int = 10,
) -> Evaluation:
    """The :class:`Evaluation` of validated inputs (see :func:`evaluate_classifier`)."""
    _check_settings(bootstrap, confidence, calibration_bins)
    metrics, undefined = compute_metrics(s)
    defined = [name for name, value in metrics.items() if value is not None]
    intervals, notes = (
        _intervals(s, defined, resamples=bootstrap, confidence=confidence, seed=seed)
        if bootstrap
        else ({}, [])
    )
    if s.task == "regression" and metrics["mape"] is not None and np.any(s.y == 0.0):
        notes.insert(0, _mape_note(s))
    classifier = s.task != "regression"
    return Evaluation(
        task=s.task,
        n=s.n,
        metrics=metrics,
        undefined=undefined,
        intervals=intervals,
        classes=tuple(json_scalar(c) for c in s.classes),
        threshold=s.threshold if s.task == "binary" else None,
        confusion_matrix=_confusion(s) if classifier else (),
        calibration=_calibration(s, calibration_bins) if s.task == "binary" else None,
        slices=() if slices is None else _slices(s, slices, min_slice_size),
        notes=tuple(notes),
        resamples=bootstrap,
        seed=seed,
    )


def _check_settings(bootstrap: int, confidence: float, calibration_bins: int) -> None:
    if bootstrap < 0 or not 0.0 < confidence < 1.0 or calibration_bins < 1:
        raise UsageError(
            "bootstrap must be >= 0, confidence in (0, 1) and calibration_bins >= 1, not "
            f"{bootstrap}, {confidence}, {calibration_bins}"
        )


def _mape_note(s: Scored) -> str:
    zeros = int((s.y == 0.0).sum())
    return f"mape leaves out {zeros} of {s.n} rows where y_true is 0"


def evaluate_classifier(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    classes: Sequence[Any] | None = None,
    slices: pd.DataFrame | None = None,
    threshold: float = 0.5,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_size: int = 30,
    calibration_bins: int = 10,
) -> Evaluation:
    """Evaluate a classifier from labels and probabilities.

    Binary: ``y_score`` is the positive-class probability (or the ``(n, 2)`` matrix) and
    ``classes`` is ``(negative, positive)``, by default ``(0, 1)``. Multiclass: ``y_score``
    is ``(n, k)`` in the order of ``classes`` (default: the sorted labels); precision,
    recall, F1, ROC AUC (one-vs-rest) and PR AUC are macro averages, and there is no
    calibration. ``bootstrap`` resamples (0 for none) give a percentile interval per metric.
    """
    s = scored_classification(y_true, y_score, classes=classes, threshold=threshold)
    return evaluate_scored(
        s,
        slices=slices,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        min_slice_size=min_slice_size,
        calibration_bins=calibration_bins,
    )


def evaluate_regressor(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    slices: pd.DataFrame | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_size: int = 30,
) -> Evaluation:
    """Evaluate a regressor: MAE, RMSE, R^2 and MAPE (over rows with a non-zero target)."""
    s = scored_regression(y_true, y_pred)
    return evaluate_scored(
        s,
        slices=slices,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        min_slice_size=min_slice_size,
    )


def evaluate_model(
    model: Any,
    X: pd.DataFrame,
    y: npt.ArrayLike,
    *,
    predict: Predict = "predict_proba",
    slices: pd.DataFrame | Sequence[str] | None = None,
    threshold: float = 0.5,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_size: int = 30,
) -> Evaluation:
    """Evaluate a fitted model on ``X, y``: a classifier by ``predict_proba`` (default), a
    regressor with ``predict="predict"``. ``slices`` is a DataFrame or column names of ``X``."""
    frame = None if slices is None else _slice_frame(X, slices)
    return evaluate_scored(
        model_scored(model, X, y, predict=predict, threshold=threshold),
        slices=frame,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        min_slice_size=min_slice_size,
    )


def _slice_frame(X: pd.DataFrame, slices: pd.DataFrame | Sequence[str]) -> pd.DataFrame:
    if isinstance(slices, pd.DataFrame):
        return slices.reset_index(drop=True)
    if not isinstance(X, pd.DataFrame):
        raise UsageError("slices by column name need the rows as a pandas DataFrame")
    names = [slices] if isinstance(slices, str) else list(slices)
    for name in names:
        if name not in X.columns:
            suggestion = did_you_mean(name, [str(c) for c in X.columns])
            raise UsageError(
                f"slice column {name!r} is not a column of the evaluation data",
                hint=suggestion or f"columns are {[str(c) for c in X.columns][:10]}",
            )
    return X[names].reset_index(drop=True)
