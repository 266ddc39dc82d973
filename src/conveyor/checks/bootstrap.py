"""Model metrics as functions of bootstrap weights, and a fast vectorised bootstrap.

:class:`Scored` holds validated evaluation inputs (labels encoded, scores checked); the
``scored_*`` functions build it and raise :class:`~conveyor.errors.UsageError` on input that
cannot be evaluated.

A bootstrap resample of ``n`` evaluation rows is fully described by how often it drew each
row: a vector of counts summing to ``n``. Every metric here is a *statistic*, a function from a
``(k, n)`` matrix of such counts (one resample per row) to ``k`` values. The point estimate is
the statistic at all-ones counts, so the number reported and the numbers resampled come from
one implementation, and a thousand resamples are a few matrix operations instead of a
thousand metric calls.

ROC AUC is the Mann-Whitney statistic: the scores are sorted once, and each resample costs a
cumulative sum of the negatives' counts and a gather at each positive's rank (ties count
half), O(n) per resample after one O(n log n) sort. Counts are built in chunks of rows to
bound memory. A statistic returns NaN for a resample on which the metric is undefined (a
resample without positives, for ROC AUC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from conveyor.errors import UsageError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Stat = Callable[[FloatArray], FloatArray]
Task = Literal["binary", "multiclass", "regression"]

CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
)
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "mae": False,
    "rmse": False,
    "r2": True,
    "mape": False,
}
# Count matrices are built this many elements at a time (8 MiB of float64).
CHUNK_ELEMENTS = 1 << 20
# An interval is not reported when the metric is undefined on more resamples than this.
MAX_UNDEFINED_FRACTION = 0.01


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """A percentile bootstrap interval; ``undefined`` resamples are left out of it."""

    low: float
    high: float
    confidence: float
    resamples: int
    undefined: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PairedDifference:
    """``candidate - baseline`` of one metric on the same rows, with its paired interval."""

    baseline: float
    candidate: float
    difference: float
    interval: Interval | None


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


# --- resampling ---------------------------------------------------------------------------


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[IntArray]:
    """The rows each resample draws, in order; the stream every bootstrap here uses."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, n, size=n)


def resample_counts(n: int, resamples: int, seed: int) -> Iterator[FloatArray]:
    """Counts of :func:`resample_indices`, as ``(k, n)`` float chunks in resample order."""
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    draws = resample_indices(n, resamples, seed)
    for start in range(0, resamples, rows):
        counts = np.empty((min(rows, resamples - start), n))
        for i in range(counts.shape[0]):
            counts[i] = np.bincount(next(draws), minlength=n)
        yield counts


def resampled_values(stats: Sequence[Stat], n: int, *, resamples: int, seed: int) -> FloatArray:
    """``(len(stats), resamples)`` values of each statistic on the same resamples."""
    out = np.empty((len(stats), resamples))
    start = 0
    for counts in resample_counts(n, resamples, seed):
        stop = start + counts.shape[0]
        for j, stat in enumerate(stats):
            out[j, start:stop] = stat(counts)
        start = stop
    return out


def point_estimate(stat: Stat, n: int) -> float:
    """The statistic on the rows themselves (every count 1); NaN when undefined."""
    return float(stat(np.ones((1, n)))[0])


def percentile_interval(values: FloatArray, confidence: float) -> Interval | None:
    """The percentile interval of the finite ``values``; None when too many are undefined."""
    finite = values[np.isfinite(values)]
    undefined = int(values.size - finite.size)
    if finite.size == 0 or undefined > MAX_UNDEFINED_FRACTION * values.size:
        return None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return Interval(
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=int(values.size),
        undefined=undefined,
    )


def bootstrap_intervals(
    stats: Mapping[str, Stat],
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval | None]:
    """A percentile interval per named statistic, all on the same resamples."""
    names = list(stats)
    values = resampled_values([stats[k] for k in names], n, resamples=resamples, seed=seed)
    return {name: percentile_interval(values[i], confidence) for i, name in enumerate(names)}


def paired_bootstrap(
    baseline: Stat,
    candidate: Stat,
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Interval of ``candidate - baseline``, both evaluated on each resample of the same rows."""
    values = resampled_values([baseline, candidate], n, resamples=resamples, seed=seed)
    base, cand = point_estimate(baseline, n), point_estimate(candidate, n)
    return PairedDifference(
        baseline=base,
        candidate=cand,
        difference=cand - base,
        interval=percentile_interval(values[1] - values[0], confidence),
    )


# --- statistics ---------------------------------------------------------------------------


def _divide(num: FloatArray, den: FloatArray, fill: float = np.nan) -> FloatArray:
    out = np.full(np.broadcast(num, den).shape, fill)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _total(counts: FloatArray, values: FloatArray) -> FloatArray:
    """Per resample, the sum of ``values`` over the drawn rows.

    einsum, not ``@``: between the AUC kernels' passes, multithreaded BLAS wakes its idle
    threads for every small product, which measured 10x slower on a busy 2-CPU machine.
    """
    out: FloatArray = np.einsum("ij,j->i", counts, values)
    return out


def mean_stat(values: FloatArray) -> Stat:
    """Mean of a per-row value (accuracy, log loss, Brier score, absolute error)."""
    return lambda counts: _total(counts, values) / counts.shape[1]


def ratio_stat(num: FloatArray, den: FloatArray) -> Stat:
    """``sum(num) / sum(den)`` over the drawn rows; NaN when the denominator is 0."""
    return lambda counts: _divide(_total(counts, num), _total(counts, den))


def rmse_stat(error: FloatArray) -> Stat:
    squared = mean_stat(error * error)
    return lambda counts: np.sqrt(squared(counts))


def r2_stat(y: FloatArray, prediction: FloatArray) -> Stat:
    """1 - SSE/SST; NaN when the drawn targets are (numerically) constant."""
    centred = y - y.mean()
    squared_error = (y - prediction) ** 2

    def stat(counts: FloatArray) -> FloatArray:
        total = counts.shape[1]
        s1, s2 = _total(counts, centred), _total(counts, centred * centred)
        sst = s2 - s1 * s1 / total
        sst[sst <= 1e-12 * s2] = 0.0
        return 1.0 - _divide(_total(counts, squared_error), sst)

    return stat


def _cumulative(drawn: FloatArray) -> FloatArray:
    """Running sums along each row, with a leading 0: ``out[:, j]`` sums the first j."""
    out = np.zeros((drawn.shape[0], drawn.shape[1] + 1))
    np.cumsum(drawn, axis=1, out=out[:, 1:])
    return out


def auc_stat(positive: BoolArray, score: FloatArray) -> Stat:
    """ROC AUC as P(score of a positive > score of a negative), ties counting one half."""
    pos = np.flatnonzero(positive)
    neg = np.flatnonzero(~positive)
    neg = neg[np.argsort(score[neg], kind="stable")]
    below = np.searchsorted(score[neg], score[pos], side="left")
    upto = np.searchsorted(score[neg], score[pos], side="right")
    ties = not np.array_equal(below, upto)

    def stat(counts: FloatArray) -> FloatArray:
        cum = _cumulative(counts[:, neg])
        beaten = cum[:, below]  # drawn negatives scored strictly below each positive
        if ties:
            beaten = 0.5 * (beaten + cum[:, upto])
        drawn_pos = counts[:, pos]
        wins = np.einsum("ij,ij->i", drawn_pos, beaten)
        return _divide(wins, drawn_pos.sum(axis=1) * cum[:, -1])

    return stat


def average_precision_stat(positive: BoolArray, score: FloatArray) -> Stat:
    """Average precision: sum over score thresholds of (recall gained) x precision.

    Only thresholds (groups of tied scores) holding a positive gain recall, so the running
    sums of positives and of negatives are read at those groups' ends and starts.
    """
    order = np.argsort(-score, kind="stable")
    ordered, is_pos = score[order], positive[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], score.size]
    pos_before = np.r_[0, np.cumsum(is_pos)]  # positives among the first j sorted rows
    gaining = pos_before[ends] > pos_before[starts]
    pos_start, pos_end = pos_before[starts[gaining]], pos_before[ends[gaining]]
    neg_end = ends[gaining] - pos_end
    pos_rows, neg_rows = order[is_pos], order[~is_pos]

    def stat(counts: FloatArray) -> FloatArray:
        tp = _cumulative(counts[:, pos_rows])
        fp = _cumulative(counts[:, neg_rows])
        tp_end = tp[:, pos_end]
        precision = _divide(tp_end, tp_end + fp[:, neg_end], fill=0.0)
        gained = np.einsum("ij,ij->i", tp_end - tp[:, pos_start], precision)
        return _divide(gained, tp[:, -1])

    return stat


def macro_stat(stats: Sequence[Stat]) -> Stat:
    """Mean over classes; NaN when any class's value is undefined."""
    return lambda counts: np.mean([stat(counts) for stat in stats], axis=0)


def _log_loss_rows(probability_of_truth: FloatArray) -> FloatArray:
    eps = np.finfo(np.float64).eps  # as scikit-learn clips
    return -np.log(np.clip(probability_of_truth, eps, 1.0 - eps))


def _binary_stats(s: Scored) -> dict[str, Stat]:
    pos = s.y == 1.0
    pred = s.score >= s.threshold
    tp = (pos & pred).astype(np.float64)
    truth = np.where(pos, s.score, 1.0 - s.score)
    return {
        "accuracy": mean_stat((pos == pred).astype(np.float64)),
        "precision": ratio_stat(tp, pred.astype(np.float64)),
        "recall": ratio_stat(tp, pos.astype(np.float64)),
        "f1": ratio_stat(2.0 * tp, pred.astype(np.float64) + pos.astype(np.float64)),
        "roc_auc": auc_stat(pos, s.score),
        "pr_auc": average_precision_stat(pos, s.score),
        "log_loss": mean_stat(_log_loss_rows(truth)),
        "brier": mean_stat((s.score - s.y) ** 2),
    }


def _multiclass_stats(s: Scored) -> dict[str, Stat]:
    codes = s.y.astype(np.int64)
    pred = np.argmax(s.score, axis=1)
    k = s.score.shape[1]
    truth = [(codes == c).astype(np.float64) for c in range(k)]
    said = [(pred == c).astype(np.float64) for c in range(k)]
    tp = [truth[c] * said[c] for c in range(k)]
    onehot = np.eye(k)[codes]
    return {
        "accuracy": mean_stat((pred == codes).astype(np.float64)),
        "precision": macro_stat([ratio_stat(tp[c], said[c]) for c in range(k)]),
        "recall": macro_stat([ratio_stat(tp[c], truth[c]) for c in range(k)]),
        "f1": macro_stat([ratio_stat(2.0 * tp[c], said[c] + truth[c]) for c in range(k)]),
        "roc_auc": macro_stat([auc_stat(codes == c, s.score[:, c]) for c in range(k)]),
        "pr_auc": macro_stat([average_precision_stat(codes == c, s.score[:, c]) for c in range(k)]),
        "log_loss": mean_stat(_log_loss_rows(s.score[np.arange(s.n), codes])),
        "brier": mean_stat(((s.score - onehot) ** 2).sum(axis=1)),
    }


def _regression_stats(s: Scored) -> dict[str, Stat]:
    error = s.score - s.y
    nonzero = s.y != 0.0
    relative = np.abs(error) / np.where(nonzero, np.abs(s.y), 1.0) * nonzero
    return {
        "mae": mean_stat(np.abs(error)),
        "rmse": rmse_stat(error),
        "r2": r2_stat(s.y, s.score),
        "mape": ratio_stat(relative, nonzero.astype(np.float64)),
    }


def metric_stats(scored: Scored, names: Sequence[str] | None = None) -> dict[str, Stat]:
    """The statistic of each metric of the task (or of ``names`` only)."""
    build = {
        "binary": _binary_stats,
        "multiclass": _multiclass_stats,
        "regression": _regression_stats,
    }[scored.task]
    stats = build(scored)
    return stats if names is None else {name: stats[name] for name in names}


def metric_names(task: Task) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
