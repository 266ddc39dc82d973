"""Calling a fitted model on rows: its output, or a UsageError saying why there is none.

Evaluation, the model gate and the behavioural checks all score models through
:func:`model_output`, so a model that refuses the rows fails the same way everywhere;
:func:`row_scores` gives the behavioural checks one score per row, or the reason there is none.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.scored import FloatArray, Scored, scored_classification, scored_regression
from conveyor.errors import UsageError, did_you_mean

PREDICT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)
Predict = Literal["predict_proba", "predict"]
Method = Literal["auto", "predict_proba", "predict"]


def model_output(model: Any, X: pd.DataFrame, predict: Predict) -> npt.NDArray[Any]:
    """``model.<predict>(X)``; a model that refuses the rows is a UsageError, not a traceback.

    A model that records its training columns (``feature_names_in_``) gets those columns of
    ``X``, in that order, so the rows may carry other columns (slices, another model's).
    """
    method = getattr(model, predict, None)
    if not callable(method):
        raise UsageError(
            f"{type(model).__name__} has no {predict}() method",
            hint="classifiers need predict_proba; use predict='predict' for a regressor",
        )
    wanted = [str(c) for c in getattr(model, "feature_names_in_", [])]
    if wanted and not isinstance(X, pd.DataFrame):
        raise UsageError(
            f"{type(model).__name__} was trained on named columns but the rows are a "
            f"{type(X).__name__}",
            hint="pass the rows as a pandas DataFrame with the model's feature columns",
        )
    missing = [c for c in wanted if c not in X.columns]
    if missing:
        first = did_you_mean(missing[0], [str(c) for c in X.columns])
        raise UsageError(
            f"{type(model).__name__} was trained on columns the rows lack: {missing[:10]}",
            hint=f"{missing[0]!r}: {first}" if first else "pass the model's feature columns",
        )
    try:
        return np.asarray(method(X[wanted] if wanted else X))
    except PREDICT_ERRORS as exc:
        raise UsageError(
            f"{type(model).__name__}.{predict}() failed on {len(X)} rows: "
            f"{type(exc).__name__}: {exc}",
            hint="pass rows with the feature columns and types the model was trained on",
        ) from None


def model_scored(
    model: Any, X: pd.DataFrame, y: npt.ArrayLike, *, predict: Predict, threshold: float = 0.5
) -> Scored:
    """Validated inputs from a model's output on ``X`` (classes from ``model.classes_``)."""
    output = model_output(model, X, predict)
    if predict == "predict":
        return scored_regression(y, output)
    classes = getattr(model, "classes_", None)
    return scored_classification(
        y, output, classes=None if classes is None else list(classes), threshold=threshold
    )


def _method(model: Any, predict: Method) -> Literal["predict_proba", "predict"]:
    if predict != "auto":
        return predict
    return "predict_proba" if callable(getattr(model, "predict_proba", None)) else "predict"


def row_scores(model: Any, X: pd.DataFrame, method: Method, what: str) -> FloatArray | str:
    """The score of each row, or why the model did not give one (``what`` names the rows).

    The score is the positive-class probability of a binary classifier, every class's
    probability of a multiclass one, or the prediction of a regressor; ``auto`` uses
    ``predict_proba`` when the model has it.
    """
    chosen = _method(model, method)
    try:
        raw = model_output(model, X, chosen)
        out = np.asarray(raw, dtype=np.float64)
    except UsageError as exc:
        return f"on the {what} rows: {exc.message}"
    except (TypeError, ValueError):
        return f"{chosen}() returned non-numeric values on the {what} rows; use predict_proba"
    if out.ndim == 2 and out.shape[1] <= 2:
        out = out[:, -1]
    if out.ndim not in (1, 2) or out.shape[0] != len(X):
        return f"{chosen}() returned shape {out.shape} for {len(X)} {what} rows"
    bad = int((~np.isfinite(out)).reshape(len(X), -1).any(axis=1).sum())
    if bad:
        return f"{chosen}() returned NaN or infinite scores for {bad} of the {what} rows"
    return out
