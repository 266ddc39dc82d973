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

The tests and distances are in :mod:`conveyor.checks.drift_statistics`, the comparison of one
column in :mod:`conveyor.checks.drift_comparison` and the report in
:mod:`conveyor.checks.drift_report`; their public names are re-exported here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import pandas as pd

from conveyor.checks.drift_comparison import (
    FEW_VALUES,
    HISTOGRAM_LABELS,
    SMALL_REFERENCE,
    Comparison,
    Counts,
)
from conveyor.checks.drift_report import DriftReport, FeatureDrift, Histogram
from conveyor.checks.drift_statistics import (
    CATEGORICAL,
    EXACT_KS_LIMIT,
    METHODS,
    NUMERIC,
    PSI_FLOOR,
    STATISTIC,
)
from conveyor.checks.profile import (
    ColumnKind,
    ColumnProfile,
    Profile,
    UnsupportedColumn,
    checked_frame,
    column_kind,
    summarise,
)
from conveyor.errors import UsageError, did_you_mean

__all__ = [
    "CATEGORICAL",
    "EXACT_KS_LIMIT",
    "FEW_VALUES",
    "HISTOGRAM_LABELS",
    "METHODS",
    "NUMERIC",
    "PSI_FLOOR",
    "SMALL_REFERENCE",
    "STATISTIC",
    "Counts",
    "DriftOptions",
    "DriftReport",
    "FeatureDrift",
    "Histogram",
    "drift",
]


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
    columns, rows = _reference_columns(reference)
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

    return DriftReport(
        features=_on_threads(one, names, workers),
        drift_share=options.drift_share,
        reference_rows=rows,
        current_rows=len(frame),
        new_columns=tuple(n for n in current_names if n not in columns),
    )


def _reference_columns(
    reference: pd.DataFrame | Profile,
) -> tuple[Mapping[str, ColumnProfile | pd.Series], int]:
    """The reference's columns (profiles, or raw columns to summarise) and its row count."""
    if isinstance(reference, Profile):
        return reference.columns, reference.rows
    frame = checked_frame(reference, "reference")
    return {str(c): frame[c] for c in frame.columns}, len(frame)


def _on_threads(
    one: Callable[[str], FeatureDrift], names: list[str], workers: int | None
) -> tuple[FeatureDrift, ...]:
    """``one`` of every name, in order, on ``workers`` threads (default: one per CPU)."""
    threads = workers or os.cpu_count() or 1
    if threads == 1:
        return tuple(map(one, names))
    with ThreadPoolExecutor(max_workers=threads) as pool:  # numpy's work releases the GIL
        return tuple(pool.map(one, names))


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
    comparison = Comparison(ref, cur)
    method = options.methods.get(name) or comparison.auto_method(
        options.numeric_method, options.categorical_method
    )
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
