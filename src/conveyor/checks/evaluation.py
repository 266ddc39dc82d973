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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.checks.bootstrap import (
    Interval,
    Scored,
    Task,
    metric_stats,
    percentile_interval,
    point_estimate,
    resampled_values,
    scored_classification,
    scored_regression,
)
from conveyor.errors import UsageError, did_you_mean

JSONScalar = str | int | float | bool | None
SCHEMA = "conveyor.evaluation/1"
PREDICT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None  # None for an empty bin
    observed_rate: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """Reliability bins of equal width on [0, 1]; ``ece`` is the count-weighted mean gap."""

    bins: tuple[CalibrationBin, ...]
    ece: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceMetrics:
    column: str
    value: JSONScalar  # None for missing values
    n: int
    small: bool  # fewer rows than ``min_slice_size``: read its metrics with care
    metrics: dict[str, float | None]
    undefined: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """Everything measured about one model on one evaluation set."""

    task: Task
    n: int
    metrics: dict[str, float | None]
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why it is None
    intervals: dict[str, Interval] = field(default_factory=dict)
    classes: tuple[JSONScalar, ...] = ()  # order of the confusion matrix (binary: neg, pos)
    threshold: float | None = None  # binary: rows with score >= threshold are positive
    confusion_matrix: tuple[tuple[int, ...], ...] = ()  # rows: true, columns: predicted
    calibration: Calibration | None = None
    slices: tuple[SliceMetrics, ...] = ()
    notes: tuple[str, ...] = ()
    resamples: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Evaluation:
        """The value ``to_dict`` wrote; UsageError saying what is wrong otherwise."""
        hint = "load a value written by Evaluation.to_json()"
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
            raise UsageError(f"not a Conveyor evaluation ({found!r}, not {SCHEMA!r})", hint=hint)
        try:
            calibration = raw["calibration"]
            return cls(
                task=raw["task"],
                n=raw["n"],
                metrics=dict(raw["metrics"]),
                undefined=dict(raw["undefined"]),
                intervals={k: Interval(**v) for k, v in raw["intervals"].items()},
                classes=tuple(raw["classes"]),
                threshold=raw["threshold"],
                confusion_matrix=tuple(tuple(row) for row in raw["confusion_matrix"]),
                calibration=None
                if calibration is None
                else Calibration(
                    bins=tuple(CalibrationBin(**b) for b in calibration["bins"]),
                    ece=calibration["ece"],
                ),
                slices=tuple(SliceMetrics(**s) for s in raw["slices"]),
                notes=tuple(raw["notes"]),
                resamples=raw["resamples"],
                seed=raw["seed"],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"damaged evaluation: {type(exc).__name__}: {exc}", hint=hint
            ) from None

    @classmethod
    def from_json(cls, text: str) -> Evaluation:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"an evaluation must be JSON: {exc}") from None
        return cls.from_dict(raw)

    def to_markdown(self) -> str:
        """A report section: metrics with intervals, confusion, calibration, slices."""
        return "\n".join(_markdown(self)) + "\n"

    def to_text(self) -> str:
        """Plain lines for a terminal or a CI log."""
        return "\n".join(_text(self)) + "\n"


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


def json_scalar(value: Any) -> JSONScalar:
    """A label or slice value as JSON: numpy scalars unwrapped, missing as None, else str."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


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
    if bootstrap < 0 or not 0.0 < confidence < 1.0 or calibration_bins < 1:
        raise UsageError(
            "bootstrap must be >= 0, confidence in (0, 1) and calibration_bins >= 1, not "
            f"{bootstrap}, {confidence}, {calibration_bins}"
        )
    metrics, undefined = compute_metrics(s)
    defined = [name for name, value in metrics.items() if value is not None]
    intervals, notes = (
        _intervals(s, defined, resamples=bootstrap, confidence=confidence, seed=seed)
        if bootstrap
        else ({}, [])
    )
    if s.task == "regression" and metrics["mape"] is not None and np.any(s.y == 0.0):
        zeros = int((s.y == 0.0).sum())
        notes.insert(0, f"mape leaves out {zeros} of {s.n} rows where y_true is 0")
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


# --- models -------------------------------------------------------------------------------

Predict = Literal["predict_proba", "predict"]


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


# --- rendering ----------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _metric_rows(e: Evaluation) -> list[tuple[str, str, str]]:
    """``(metric, value, interval or reason)`` per metric."""
    rows = []
    for name, value in e.metrics.items():
        iv = e.intervals.get(name)
        extra = f"[{_num(iv.low)}, {_num(iv.high)}]" if iv else e.undefined.get(name, "")
        if value is not None and iv is None and e.resamples:
            extra = "no interval (see notes)"
        rows.append((name, _num(value), extra))
    return rows


def _heading(e: Evaluation) -> str:
    head = f"{e.task} evaluation of {e.n} rows"
    if e.classes:
        head += f"; classes {', '.join(map(str, e.classes))}"
    if e.threshold is not None:
        head += f"; positive when score >= {e.threshold:g}"
    return head


def _interval_note(e: Evaluation) -> str:
    if not e.intervals:
        return "no bootstrap intervals"
    level = next(iter(e.intervals.values())).confidence
    return f"{level:.0%} percentile bootstrap intervals, {e.resamples} resamples, seed {e.seed}"


def _slice_label(s: SliceMetrics) -> str:
    return f"{s.column}={'(missing)' if s.value is None else s.value}"


def _markdown(e: Evaluation) -> list[str]:
    lines = [f"**{_heading(e)}** ({_interval_note(e)})", ""]
    lines += ["| metric | value | interval / note |", "|---|---:|---|"]
    lines += [f"| {m} | {v} | {x} |" for m, v, x in _metric_rows(e)]
    if e.confusion_matrix:
        lines += ["", "Confusion matrix (rows: true, columns: predicted)", ""]
        lines += ["| | " + " | ".join(map(str, e.classes)) + " |"]
        lines += ["|---|" + "---:|" * len(e.classes)]
        for label, row in zip(e.classes, e.confusion_matrix, strict=True):
            lines.append(f"| **{label}** | " + " | ".join(map(str, row)) + " |")
    if e.calibration:
        lines += ["", f"Calibration (expected calibration error {e.calibration.ece:.4f})", ""]
        lines += ["| bin | rows | mean predicted | observed rate |", "|---|---:|---:|---:|"]
        for b in e.calibration.bins:
            lines.append(
                f"| {b.lower:.2f}-{b.upper:.2f} | {b.count} | {_num(b.mean_predicted)} "
                f"| {_num(b.observed_rate)} |"
            )
    if e.slices:
        names = list(e.metrics)
        lines += ["", "Slices", "", "| slice | rows | " + " | ".join(names) + " |"]
        lines += ["|---|---:|" + "---:|" * len(names)]
        for s in e.slices:
            flag = " (small)" if s.small else ""
            values = " | ".join(_num(s.metrics.get(m)) for m in names)
            lines.append(f"| {_slice_label(s)} | {s.n}{flag} | {values} |")
    lines += [""] + [f"- {note}" for note in e.notes] if e.notes else []
    return lines


def _text(e: Evaluation) -> list[str]:
    lines = [_heading(e), f"  ({_interval_note(e)})"]
    lines += [f"  {m:<10} {v:>8}  {x}".rstrip() for m, v, x in _metric_rows(e)]
    if e.confusion_matrix:
        pairs = zip(e.classes, e.confusion_matrix, strict=True)
        cells = "; ".join(f"{c}: {list(r)}" for c, r in pairs)
        lines.append(f"confusion matrix (rows true, columns predicted): {cells}")
    if e.calibration:
        bins = len(e.calibration.bins)
        lines.append(f"calibration: ECE {e.calibration.ece:.4f} over {bins} equal-width bins")
    for s in e.slices:
        values = "  ".join(f"{m} {_num(v)}" for m, v in s.metrics.items())
        lines.append(f"slice {_slice_label(s)} n={s.n}{' small' if s.small else ''}: {values}")
    lines += [f"note: {note}" for note in e.notes]
    return lines
