"""The model validation gate: metric thresholds, champion/challenger, per-slice regression.

Configured in ``conveyor.yaml`` under ``checks.model``::

    thresholds: {roc_auc: ">= 0.85", log_loss: "<= 0.5"}
    champion: {metric: roc_auc, max_drop: 0.005, confidence: 0.95, slice_max_drop: 0.02}
    slices: [region]

The champion comparison is a paired bootstrap on the same evaluation rows: both models are
scored on every resample, and the rule reads the percentile interval of
``challenger - champion``. ``max_drop: d`` passes when the interval's lower end is >= -d
(not worse by more than d); ``min_gain: d`` passes when it is >= d (better by at least d).
For a metric where lower is better (log_loss, brier, mae, rmse, mape) the rule is mirrored.
Every check returns a :class:`~conveyor.core.checks.CheckResult`; the gate blesses the
challenger when no check of severity ``error`` failed.

The configuration is parsed in :mod:`conveyor.checks.gate_config` and the champion comparison
is made in :mod:`conveyor.checks.champion`; their public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy.typing as npt
import pandas as pd

from conveyor.checks.behaviour import run_behaviour
from conveyor.checks.champion import champion_results, check_slices
from conveyor.checks.evaluation import compute_metrics
from conveyor.checks.gate_config import (
    NEGATED,
    OPERATORS,
    ChampionRule,
    GateConfig,
    Threshold,
    parse_champion,
    parse_threshold,
)
from conveyor.checks.metrics import metric_names
from conveyor.checks.model_output import Predict, model_output, model_scored
from conveyor.checks.scored import Scored, plain_label, scored_classification, scored_regression
from conveyor.core.checks import CheckResult, Severity, blocking_failures
from conveyor.errors import ConfigError, UsageError, did_you_mean

__all__ = [
    "NEGATED",
    "OPERATORS",
    "ChampionRule",
    "GateConfig",
    "GateOutcome",
    "Threshold",
    "check_slices",
    "check_thresholds",
    "outcome",
    "parse_champion",
    "parse_threshold",
    "validate_model",
    "validate_scores",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GateOutcome:
    """The gate's decision. ``reasons`` lists why it failed (blocking results first), then
    warnings and notes; it is empty when every check passed."""

    blessed: bool
    results: list[CheckResult]
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "reasons": list(self.reasons),
            "results": [asdict(r) | {"severity": str(r.severity)} for r in self.results],
        }


# --- checks -------------------------------------------------------------------------------


def _check_task(metric: str, s: Scored, where: str) -> None:
    if metric not in metric_names(s.task):
        raise ConfigError(
            f"{where}: {metric} is not a metric of a {s.task} model",
            hint=f"metrics of a {s.task} model: {', '.join(metric_names(s.task))}",
        )


def check_thresholds(s: Scored, thresholds: Sequence[Threshold]) -> list[CheckResult]:
    """One result per threshold; a metric that cannot be computed fails, with the reason."""
    for t in thresholds:
        _check_task(t.metric, s, f"checks.model.thresholds.{t.metric}")
    metrics, undefined = compute_metrics(s)
    results = []
    for t in thresholds:
        actual = metrics[t.metric]
        if actual is None:
            passed, message = False, f"{t.metric} could not be computed: {undefined[t.metric]}"
            numbers = {"threshold": t.value}
        else:
            passed = t.holds(actual)
            op = t.op if passed else NEGATED[t.op]
            message = f"{t.metric} {actual:.4g} {op} {t.value:g} (threshold)"
            numbers = {t.metric: actual, "threshold": t.value}
        results.append(
            CheckResult(
                name=f"threshold:{t.metric}",
                kind="model",
                passed=passed,
                metrics=numbers,
                message=message if actual is not None else f"{message} ({t} not checked)",
                details={"metric": t.metric, "op": t.op, "threshold": t.value, "value": actual},
            )
        )
    return results


# --- the gate -----------------------------------------------------------------------------


def outcome(results: list[CheckResult]) -> GateOutcome:
    """Bless unless a check of severity ``error`` failed; reasons in order of weight."""
    blocking = [r.message for r in blocking_failures(results)]
    other = [
        f"{r.severity}: {r.message}"
        for r in results
        if not r.passed and r.severity != Severity.ERROR
    ]
    return GateOutcome(blessed=not blocking, results=results, reasons=blocking + other)


def _gate(
    challenger: Scored,
    config: GateConfig,
    champion: Scored | str | None,
    slices: pd.DataFrame | None,
    behaviour: list[CheckResult],
) -> GateOutcome:
    if not config.thresholds and config.champion is None and config.behaviour is None:
        raise ConfigError(
            "checks.model has no thresholds, champion rule or behaviour: the gate would check "
            "nothing",
            hint='add e.g. thresholds: {roc_auc: ">= 0.8"} or champion: {metric: roc_auc, ...}',
        )
    results = check_thresholds(challenger, config.thresholds)
    rule = config.champion
    if rule is not None:
        _check_task(rule.metric, challenger, "checks.model.champion.metric")
        results += champion_results(challenger, champion, rule, slices)
    return outcome(results + behaviour)


def validate_scores(
    y_true: npt.ArrayLike,
    challenger: npt.ArrayLike,
    config: GateConfig,
    *,
    champion: npt.ArrayLike | None = None,
    slices: pd.DataFrame | None = None,
    classes: Sequence[Any] | None = None,
    threshold: float = 0.5,
    regression: bool = False,
) -> GateOutcome:
    """The gate from scores: both models' outputs on the same rows, in the same order.

    Scores are as for :func:`~conveyor.checks.evaluation.evaluate_classifier` (or predictions
    with ``regression=True``). Invalid challenger scores raise UsageError; invalid champion
    scores make the champion check fail with the reason.
    """

    def scored(values: npt.ArrayLike) -> Scored:
        if regression:
            return scored_regression(y_true, values)
        return scored_classification(y_true, values, classes=classes, threshold=threshold)

    current: Scored | str | None = None
    if champion is not None:
        try:
            current = scored(champion)
        except UsageError as exc:
            current = f"its scores are unusable: {exc.message}"
    return _gate(scored(challenger), config, current, slices, _behaviour_skipped(config))


def _behaviour_skipped(config: GateConfig) -> list[CheckResult]:
    """An info result when behavioural checks are configured: scores alone cannot run them."""
    if config.behaviour is None:
        return []
    note = "behavioural checks need the model: not run from scores (use validate_model)"
    return [
        CheckResult(
            name="behaviour", kind="model", passed=False, severity=Severity.INFO, message=note
        )
    ]


def validate_model(
    challenger: Any,
    X: pd.DataFrame,
    y: npt.ArrayLike,
    config: GateConfig,
    *,
    champion: Any = None,
    predict: Predict = "predict_proba",
    slices: pd.DataFrame | None = None,
    threshold: float = 0.5,
) -> GateOutcome:
    """The gate from fitted models, scored on the evaluation rows ``X, y``.

    Slices are ``config.slices`` columns of ``X`` unless a ``slices`` frame is given. A
    champion that cannot score ``X`` (other feature columns, other classes, a failing
    predict method) fails the champion check with the reason; it is never a traceback.
    The behavioural checks of ``config.behaviour`` run on the challenger with ``X``.
    """
    mine = model_scored(challenger, X, y, predict=predict, threshold=threshold)
    frame = slices if slices is not None else _config_slices(X, config.slices)
    current = None if champion is None else _champion_scored(champion, X, y, mine, predict)
    behaviour = [] if config.behaviour is None else run_behaviour(challenger, X, config.behaviour)
    return _gate(mine, config, current, frame, behaviour)


def _config_slices(X: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame | None:
    if not columns:
        return None
    for column in columns:
        if column not in X.columns:
            hint = did_you_mean(column, [str(c) for c in X.columns])
            raise ConfigError(
                f"checks.model.slices: {column!r} is not a column of the evaluation data",
                hint=hint or f"columns: {', '.join(map(str, X.columns[:10]))}",
            )
    return X[list(columns)].reset_index(drop=True)


def _champion_scored(
    champion: Any, X: pd.DataFrame, y: npt.ArrayLike, mine: Scored, predict: Predict
) -> Scored | str:
    """The champion's scores on the same rows, or why it cannot give them."""
    classes = getattr(champion, "classes_", None)
    if mine.task != "regression" and classes is not None:
        theirs = tuple(plain_label(c) for c in classes)
        if theirs != mine.classes:
            return f"its classes {list(theirs)} differ from the challenger's {list(mine.classes)}"
    try:
        output = model_output(champion, X, predict)
        if mine.task == "regression":
            return scored_regression(y, output)
        return scored_classification(
            y, output, classes=list(mine.classes), threshold=mine.threshold
        )
    except UsageError as exc:
        return exc.message
