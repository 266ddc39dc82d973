"""Assertions for ML tests. Each failure message shows the numbers that failed."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "assert_directional",
    "assert_invariant",
    "assert_metric",
    "assert_no_drift",
    "assert_not_worse_than",
    "assert_schema",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_CONDITION = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def assert_schema(data: Any, schema: Any) -> None:
    """``data`` has no blocking anomaly against ``schema`` (a Schema or a schema file)."""
    from conveyor.checks.schema import Schema, load_schema
    from conveyor.checks.validation import validate

    loaded = schema if isinstance(schema, Schema) else load_schema(Path(schema))
    report = validate(data, loaded)
    if report.blocking:
        raise AssertionError(
            f"data does not match the schema: {report.summary()}\n{report.to_text()}"
        )


def assert_no_drift(reference: Any, current: Any, **options: Any) -> None:
    """No dataset-level drift of ``current`` against ``reference`` (a table or a profile)."""
    from conveyor.checks.drift import drift
    from conveyor.checks.drift_config import drift_options

    report = drift(reference, current, drift_options(options, where="assert_no_drift"))
    if report.drifted:
        raise AssertionError(f"the data drifted:\n{report.to_text()}")


def _metric_value(source: Any, name: str) -> tuple[float | None, str]:
    """(value, interval text) of metric ``name`` in an Evaluation, its JSON, a test run's
    metrics or a plain mapping."""
    interval = ""
    if hasattr(source, "to_dict") and hasattr(source, "intervals"):
        source = source.to_dict()
    if hasattr(source, "metrics") and not isinstance(source, Mapping):
        source = source.metrics
    if isinstance(source, Mapping) and isinstance(source.get("metrics"), Mapping):
        ci = (source.get("intervals") or {}).get(name)
        if ci:
            interval = f" (95% interval [{ci['low']:.4f}, {ci['high']:.4f}])"
        source = source["metrics"]
    if not isinstance(source, Mapping) or name not in source:
        known = sorted(source) if isinstance(source, Mapping) else []
        raise AssertionError(f"no metric '{name}'; the metrics are {known}")
    value = source[name]
    return (None if value is None else float(value)), interval


def assert_metric(source: Any, name: str, condition: str) -> None:
    """``assert_metric(evaluation, "roc_auc", ">= 0.8")``; ``source`` is an Evaluation, its
    JSON, ``conveyor_run(...)`` or a mapping of metric values."""
    found = _CONDITION.match(condition)
    if found is None:
        raise ValueError(f"cannot read condition {condition!r}; write e.g. '>= 0.8'")
    op, bound = found[1], float(found[2])
    value, interval = _metric_value(
        getattr(source, "metrics", source) if hasattr(source, "outcome") else source, name
    )
    if value is None or math.isnan(value):
        raise AssertionError(f"{name} could not be computed, so '{name} {condition}' is not met")
    if not _OPS[op](value, bound):
        raise AssertionError(f"{name} = {value:.4f}{interval}, expected {op} {bound:g}")


def _raise_failed(result: Any) -> None:
    if not result.passed:
        numbers = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
        raise AssertionError(
            f"{result.name}: {result.message}" + (f" [{numbers}]" if numbers else "")
        )


def assert_invariant(
    model: Any, data: Any, column: str, *, epsilon: float = 0.01, **options: Any
) -> None:
    """Perturbing ``column`` (shuffled by default) changes no prediction by ``epsilon`` or more."""
    from conveyor.checks.behaviour import check_invariance

    _raise_failed(check_invariance(model, data, column, epsilon=epsilon, **options))


def assert_directional(
    model: Any,
    data: Any,
    column: str,
    *,
    delta: float,
    expect: str = "non_decreasing",
    **options: Any,
) -> None:
    """Raising ``column`` by ``delta`` never moves the score against ``expect``
    (``non_decreasing`` or ``non_increasing``)."""
    from conveyor.checks.behaviour import check_direction

    _raise_failed(
        check_direction(model, data, column, delta=delta, expect=expect, **options)  # type: ignore[arg-type]
    )


def assert_not_worse_than(
    challenger: Any,
    champion: Any,
    data: Any,
    labels: Any,
    *,
    metric: str = "roc_auc",
    max_drop: float = 0.0,
    confidence: float = 0.95,
    resamples: int = 1000,
    predict: Literal["predict", "predict_proba"] = "predict_proba",
) -> None:
    """The challenger is not worse than the champion on ``metric`` by more than ``max_drop``,
    at ``confidence``, by a paired bootstrap on the same rows."""
    from conveyor.checks.model_gate import ChampionRule, GateConfig, validate_model

    rule = ChampionRule(
        metric=metric, max_drop=max_drop, confidence=confidence, resamples=resamples
    )
    outcome = validate_model(
        challenger, data, labels, GateConfig(champion=rule), champion=champion, predict=predict
    )
    for result in outcome.results:
        if result.name.startswith("champion:"):
            _raise_failed(result)
            return
    raise AssertionError(f"the champion comparison did not run: {outcome.reasons}")
