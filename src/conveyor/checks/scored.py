"""Validated evaluation inputs: :class:`Scored`, and the checks that build it.

:class:`Scored` holds validated evaluation inputs (labels encoded, scores checked); the
``scored_*`` functions build it and raise :class:`~conveyor.errors.UsageError` on input that
cannot be evaluated. The array aliases here are the ones the metrics and the bootstrap use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.errors import UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Scored:
    """Validated evaluation inputs, built by :func:`scored_classification` or
    :func:`scored_regression`.

    ``y`` is 1.0/0.0 for the positive class (binary), the class index (multiclass) or the
    target (regression); ``score`` is the positive-class probability, the ``(n, k)`` class
    probabilities, or the prediction. Rows predicted positive are those with
    ``score >= threshold``.
    """

    task: Task
    y: FloatArray
    score: FloatArray
    classes: tuple[Any, ...] = ()
    threshold: float = 0.5

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def take(self, rows: IntArray) -> Scored:
        return Scored(
            task=self.task,
            y=self.y[rows],
            score=self.score[rows],
            classes=self.classes,
            threshold=self.threshold,
        )


# --- inputs -------------------------------------------------------------------------------


def _labels(y_true: npt.ArrayLike) -> npt.NDArray[Any]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise UsageError(f"y_true must be one-dimensional, not of shape {y.shape}")
    if y.size == 0:
        raise UsageError("y_true is empty: there is nothing to evaluate")
    missing = np.flatnonzero(pd.isna(y))
    if missing.size:
        raise UsageError(
            f"y_true has {missing.size} missing values (first at row {missing[0]})",
            hint="drop rows without a label before evaluating",
        )
    return y


def _scores(name: str, values: npt.ArrayLike, n: int, *, probabilities: bool) -> FloatArray:
    try:
        score = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be numeric: {exc}") from None
    if score.size == 0:
        raise UsageError(f"{name} has no values (shape {score.shape})")
    if score.ndim not in (1, 2) or score.shape[0] != n:
        raise UsageError(
            f"{name} has shape {score.shape} but y_true has {n} rows",
            hint=f"pass one {name} row per y_true row, in the same order",
        )
    bad = np.flatnonzero(~np.isfinite(score).reshape(n, -1).all(axis=1))
    if bad.size:
        raise UsageError(
            f"{name} has NaN or infinite values in {bad.size} rows (first at row {bad[0]})",
            hint="a model that returns NaN for some rows cannot be evaluated on them",
        )
    if probabilities and (score.min() < 0.0 or score.max() > 1.0):
        raise UsageError(
            f"{name} must be probabilities in [0, 1]; found values in "
            f"[{score.min():.4g}, {score.max():.4g}]",
            hint="pass predict_proba output (binary: the positive class's column)",
        )
    return score


def plain_label(value: Any) -> Any:
    """A label as a Python value; booleans become 0 and 1 so they match integer classes."""
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if isinstance(value, bool) else value


def _classes(
    y: npt.NDArray[Any], classes: Sequence[Any] | None, k: int, *, one_column: bool
) -> tuple[Any, ...]:
    seen = [plain_label(v) for v in pd.unique(y)]
    hint = "pass classes= in the order of the score columns (e.g. model.classes_)"
    if classes is None:
        if k == 2 and set(seen) <= {0, 1}:
            return (0, 1)
        if one_column:
            raise UsageError(
                f"y_true has labels {seen[:5]}, not 0 and 1: which class are the scores for?",
                hint="pass classes=(negative, positive), e.g. classes=('no', 'yes')",
            )
        if len(seen) != k:
            raise UsageError(
                f"y_true has {len(seen)} distinct labels but the scores have {k} columns",
                hint=hint,
            )
        try:
            return tuple(sorted(seen))
        except TypeError:
            return tuple(sorted(seen, key=str))
    found = tuple(plain_label(v) for v in classes)
    if len(found) != k:
        raise UsageError(f"classes has {len(found)} labels but the scores have {k} columns")
    unknown = [v for v in seen if v not in found]
    if unknown:
        raise UsageError(
            f"y_true has labels {unknown[:5]} that are not in classes {list(found)}", hint=hint
        )
    return found


def _codes(y: npt.NDArray[Any], classes: tuple[Any, ...]) -> FloatArray:
    plain = y.astype(np.int64) if y.dtype == np.bool_ else y
    codes = pd.Index(list(classes), dtype=object).get_indexer(plain.astype(object))
    if (codes < 0).any():
        raise UsageError(f"y_true has labels that are not in classes {list(classes)}")
    return np.asarray(codes, dtype=np.float64)


def scored_classification(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    classes: Sequence[Any] | None = None,
    threshold: float = 0.5,
) -> Scored:
    """Check and encode classifier inputs; a ``(n, 2)`` score matrix is binary."""
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"threshold must be between 0 and 1, not {threshold}")
    y = _labels(y_true)
    score = _scores("y_score", y_score, y.size, probabilities=True)
    k = 2 if score.ndim == 1 else score.shape[1]
    if k < 2:
        raise UsageError("y_score has one column; pass the positive-class probability as 1-D")
    labels = _classes(y, classes, k, one_column=score.ndim == 1)
    codes = _codes(y, labels)
    if k == 2:
        binary = score if score.ndim == 1 else score[:, 1]
        return Scored(task="binary", y=codes, score=binary, classes=labels, threshold=threshold)
    sums = score.sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-4:
        raise UsageError(
            "rows of y_score must sum to 1 (class probabilities); "
            f"sums range over [{sums.min():.4g}, {sums.max():.4g}]"
        )
    return Scored(task="multiclass", y=codes, score=score, classes=labels, threshold=threshold)


def scored_regression(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> Scored:
    """Check regression inputs: same length, finite, one-dimensional."""
    y = _scores("y_true", _labels(y_true), np.asarray(y_true).shape[0], probabilities=False)
    pred = _scores("y_pred", y_pred, y.size, probabilities=False)
    if pred.ndim != 1:
        raise UsageError(f"y_pred must be one-dimensional, not of shape {pred.shape}")
    return Scored(task="regression", y=y, score=pred)
