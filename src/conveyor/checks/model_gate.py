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
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy.typing as npt
import pandas as pd

from conveyor.checks.behaviour import BehaviourSpec, parse_behaviour, run_behaviour
from conveyor.checks.bootstrap import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    Interval,
    PairedDifference,
    Scored,
    metric_names,
    metric_stats,
    paired_bootstrap,
    plain_label,
    scored_classification,
    scored_regression,
)
from conveyor.checks.evaluation import (
    Predict,
    compute_metrics,
    model_output,
    model_scored,
    slice_rows,
    undefined_reason,
)
from conveyor.core.checks import CheckResult, Severity, blocking_failures
from conveyor.errors import ConfigError, UsageError, did_you_mean

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
_EXPRESSION = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_EXAMPLE = 'an operator and a number in quotes, e.g. ">= 0.85" (operators: >=, >, <=, <, ==)'


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """``metric op value``, e.g. ``roc_auc >= 0.85``."""

    metric: str
    op: str
    value: float

    def holds(self, actual: float) -> bool:
        return OPERATORS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChampionRule:
    """Compare the challenger with the champion on ``metric`` by a paired bootstrap.

    Exactly one of ``max_drop`` (not worse by more than it) and ``min_gain`` (better by at
    least it). ``slice_max_drop`` turns on the per-slice comparison, for slices with at least
    ``min_slice_rows`` rows.
    """

    metric: str
    max_drop: float | None = None
    min_gain: float | None = None
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    slice_max_drop: float | None = None
    min_slice_rows: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    thresholds: tuple[Threshold, ...] = ()
    champion: ChampionRule | None = None
    slices: tuple[str, ...] = ()
    behaviour: BehaviourSpec | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str = "checks.model") -> GateConfig:
        """Parse the ``checks.model`` block; ConfigError (exit 2) naming the key if invalid.

        ``label`` and ``policy`` belong to the built-in step that runs the gate, and are
        accepted and left alone; an empty ``champion`` or ``behaviour`` means none.
        """
        _known_keys(
            raw, ("thresholds", "champion", "slices", "behaviour", "label", "policy"), where
        )
        thresholds = raw.get("thresholds") or {}
        if not isinstance(thresholds, Mapping):
            raise ConfigError(
                f"{where}.thresholds must be a mapping of metric to expression",
                hint='e.g. thresholds: {roc_auc: ">= 0.85"}',
            )
        slices = raw.get("slices") or []
        if isinstance(slices, str) or not all(isinstance(s, str) for s in slices):
            raise ConfigError(f"{where}.slices must be a list of column names")
        champion, behaviour = raw.get("champion"), raw.get("behaviour")
        return cls(
            thresholds=tuple(
                parse_threshold(str(m), e, where=f"{where}.thresholds")
                for m, e in thresholds.items()
            ),
            champion=parse_champion(champion, f"{where}.champion") if champion else None,
            slices=tuple(slices),
            behaviour=parse_behaviour(behaviour, f"{where}.behaviour") if behaviour else None,
        )


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


# --- configuration ------------------------------------------------------------------------


def _known_keys(raw: Any, known: Sequence[str], where: str) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, not {type(raw).__name__}")
    for key in raw:
        if key not in known:
            hint = did_you_mean(str(key), list(known)) or f"known keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key {key!r}", hint=hint)


def _metric(name: Any, where: str) -> str:
    known = CLASSIFICATION_METRICS + REGRESSION_METRICS
    if name not in known:
        hint = did_you_mean(str(name), known) or f"known metrics: {', '.join(known)}"
        raise ConfigError(f"{where}: unknown metric {name!r}", hint=hint)
    return str(name)


def parse_threshold(metric: str, expression: Any, *, where: str = "thresholds") -> Threshold:
    """``parse_threshold("roc_auc", ">= 0.85")``; ConfigError with a suggestion if invalid."""
    name = _metric(metric, f"{where}.{metric}")
    found = _EXPRESSION.match(expression) if isinstance(expression, str) else None
    if found is None:
        raise ConfigError(f"{where}.{metric}: cannot read {expression!r}", hint=f"write {_EXAMPLE}")
    return Threshold(metric=name, op=found[1], value=float(found[2]))


def _number(raw: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = raw.get(key, default)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise ConfigError(f"{where}.{key} must be a number, not {value!r}")
    if value is not None and value < 0:
        raise ConfigError(f"{where}.{key} must be >= 0, not {value}")
    return None if value is None else float(value)


def parse_champion(raw: Any, where: str = "champion") -> ChampionRule:
    """``{metric: roc_auc, max_drop: 0.005, confidence: 0.95}`` -> :class:`ChampionRule`."""
    keys = [f.name for f in ChampionRule.__dataclass_fields__.values()]
    _known_keys(raw, keys, where)
    if "metric" not in raw:
        raise ConfigError(f"{where}: 'metric' is missing", hint="e.g. metric: roc_auc")
    max_drop = _number(raw, "max_drop", where, None)
    min_gain = _number(raw, "min_gain", where, None)
    if (max_drop is None) == (min_gain is None):
        raise ConfigError(
            f"{where}: give exactly one of max_drop and min_gain",
            hint="max_drop: 0.005 (not worse by more) or min_gain: 0.01 (better by at least)",
        )
    confidence = _number(raw, "confidence", where, 0.95) or 0.0
    resamples = _number(raw, "resamples", where, 1000) or 0.0
    if not 0.5 <= confidence < 1.0 or resamples < 100 or resamples != int(resamples):
        raise ConfigError(
            f"{where}: confidence must be in [0.5, 1) and resamples a whole number >= 100",
            hint="e.g. confidence: 0.95, resamples: 1000",
        )
    return ChampionRule(
        metric=_metric(raw["metric"], f"{where}.metric"),
        max_drop=max_drop,
        min_gain=min_gain,
        confidence=confidence,
        resamples=int(resamples),
        seed=int(_number(raw, "seed", where, 0) or 0),
        slice_max_drop=_number(raw, "slice_max_drop", where, None),
        min_slice_rows=int(_number(raw, "min_slice_rows", where, 100) or 0),
    )


# --- checks -------------------------------------------------------------------------------


def _value(x: float) -> str:
    return f"{x:.4g}"


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
            message = f"{t.metric} {_value(actual)} {op} {t.value:g} (threshold)"
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


def _paired(
    challenger: Scored, champion: Scored, rule: ChampionRule
) -> tuple[PairedDifference, Interval] | str:
    """The paired bootstrap of challenger - champion, or why there is none."""
    for who, s in (("challenger", challenger), ("champion", champion)):
        reason = undefined_reason(rule.metric, s)
        if reason:
            return f"{rule.metric} of the {who} cannot be computed: {reason}"
    pick = [rule.metric]
    paired = paired_bootstrap(
        metric_stats(champion, pick)[rule.metric],
        metric_stats(challenger, pick)[rule.metric],
        challenger.n,
        resamples=rule.resamples,
        confidence=rule.confidence,
        seed=rule.seed,
    )
    if paired.interval is None:
        return f"{rule.metric} is undefined on more than 1% of the resamples of {challenger.n} rows"
    return paired, paired.interval


def _verdict(
    rule: ChampionRule, found: tuple[PairedDifference, Interval], margin: float, gain: bool
) -> tuple[bool, str]:
    """Whether the paired difference meets the rule, and the reason in words."""
    d, iv = found
    higher = HIGHER_IS_BETTER[rule.metric]
    low, high = (iv.low, iv.high) if higher else (-iv.high, -iv.low)  # interval of the gain
    level = f"{rule.confidence * 100:g}%"
    if gain:
        passed = low >= margin
        phrase = f"{'' if passed else 'not shown '}better by at least {margin:g} at {level}"
    else:
        passed = low >= -margin
        worse = "not worse" if passed else ("worse" if high < -margin else "could be worse")
        phrase = f"{worse} by more than {margin:g} at {level}"
    lower = "" if higher else " (lower is better)"
    return passed, (
        f"challenger {rule.metric} {d.difference:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}] "
        f"vs champion: {phrase}{lower}"
    )


def _champion_result(challenger: Scored, champion: Scored, rule: ChampionRule) -> CheckResult:
    name = f"champion:{rule.metric}"
    found = _paired(challenger, champion, rule)
    if isinstance(found, str):
        return _failed(name, f"challenger not compared with the champion: {found}")
    gain = rule.min_gain is not None
    margin = rule.min_gain if rule.min_gain is not None else rule.max_drop or 0.0
    passed, message = _verdict(rule, found, margin, gain)
    return CheckResult(
        name=name,
        kind="model",
        passed=passed,
        metrics=_numbers(found),
        message=f"{message} (challenger {_value(found[0].candidate)}, "
        f"champion {_value(found[0].baseline)})",
        details={
            "metric": rule.metric,
            "rule": "min_gain" if gain else "max_drop",
            "margin": margin,
            "confidence": rule.confidence,
            "resamples": rule.resamples,
            "seed": rule.seed,
            "higher_is_better": HIGHER_IS_BETTER[rule.metric],
        },
    )


def _numbers(found: tuple[PairedDifference, Interval]) -> dict[str, float]:
    d, iv = found
    return {
        "challenger": d.candidate,
        "champion": d.baseline,
        "difference": d.difference,
        "low": iv.low,
        "high": iv.high,
    }


def _failed(name: str, message: str, severity: Severity = Severity.ERROR) -> CheckResult:
    return CheckResult(name=name, kind="model", passed=False, severity=severity, message=message)


def check_slices(
    challenger: Scored, champion: Scored, rule: ChampionRule, slices: pd.DataFrame
) -> list[CheckResult]:
    """Per slice column: no slice with enough rows is worse by more than ``slice_max_drop``."""
    margin = rule.slice_max_drop or 0.0
    by_column: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for column, value, rows in slice_rows(slices, challenger.n):
        checked, skipped = by_column.setdefault(column, ([], []))
        entry: dict[str, Any] = {"value": value, "n": int(rows.size)}
        if rows.size < rule.min_slice_rows:
            skipped.append(entry | {"reason": f"fewer than {rule.min_slice_rows} rows"})
            continue
        found = _paired(challenger.take(rows), champion.take(rows), rule)
        if isinstance(found, str):
            skipped.append(entry | {"reason": found})
            continue
        passed, message = _verdict(rule, found, margin, gain=False)
        label = f"{column}={'(missing)' if value is None else value}"
        checked.append(
            entry | _numbers(found) | {"passed": passed, "message": f"{label}: {message}"}
        )
    return [_slice_result(c, *lists, rule) for c, lists in by_column.items()]


def _slice_result(
    column: str, checked: list[dict[str, Any]], skipped: list[dict[str, Any]], rule: ChampionRule
) -> CheckResult:
    details = {"checked": checked, "skipped": skipped, "margin": rule.slice_max_drop}
    name = f"champion_slices:{column}"
    if not checked:
        message = (
            f"no slice of {column!r} could be compared with the champion "
            f"(each has fewer than {rule.min_slice_rows} rows or an undefined {rule.metric})"
        )
        return CheckResult(
            name=name,
            kind="model",
            passed=False,
            severity=Severity.WARNING,
            message=message,
            details=details,
        )
    worse = [c["message"] for c in checked if not c["passed"]]
    summary = f"{len(checked) - len(worse)} of {len(checked)} slices of {column!r} pass"
    if skipped:
        summary += f" ({len(skipped)} too small or undefined, not compared)"
    return CheckResult(
        name=name,
        kind="model",
        passed=not worse,
        metrics={"checked": float(len(checked)), "worse": float(len(worse))},
        message="; ".join(worse) if worse else summary,
        details=details,
    )


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
        results += _champion_results(challenger, champion, rule, slices)
    return outcome(results + behaviour)


def _champion_results(
    challenger: Scored, champion: Scored | str | None, rule: ChampionRule, slices: Any
) -> list[CheckResult]:
    name = f"champion:{rule.metric}"
    if champion is None:
        note = "no champion given: the challenger was not compared (first model?)"
        return [_failed(name, note, Severity.INFO)]
    if isinstance(champion, str):
        return [_failed(name, f"champion could not be compared: {champion}")]
    results = [_champion_result(challenger, champion, rule)]
    if rule.slice_max_drop is not None and slices is not None:
        results += check_slices(challenger, champion, rule, slices)
    return results


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
    skipped = []
    if config.behaviour is not None:
        note = "behavioural checks need the model: not run from scores (use validate_model)"
        skipped.append(_failed("behaviour", note, Severity.INFO))
    return _gate(scored(challenger), config, current, slices, skipped)


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
