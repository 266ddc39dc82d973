"""Drift and skew between a reference and a current table, per feature, with Evidently's defaults.

Each column of the reference is compared with the same-named column of the current data
(columns may come in any order). The method is chosen as Evidently's ``DataDriftPreset``
chooses it, from the number of non-null reference values and the distinct values of both:

* at most 1,000 reference values: KS test for numeric columns, chi-square for categorical
  ones and for numeric columns with at most 5 distinct values (a two-proportion z-test when
  there are at most 2); drift when p < 0.05;
* more: Wasserstein distance normed by the reference's std for numeric columns, Jensen-Shannon
  distance (natural log) for categorical ones and numeric ones with at most 5 distinct values;
  drift when the distance >= 0.1.

PSI (and any other method) can be chosen per kind or per column, thresholds likewise. The
dataset drifts when the share of drifted features among those checked is >= ``drift_share``
(0.5). Null, NaN and infinite values are left out and counted. docs/drift.md has the details.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from conveyor.checks.profile import (
    CategoricalColumn,
    ColumnKind,
    ColumnProfile,
    FloatArray,
    IntArray,
    NumericColumn,
    Profile,
    TextArray,
    UnsupportedColumn,
    checked_frame,
    column_kind,
    counts_in_bins,
    summarise,
)
from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import UsageError, did_you_mean

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
SMALL_REFERENCE = 1000  # reference values up to which the tests are used
FEW_VALUES = 5  # numeric columns with at most this many distinct values are compared as counts
EXACT_KS_LIMIT = 10_000  # scipy's ks_2samp computes exact p-values up to this sample size
PSI_FLOOR = 1e-4  # share given to an empty bin (Evidently's rule)
HISTOGRAM_LABELS = 20
_WARNINGS = threading.Lock()  # catch_warnings is not thread-safe
# reference and current counts over shared keys, and the keys' labels (categorical only)
Counts = tuple[IntArray, IntArray, "TextArray | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftOptions:
    """Which columns, which method and threshold for each, and the dataset rule."""

    columns: tuple[str, ...] | None = None  # None: every reference column
    exclude: tuple[str, ...] = ()
    numeric_method: str | None = None  # None: chosen per column as described above
    categorical_method: str | None = None
    threshold: float | None = None  # for every column, whatever its method (as Evidently's)
    methods: Mapping[str, str] = field(default_factory=dict)  # column -> method
    thresholds: Mapping[str, float] = field(default_factory=dict)  # column -> threshold
    drift_share: float = 0.5

    def __post_init__(self) -> None:
        named = {
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
        }
        for where, method in [*named.items(), *self.methods.items()]:
            if method is not None and method not in METHODS:
                hint = did_you_mean(method, list(METHODS)) or f"use one of {', '.join(METHODS)}"
                raise UsageError(f"drift method for {where}: unknown method '{method}'", hint=hint)
        if self.categorical_method in ("ks", "wasserstein"):
            raise UsageError(
                f"drift method '{self.categorical_method}' compares numbers, not categories",
                hint="for categorical columns use chisquare, z, jensenshannon or psi",
            )
        limits = [("threshold", self.threshold), *self.thresholds.items()]
        for where, value in limits:
            if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
                raise UsageError(
                    f"drift threshold for {where}: {value!r} is not a positive number",
                    hint="p-value tests take e.g. 0.05, distances e.g. 0.1",
                )
        if not 0 < self.drift_share <= 1:
            raise UsageError(
                f"drift_share {self.drift_share!r} is outside (0, 1]",
                hint="the share of drifted features that makes the dataset drift, e.g. 0.5",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Histogram:
    """Reference and current counts over the reference's bins (numeric) or top labels."""

    reference: tuple[int, ...]
    current: tuple[int, ...]
    edges: tuple[float, ...] = ()  # numeric: len(reference) + 1 edges over the reference range
    labels: tuple[str, ...] = ()  # categorical: the most frequent labels of both
    reference_other: int = 0  # values outside the edges, or of other labels
    current_other: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in _fields(self).items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    column: str
    kind: ColumnKind
    checked: bool
    drifted: bool = False
    method: str = ""
    statistic: float | None = None  # the test statistic, or the distance
    p_value: float | None = None  # tests only: drift when p_value < threshold
    threshold: float | None = None  # distances: drift when statistic >= threshold
    note: str = ""  # why it was not checked, or what to know about the result
    ref_size: int = 0  # values compared (null, NaN and infinite left out)
    cur_size: int = 0
    ref_ignored: int = 0
    cur_ignored: int = 0
    approximate: bool = False  # computed from a compressed profile
    histogram: Histogram | None = None

    @property
    def score(self) -> float | None:
        """The number compared with the threshold: the p-value of a test, else the distance."""
        return self.p_value if self.p_value is not None else self.statistic

    @property
    def verdict(self) -> str:
        return "not checked" if not self.checked else "drift" if self.drifted else "no drift"

    def to_json(self) -> dict[str, Any]:
        out = _fields(self)
        out.update(verdict=self.verdict, statistic=_json_float(self.statistic))
        out["histogram"] = self.histogram.to_json() if self.histogram else None
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    drift_share: float
    reference_rows: int
    current_rows: int
    new_columns: tuple[str, ...] = ()  # in the current data only; not compared

    @property
    def checked(self) -> int:
        return sum(f.checked for f in self.features)

    @property
    def drifted_count(self) -> int:
        return sum(f.drifted for f in self.features)

    @property
    def share(self) -> float:
        """Drifted features over checked features (0.0 when none could be checked)."""
        return self.drifted_count / self.checked if self.checked else 0.0

    @property
    def drifted(self) -> bool:
        return self.checked > 0 and self.share >= self.drift_share

    def summary(self) -> str:
        unchecked = len(self.features) - self.checked
        if not self.checked:
            return f"no feature could be checked ({unchecked} not checked)"
        text = (
            f"drift in {self.drifted_count} of {self.checked} features ({self.share:.0%}; "
            f"the dataset drifts at {self.drift_share:.0%}): "
            f"{'dataset drift' if self.drifted else 'no dataset drift'}"
        )
        return text + (f"; {unchecked} not checked" if unchecked else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "share": self.share,
            "drift_share": self.drift_share,
            "checked": self.checked,
            "drifted_count": self.drifted_count,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "new_columns": list(self.new_columns),
            "features": [f.to_json() for f in self.features],
        }

    def to_text(self) -> str:
        """One line per feature (method, statistic, threshold, verdict), then the summary."""
        width = max([len(f.column) for f in self.features] + [7])
        header = ("feature", "kind", "method", "statistic", "threshold", "verdict")
        rows = [_text_row(width, *header)]
        for f in self.features:
            threshold = f"{f.threshold:g}" if f.threshold is not None else "-"
            verdict = f.verdict + (f": {f.note}" if f.note else "")
            rows.append(
                _text_row(
                    width, f.column, f.kind, f.method or "-", _statistic_text(f), threshold, verdict
                )
            )
        return "\n".join([*rows, self.summary()])

    def to_markdown(self) -> str:
        head = ["| Feature | Kind | Method | Statistic | Threshold | Verdict |", "|---" * 6 + "|"]
        rows = [
            f"| {_md(f.column)} | {f.kind} | {f.method or '-'} | {_statistic_text(f)} | "
            f"{'-' if f.threshold is None else f'{f.threshold:g}'} | "
            f"{'**drift**' if f.drifted else f.verdict}{_md(': ' + f.note) if f.note else ''} |"
            for f in self.features
        ]
        return "\n".join([f"**Data drift**: {self.summary()}", "", *head, *rows])

    def check_results(self) -> list[CheckResult]:
        """One data check per feature (warning) and one for the dataset verdict (error)."""
        dataset = CheckResult(
            name="drift",
            kind="data",
            passed=self.checked > 0 and not self.drifted,
            severity=Severity.ERROR,
            metrics={
                "share": self.share,
                "drift_share": self.drift_share,
                "drifted": float(self.drifted_count),
                "checked": float(self.checked),
                "not_checked": float(len(self.features) - self.checked),
            },
            message=self.summary(),
            details={k: v for k, v in self.to_json().items() if k != "features"},
        )
        return [*map(_feature_result, self.features), dataset]


def drift(
    reference: pd.DataFrame | Profile,
    current: pd.DataFrame,
    options: DriftOptions | None = None,
    *,
    workers: int | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (raw data, or its :func:`profile`) per feature.

    Columns are compared on ``workers`` threads (default: one per CPU). Raises UsageError for
    empty or non-tabular input and for options that name unknown columns or methods;
    everything about the data itself is reported per feature.
    """
    options = options or DriftOptions()
    frame = checked_frame(current, "current")
    columns: Mapping[str, ColumnProfile | pd.Series]
    if isinstance(reference, Profile):
        columns, rows = reference.columns, reference.rows
    else:
        ref_frame = checked_frame(reference, "reference")
        columns, rows = {str(c): ref_frame[c] for c in ref_frame.columns}, len(ref_frame)
    names = _selected(list(columns), options)
    for name, method in options.methods.items():
        _check_kind(name, method, columns[name])
    current_names = {str(c): c for c in frame.columns}

    def one(name: str) -> FeatureDrift:
        ref = columns[name]
        series = frame[current_names[name]] if name in current_names else None
        return _feature(
            name, summarise(ref) if isinstance(ref, pd.Series) else ref, series, options
        )

    threads = workers or os.cpu_count() or 1
    if threads == 1:
        features = tuple(map(one, names))
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:  # numpy's work releases the GIL
            features = tuple(pool.map(one, names))
    return DriftReport(
        features=features,
        drift_share=options.drift_share,
        reference_rows=rows,
        current_rows=len(frame),
        new_columns=tuple(n for n in current_names if n not in columns),
    )


def _selected(names: list[str], options: DriftOptions) -> list[str]:
    known = set(names)
    asked = [*(options.columns or ()), *options.exclude, *options.methods, *options.thresholds]
    for name in asked:
        if name not in known:
            raise UsageError(
                f"drift options name column '{name}', which the reference does not have",
                hint=did_you_mean(name, known) or f"reference columns: {', '.join(names[:20])}",
            )
    chosen = [n for n in (options.columns or names) if n not in options.exclude]
    if not chosen:
        raise UsageError("drift: no column left to compare", hint="check columns= and exclude=")
    return chosen


def _check_kind(name: str, method: str, column: ColumnProfile | pd.Series) -> None:
    kind = column_kind(column)[0] if isinstance(column, pd.Series) else column.kind
    if kind != ColumnKind.UNSUPPORTED and kind not in METHODS[method][0]:
        raise UsageError(
            f"drift method '{method}' for column '{name}': the column is {kind}",
            hint=f"'{method}' compares numbers; use chisquare, z, jensenshannon or psi",
        )


def _feature(
    name: str, ref: ColumnProfile, series: pd.Series | None, options: DriftOptions
) -> FeatureDrift:
    base = FeatureDrift(
        column=name, kind=ref.kind, checked=False, ref_size=ref.count, ref_ignored=ref.ignored
    )
    if isinstance(ref, UnsupportedColumn):
        return replace(base, note=ref.reason)
    if series is None:
        return replace(base, note="missing from the current data")
    cur = summarise(series, ref.kind)
    base = replace(base, cur_size=cur.count, cur_ignored=cur.ignored)
    if isinstance(cur, UnsupportedColumn):
        return replace(base, note=cur.reason)
    for side, col in (("reference", ref), ("current data", cur)):
        if col.count == 0:
            return replace(base, note=f"no values in the {side} ({col.ignored} null, NaN or inf)")
    comparison = _Comparison(ref, cur)
    method = options.methods.get(name) or comparison.auto_method(options)
    threshold = _threshold(name, method, options)
    statistic, p_value = comparison.run(method)
    drifted = p_value < threshold if p_value is not None else statistic >= threshold
    return replace(
        base,
        checked=True,
        drifted=bool(drifted),
        method=method,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        note=comparison.note,
        approximate=comparison.approximate(method),
        histogram=comparison.histogram(),
    )


def _threshold(name: str, method: str, options: DriftOptions) -> float:
    _, default, is_test = METHODS[method]
    threshold = options.thresholds.get(name, options.threshold)
    threshold = default if threshold is None else float(threshold)
    if is_test and threshold >= 1:
        raise UsageError(
            f"drift threshold {threshold:g} for column '{name}' ({method}) is not a p-value",
            hint="tests drift when p < threshold; use a threshold below 1, e.g. 0.05",
        )
    return threshold


class _Comparison:
    """One reference column against the same-kind current column."""

    def __init__(self, ref: NumericColumn | CategoricalColumn, cur: ColumnProfile) -> None:
        self.ref, self.cur = ref, cur
        self._counts: Counts | None = None
        mixed = isinstance(ref, CategoricalColumn) and ref.mixed
        mixed = mixed or (isinstance(cur, CategoricalColumn) and cur.mixed)
        self.note = "values of mixed types, compared by their text form" if mixed else ""

    def auto_method(self, options: DriftOptions) -> str:
        """The per-kind option, else Evidently's choice (see the module docstring)."""
        numeric = isinstance(self.ref, NumericColumn)
        chosen = options.numeric_method if numeric else options.categorical_method
        if chosen:
            return chosen
        small = self.ref.count <= SMALL_REFERENCE
        if numeric and self._union_size() > FEW_VALUES:
            return "ks" if small else "wasserstein"
        if not small:
            return "jensenshannon"
        return "chisquare" if self._union_size() > 2 else "z"

    def _union_size(self) -> int:
        ref, cur = self.ref, self.cur
        if isinstance(ref, NumericColumn) and isinstance(cur, NumericColumn):
            if ref.n_unique > FEW_VALUES or cur.n_unique > FEW_VALUES:
                return FEW_VALUES + 1
            assert ref.distinct_values is not None and cur.distinct_values is not None
            return int(np.union1d(ref.distinct_values, cur.distinct_values).size)
        return int(self.counts()[0].size)

    def run(self, method: str) -> tuple[float, float | None]:
        """(statistic, p-value or None) of ``method``."""
        if method in ("ks", "wasserstein"):
            assert isinstance(self.ref, NumericColumn) and isinstance(self.cur, NumericColumn)
            return (
                _ks(self.ref, self.cur)
                if method == "ks"
                else (_wasserstein(self.ref, self.cur), None)
            )
        ref, cur, labels = self.counts()
        if method == "chisquare":
            return _chisquare(ref, cur)
        if method == "z":
            first = 0 if labels is None else int(pd.Index(labels, dtype=object).argmin())
            return _z_test(ref, cur, first)
        return (_jensenshannon(ref, cur) if method == "jensenshannon" else _psi(ref, cur)), None

    def approximate(self, method: str) -> bool:
        ref = self.ref
        if isinstance(ref, CategoricalColumn):
            return ref.other > 0
        return not ref.exact and method in ("ks", "wasserstein")

    def counts(self) -> Counts:
        """Reference and current counts over shared keys (computed once), and their labels."""
        if self._counts is None:
            ref, cur = self.ref, self.cur
            if isinstance(ref, CategoricalColumn) and isinstance(cur, CategoricalColumn):
                self._counts = _label_counts(ref, cur)
            elif isinstance(ref, NumericColumn) and isinstance(cur, NumericColumn):
                self._counts = _number_counts(ref, cur)
        assert self._counts is not None
        return self._counts

    def histogram(self) -> Histogram:
        ref, cur = self.ref, self.cur
        if isinstance(ref, NumericColumn) and isinstance(cur, NumericColumn):
            edges, values = ref.hist_edges, cur.values
            below = int(np.searchsorted(values, edges[0], side="left"))
            above = int(values.size - np.searchsorted(values, edges[-1], side="right"))
            inner = np.searchsorted(values, edges[1:-1], side="left")
            counts = np.diff(np.concatenate([[below], inner, [values.size - above]]))
            return Histogram(
                reference=tuple(ref.hist_counts.tolist()),
                current=tuple(counts.tolist()),
                edges=tuple(edges.tolist()),
                current_other=below + above,
            )
        ref_counts, cur_counts, labels = self.counts()
        assert labels is not None
        weight = ref_counts / ref_counts.sum() + cur_counts / cur_counts.sum()
        top = np.argsort(-weight, kind="stable")[:HISTOGRAM_LABELS]
        return Histogram(
            reference=tuple(ref_counts[top].tolist()),
            current=tuple(cur_counts[top].tolist()),
            labels=tuple(str(v) for v in labels[top]),
            reference_other=int(ref_counts.sum() - ref_counts[top].sum()),
            current_other=int(cur_counts.sum() - cur_counts[top].sum()),
        )


def _label_counts(ref: CategoricalColumn, cur: CategoricalColumn) -> Counts:
    """Counts over the union of labels; with a truncated profile, unknown labels are "other"."""
    at = pd.Index(ref.labels, dtype=object).get_indexer(pd.Index(cur.labels, dtype=object))
    new = at < 0
    extra = 1 if ref.other else int(new.sum())
    size = ref.labels.size + extra
    ref_counts = np.zeros(size, dtype=np.int64)
    ref_counts[: ref.labels.size] = ref.counts
    cur_counts = np.zeros(size, dtype=np.int64)
    cur_counts[at[~new]] = cur.counts[~new]
    if ref.other:
        ref_counts[-1], cur_counts[-1] = ref.other, cur.counts[new].sum()
        labels = np.append(ref.labels, "(other)")
    else:
        cur_counts[ref.labels.size :] = cur.counts[new]
        labels = np.concatenate([ref.labels, cur.labels[new]])
    return ref_counts, cur_counts, labels


def _number_counts(ref: NumericColumn, cur: NumericColumn) -> Counts:
    """By value when the reference has few distinct values, else in its quantile bins."""
    if ref.distinct_values is None or ref.distinct_counts is None:
        counts = counts_in_bins(cur.values, ref.bin_edges)
        return ref.bin_counts, counts, None
    cur_values, cur_counts = np.unique(cur.values, return_counts=True)
    keys = np.union1d(ref.distinct_values, cur_values)
    ref_keyed = np.zeros(keys.size, dtype=np.int64)
    ref_keyed[np.searchsorted(keys, ref.distinct_values)] = ref.distinct_counts
    cur_keyed = np.zeros(keys.size, dtype=np.int64)
    cur_keyed[np.searchsorted(keys, cur_values)] = cur_counts
    return ref_keyed, cur_keyed, None


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


def _ks(ref: NumericColumn, cur: NumericColumn) -> tuple[float, float]:
    if ref.exact and max(ref.count, cur.count) <= EXACT_KS_LIMIT:
        with _WARNINGS, warnings.catch_warnings():  # scipy warns if exact falls back to asymp
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ks_2samp(ref.values, cur.values)
        return float(result.statistic), float(result.pvalue)
    d = _cdf_gaps(ref.values, cur.values, area=False)
    en = ref.count * cur.count / (ref.count + cur.count)
    return d, float(np.clip(stats.kstwo.sf(d, round(en)), 0.0, 1.0))


def _wasserstein(ref: NumericColumn, cur: NumericColumn) -> float:
    a, b = ref.values, cur.values
    if a.size == b.size:  # equal weights: the sorted values pair up
        with np.errstate(over="ignore", invalid="ignore"):
            distance = float(np.abs(a - b).mean())
    else:
        distance = _cdf_gaps(a, b, area=True)
    return distance / max(ref.std, 0.001)


def _chisquare(ref: IntArray, cur: IntArray) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference shares (as Evidently's)."""
    expected = ref * (cur.sum() / ref.sum())
    seen = expected > 0
    if np.any(cur[~seen] > 0):  # a category the reference never had
        return math.inf, 0.0
    statistic = float(np.sum((cur[seen] - expected[seen]) ** 2 / expected[seen]))
    dof = int(seen.sum()) - 1
    return statistic, float(stats.chi2.sf(statistic, dof)) if dof > 0 else 1.0


def _z_test(ref: IntArray, cur: IntArray, first: int) -> tuple[float, float]:
    """Two-proportion z-test of the share of values other than the smallest key."""
    n1, n2 = int(ref.sum()), int(cur.sum())
    p1, p2 = 1 - ref[first] / n1, 1 - cur[first] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 0.0, 1.0
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(z), float(2 * stats.norm.sf(abs(z)))


def _jensenshannon(ref: IntArray, cur: IntArray) -> float:
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2
    return math.sqrt(max(float(divergence), 0.0))


def _psi(ref: IntArray, cur: IntArray) -> float:
    p, q = _floored(ref / ref.sum()), _floored(cur / cur.sum())
    return float(np.sum((p - q) * np.log(p / q)))


def _floored(shares: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    smallest = shares[shares > 0].min()
    return np.where(shares > 0, shares, smallest / 1e6 if smallest <= PSI_FLOOR else PSI_FLOOR)


def _feature_result(f: FeatureDrift) -> CheckResult:
    values = {"statistic": f.statistic, "p_value": f.p_value, "threshold": f.threshold}
    metrics = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
    return CheckResult(
        name=f"drift:{f.column}",
        kind="data",
        passed=f.checked and not f.drifted,
        severity=Severity.WARNING,
        metrics=metrics | {"ref_size": float(f.ref_size), "cur_size": float(f.cur_size)},
        message=f"{f.verdict}: {f.method} {_statistic_text(f)}, threshold {f.threshold:g}"
        if f.checked
        else f"not checked: {f.note}",
        details=f.to_json(),
    )


def _text_row(width: int, *cells: str) -> str:
    name, kind, method, statistic, threshold, verdict = cells
    return f"{name:<{width}}  {kind:<11}  {method:<13}  {statistic:<26}  {threshold:<9}  {verdict}"


def _statistic_text(f: FeatureDrift) -> str:
    if f.statistic is None:
        return "-"
    name = STATISTIC.get(f.method, f.method)
    text = f"{name}={f.statistic:.4g}" + (f" p={f.p_value:.4g}" if f.p_value is not None else "")
    return text + (" (approx.)" if f.approximate else "")


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _json_float(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
