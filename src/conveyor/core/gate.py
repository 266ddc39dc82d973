"""Applying a gate's policy to check results inside a step."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.core.checks import CheckResult, GatePolicy, blocking_failures, describe
from conveyor.core.context import record_checks
from conveyor.errors import GateFailedError, UsageError


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
        reasons = "\n".join(f"  - {describe(r)}" for r in failed)
        raise GateFailedError(f"gate '{name}' failed ({len(failed)} blocking):\n{reasons}")
