"""A fast vectorised bootstrap: resamples as count matrices, and percentile intervals.

A bootstrap resample of ``n`` evaluation rows is fully described by how often it drew each
row: a vector of counts summing to ``n``. The metrics (:mod:`conveyor.checks.metrics`) are
*statistics*, functions from a ``(k, n)`` matrix of such counts (one resample per row) to
``k`` values, so a thousand resamples are a few matrix operations instead of a thousand
metric calls. Counts are built in chunks of rows to bound memory.

The validated inputs (:mod:`conveyor.checks.scored`) and the metric definitions are
re-exported here, where they were first defined.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from conveyor.checks.metrics import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    Stat,
    auc_stat,
    average_precision_stat,
    macro_stat,
    mean_stat,
    metric_names,
    metric_stats,
    r2_stat,
    ratio_stat,
    rmse_stat,
)
from conveyor.checks.scored import (
    BoolArray,
    FloatArray,
    IntArray,
    Scored,
    Task,
    plain_label,
    scored_classification,
    scored_regression,
)

__all__ = [
    "CHUNK_ELEMENTS",
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "MAX_UNDEFINED_FRACTION",
    "REGRESSION_METRICS",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "Interval",
    "PairedDifference",
    "Scored",
    "Stat",
    "Task",
    "auc_stat",
    "average_precision_stat",
    "bootstrap_intervals",
    "macro_stat",
    "mean_stat",
    "metric_names",
    "metric_stats",
    "paired_bootstrap",
    "percentile_interval",
    "plain_label",
    "point_estimate",
    "r2_stat",
    "ratio_stat",
    "resample_counts",
    "resample_indices",
    "resampled_values",
    "rmse_stat",
    "scored_classification",
    "scored_regression",
]

# Count matrices are built this many elements at a time (8 MiB of float64).
CHUNK_ELEMENTS = 1 << 20
# An interval is not reported when the metric is undefined on more resamples than this.
MAX_UNDEFINED_FRACTION = 0.01


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
