"""Applying a gate's policy to check results inside a step."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.core.checks import CheckResult, GatePolicy, Severity, blocking_failures, describe
from conveyor.core.context import record_checks
from conveyor.errors import GateFailedError, UsageError

MAX_WARNINGS = 12


def gate(results: Iterable[CheckResult], *, name: str, policy: str = "blocking") -> None:
    """Record ``results`` on the run, then fail the step if the policy says they block.

    Raises GateFailedError naming every failed check when ``policy`` is ``blocking``.
    """
    try:
        mode = GatePolicy(policy)
    except ValueError:
        raise UsageError(
            f"gate '{name}': unknown policy '{policy}'",
            hint="use 'blocking' or 'warning'",
        ) from None
    kept = list(results)
    record_checks(kept)
    failed = blocking_failures(kept)
    if failed and mode == GatePolicy.BLOCKING:
        lines = [f"  - {describe(r)}" for r in failed]
        # Failed warnings are the detail behind a verdict (e.g. which features drifted).
        warned = [
            r for r in kept if not r.passed and r not in failed and r.severity == Severity.WARNING
        ]
        lines += [f"  - {describe(r)} (warning)" for r in warned[:MAX_WARNINGS]]
        if len(warned) > MAX_WARNINGS:
            lines.append(
                f"  ... and {len(warned) - MAX_WARNINGS} more warnings (conveyor runs show)"
            )
        reasons = "\n".join(lines)
        raise GateFailedError(f"gate '{name}' failed ({len(failed)} blocking):\n{reasons}")
