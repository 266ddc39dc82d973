"""The champion/challenger comparison of the model gate, overall and per slice.

The comparison is a paired bootstrap on the same evaluation rows: both models are scored on
every resample, and the rule reads the percentile interval of ``challenger - champion``
(see :mod:`conveyor.checks.model_gate`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from conveyor.checks.bootstrap import Interval, PairedDifference, paired_bootstrap
from conveyor.checks.evaluation import slice_rows, undefined_reason
from conveyor.checks.gate_config import ChampionRule
from conveyor.checks.metrics import HIGHER_IS_BETTER, metric_stats
from conveyor.checks.scored import Scored
from conveyor.core.checks import CheckResult, Severity


def champion_results(
    challenger: Scored, champion: Scored | str | None, rule: ChampionRule, slices: Any
) -> list[CheckResult]:
    """The champion check (and the per-slice checks, when asked for) of ``rule``.

    ``champion`` is None when there is none to compare with (an info result), or the reason
    it could not be scored (a failed result).
    """
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


def _value(x: float) -> str:
    return f"{x:.4g}"


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
