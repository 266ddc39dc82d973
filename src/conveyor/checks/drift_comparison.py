"""One reference column against the same-named current column: method, counts, histogram.

:class:`Comparison` chooses the method as Evidently's ``DataDriftPreset`` does (see
:mod:`conveyor.checks.drift`), runs it, and bins both columns for the report's histogram.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from conveyor.checks.drift_report import Histogram
from conveyor.checks.drift_statistics import chisquare, jensenshannon, ks, psi, wasserstein, z_test
from conveyor.checks.profile import (
    CategoricalColumn,
    ColumnProfile,
    IntArray,
    NumericColumn,
    TextArray,
    counts_in_bins,
)

SMALL_REFERENCE = 1000  # reference values up to which the tests are used
FEW_VALUES = 5  # numeric columns with at most this many distinct values are compared as counts
HISTOGRAM_LABELS = 20
# reference and current counts over shared keys, and the keys' labels (categorical only)
Counts = tuple[IntArray, IntArray, "TextArray | None"]


class Comparison:
    """One reference column against the same-kind current column."""

    def __init__(self, ref: NumericColumn | CategoricalColumn, cur: ColumnProfile) -> None:
        self.ref, self.cur = ref, cur
        self._counts: Counts | None = None
        mixed = isinstance(ref, CategoricalColumn) and ref.mixed
        mixed = mixed or (isinstance(cur, CategoricalColumn) and cur.mixed)
        self.note = "values of mixed types, compared by their text form" if mixed else ""

    def auto_method(self, numeric_method: str | None, categorical_method: str | None) -> str:
        """The per-kind option, else Evidently's choice (see :mod:`conveyor.checks.drift`)."""
        numeric = isinstance(self.ref, NumericColumn)
        chosen = numeric_method if numeric else categorical_method
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
                ks(self.ref, self.cur)
                if method == "ks"
                else (wasserstein(self.ref, self.cur), None)
            )
        ref, cur, labels = self.counts()
        if method == "chisquare":
            return chisquare(ref, cur)
        if method == "z":
            first = 0 if labels is None else int(pd.Index(labels, dtype=object).argmin())
            return z_test(ref, cur, first)
        return (jensenshannon(ref, cur) if method == "jensenshannon" else psi(ref, cur)), None

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
