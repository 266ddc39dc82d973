"""Model metrics as statistics: functions of bootstrap weights.

A bootstrap resample of ``n`` evaluation rows is fully described by how often it drew each
row: a vector of counts summing to ``n``. Every metric here is a *statistic*, a function from a
``(k, n)`` matrix of such counts (one resample per row) to ``k`` values. The point estimate is
the statistic at all-ones counts, so the number reported and the numbers resampled come from
one implementation, and a thousand resamples are a few matrix operations instead of a
thousand metric calls (:mod:`conveyor.checks.bootstrap` draws them).

ROC AUC is the Mann-Whitney statistic: the scores are sorted once, and each resample costs a
cumulative sum of the negatives' counts and a gather at each positive's rank (ties count
half), O(n) per resample after one O(n log n) sort. A statistic returns NaN for a resample on
which the metric is undefined (a resample without positives, for ROC AUC).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from conveyor.checks.scored import BoolArray, FloatArray, Scored, Task

Stat = Callable[[FloatArray], FloatArray]

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
