"""The :class:`Evaluation` value: its parts, its JSON form, and its Markdown and text renderings.

:func:`~conveyor.checks.evaluation.evaluate_classifier` and its siblings build it; a run
stores it as an artifact (``to_json``) and a report renders it (``to_markdown``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.bootstrap import Interval
from conveyor.checks.scored import Task
from conveyor.errors import UsageError

JSONScalar = str | int | float | bool | None
SCHEMA = "conveyor.evaluation/1"


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


def json_scalar(value: Any) -> JSONScalar:
    """A label or slice value as JSON: numpy scalars unwrapped, missing as None, else str."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


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
