"""The drift methods: statistical tests and distances between two samples of a feature.

``METHODS`` lists each method's column kinds, default threshold and whether it is a test
(drift when p < threshold) or a distance (drift when distance >= threshold). The tests take
sorted numeric samples (KS) or counts over shared keys (chi-square, z); the distances take
the same (Wasserstein, Jensen-Shannon, PSI). :mod:`conveyor.checks.drift` chooses among them.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import numpy as np
from scipy import special, stats

from conveyor.checks.profile import ColumnKind, FloatArray, IntArray, NumericColumn

NUMERIC, CATEGORICAL = ColumnKind.NUMERIC, ColumnKind.CATEGORICAL
# name: (kinds it applies to, default threshold, is a test (p-value) rather than a distance)
METHODS: dict[str, tuple[frozenset[ColumnKind], float, bool]] = {
    "ks": (frozenset({NUMERIC}), 0.05, True),
    "chisquare": (frozenset({NUMERIC, CATEGORICAL}), 0.05, True),
    "z": (frozenset({NUMERIC, CATEGORICAL}), 0.05, True),
    "wasserstein": (frozenset({NUMERIC}), 0.1, False),
    "jensenshannon": (frozenset({NUMERIC, CATEGORICAL}), 0.1, False),
    "psi": (frozenset({NUMERIC, CATEGORICAL}), 0.1, False),
}
STATISTIC = {"ks": "D", "chisquare": "chi2", "wasserstein": "W/std", "jensenshannon": "JS"}
EXACT_KS_LIMIT = 10_000  # scipy's ks_2samp computes exact p-values up to this sample size
PSI_FLOOR = 1e-4  # share given to an empty bin (Evidently's rule)
_WARNINGS = threading.Lock()  # catch_warnings is not thread-safe


def _cdf_gaps(a: FloatArray, b: FloatArray, *, area: bool) -> float:
    """Integral (``area``) or max of |Fa - Fb| for two sorted samples, by merging them."""
    n, m = a.size, b.size
    at = np.searchsorted(a, b, side="right")
    at += np.arange(m)
    merged = np.empty(n + m)
    from_a = np.ones(n + m, dtype=bool)
    from_a[at] = False
    merged[at], merged[from_a] = b, a
    gaps = np.full(n + m, float(m))  # whole numbers below 2**53: float sums are exact
    gaps[at] = -n
    np.abs(np.cumsum(gaps, out=gaps), out=gaps)  # n * m * |Fa - Fb| after each merged value
    if not area:  # the gap after the last of equal values counts
        return float(gaps[np.append(merged[1:] != merged[:-1], True)].max() / (n * m))
    with np.errstate(over="ignore", invalid="ignore"):
        np.subtract(merged[1:], merged[:-1], out=merged[1:])  # widths between merged values
        return float(np.dot(merged[1:], gaps[:-1]) / (n * m))


def ks(ref: NumericColumn, cur: NumericColumn) -> tuple[float, float]:
    if ref.exact and max(ref.count, cur.count) <= EXACT_KS_LIMIT:
        with _WARNINGS, warnings.catch_warnings():  # scipy warns if exact falls back to asymp
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ks_2samp(ref.values, cur.values)
        return float(result.statistic), float(result.pvalue)
    d = _cdf_gaps(ref.values, cur.values, area=False)
    en = ref.count * cur.count / (ref.count + cur.count)
    return d, float(np.clip(stats.kstwo.sf(d, round(en)), 0.0, 1.0))


def wasserstein(ref: NumericColumn, cur: NumericColumn) -> float:
    a, b = ref.values, cur.values
    if a.size == b.size:  # equal weights: the sorted values pair up
        with np.errstate(over="ignore", invalid="ignore"):
            distance = float(np.abs(a - b).mean())
    else:
        distance = _cdf_gaps(a, b, area=True)
    return distance / max(ref.std, 0.001)


def chisquare(ref: IntArray, cur: IntArray) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference shares (as Evidently's)."""
    expected = ref * (cur.sum() / ref.sum())
    seen = expected > 0
    if np.any(cur[~seen] > 0):  # a category the reference never had
        return math.inf, 0.0
    statistic = float(np.sum((cur[seen] - expected[seen]) ** 2 / expected[seen]))
    dof = int(seen.sum()) - 1
    return statistic, float(stats.chi2.sf(statistic, dof)) if dof > 0 else 1.0


def z_test(ref: IntArray, cur: IntArray, first: int) -> tuple[float, float]:
    """Two-proportion z-test of the share of values other than the smallest key."""
    n1, n2 = int(ref.sum()), int(cur.sum())
    p1, p2 = 1 - ref[first] / n1, 1 - cur[first] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 0.0, 1.0
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(z), float(2 * stats.norm.sf(abs(z)))


def jensenshannon(ref: IntArray, cur: IntArray) -> float:
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2
    return math.sqrt(max(float(divergence), 0.0))


def psi(ref: IntArray, cur: IntArray) -> float:
    p, q = _floored(ref / ref.sum()), _floored(cur / cur.sum())
    return float(np.sum((p - q) * np.log(p / q)))


def _floored(shares: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    smallest = shares[shares > 0].min()
    return np.where(shares > 0, shares, smallest / 1e6 if smallest <= PSI_FLOOR else PSI_FLOOR)
