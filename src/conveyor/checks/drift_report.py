"""The drift report: per-feature results, the dataset verdict, and their renderings.

:class:`DriftReport` is what :func:`conveyor.checks.drift.drift` returns; it renders as JSON,
text and Markdown, and turns into the :class:`~conveyor.core.checks.CheckResult` values a
gate decides on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from conveyor.checks.drift_statistics import STATISTIC
from conveyor.checks.profile import ColumnKind
from conveyor.core.checks import CheckResult, Severity


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
