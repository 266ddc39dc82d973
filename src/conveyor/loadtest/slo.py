"""The service-level objective a load test holds the service to, as serving checks.

Today the objective comes from the command line. The shape is the one DESIGN.md gives an
environment's ``load.slo`` in ``conveyor.yaml`` (``{min_qps, max_p99_ms, max_error_rate}``),
so when environments arrive, :func:`slo_from_mapping` reads it from there unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.core.checks import CheckResult, Severity
from conveyor.errors import ConfigError
from conveyor.loadtest.stats import Measurement

KIND = "serving"
HEADROOM_SHARE = 0.5  # above this share of the generator's ceiling, the generator may limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Slo:
    """Each bound is optional; an objective without bounds always passes."""

    min_qps: float | None = None
    max_p99_ms: float | None = None
    max_error_rate: float | None = None

    @property
    def empty(self) -> bool:
        return self.min_qps is None and self.max_p99_ms is None and self.max_error_rate is None

    def merged(self, override: Slo) -> Slo:
        """This objective with every bound ``override`` sets replaced (flags over the file)."""
        return Slo(
            min_qps=override.min_qps if override.min_qps is not None else self.min_qps,
            max_p99_ms=override.max_p99_ms if override.max_p99_ms is not None else self.max_p99_ms,
            max_error_rate=(
                override.max_error_rate
                if override.max_error_rate is not None
                else self.max_error_rate
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "min_qps": self.min_qps,
            "max_p99_ms": self.max_p99_ms,
            "max_error_rate": self.max_error_rate,
        }


class _SloModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_qps: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_p99_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_error_rate: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)


def slo_from_mapping(doc: Mapping[str, Any] | None, where: str) -> Slo:
    """An objective from a mapping such as ``environments[0].load.slo``; ``where`` names it
    (file and key path) in the error when it is malformed."""
    try:
        parsed = _SloModel.model_validate(dict(doc or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{where}.{key}: {first['msg']}",
            hint="write e.g. {min_qps: 1000, max_p99_ms: 25, max_error_rate: 0.001}",
        ) from None
    return Slo(
        min_qps=parsed.min_qps, max_p99_ms=parsed.max_p99_ms, max_error_rate=parsed.max_error_rate
    )


def evaluate(slo: Slo, m: Measurement) -> list[CheckResult]:
    """One blocking serving check per bound the objective sets."""
    results: list[CheckResult] = []
    if slo.min_qps is not None:
        results.append(
            CheckResult(
                name="load.min_qps",
                kind=KIND,
                passed=m.ok_qps >= slo.min_qps,
                metrics={"ok_qps": m.ok_qps, "min_qps": slo.min_qps},
                message=f"{m.ok_qps:,.1f} successful requests/s "
                f"{'>=' if m.ok_qps >= slo.min_qps else '<'} {slo.min_qps:,g}",
            )
        )
    if slo.max_p99_ms is not None:
        p99 = m.latency.p99_ms
        ok = math.isfinite(p99) and p99 <= slo.max_p99_ms
        results.append(
            CheckResult(
                name="load.max_p99_ms",
                kind=KIND,
                passed=ok,
                metrics={"p99_ms": p99, "max_p99_ms": slo.max_p99_ms},
                message=(
                    f"p99 {p99:.2f} ms {'<=' if ok else '>'} {slo.max_p99_ms:g} ms"
                    if math.isfinite(p99)
                    else "no response arrived, so there is no p99"
                ),
            )
        )
    if slo.max_error_rate is not None:
        ok = m.requests > 0 and m.error_rate <= slo.max_error_rate
        results.append(
            CheckResult(
                name="load.max_error_rate",
                kind=KIND,
                passed=ok,
                metrics={"error_rate": m.error_rate, "max_error_rate": slo.max_error_rate},
                message=(
                    f"error rate {m.error_rate:.4%} {'<=' if ok else '>'} "
                    f"{slo.max_error_rate:.4%}" + _error_summary(m)
                    if m.requests
                    else "no request was measured"
                ),
                details={"errors": m.errors},
            )
        )
    return results


def generator_check(m: Measurement, ceiling: Measurement | None) -> CheckResult | None:
    """A warning when the target's throughput came near the generator's own ceiling."""
    if ceiling is None or ceiling.qps <= 0:
        return None
    share = m.qps / ceiling.qps
    ok = share <= HEADROOM_SHARE
    return CheckResult(
        name="load.generator_headroom",
        kind=KIND,
        passed=ok,
        severity=Severity.WARNING,
        metrics={"qps": m.qps, "ceiling_qps": ceiling.qps, "share": share},
        message=f"the target reached {share:.0%} of the generator's ceiling "
        f"({ceiling.qps:,.0f} requests/s)"
        + (
            ""
            if ok
            else "; the generator may have been the bottleneck: run it from another machine "
            "or with fewer connections"
        ),
    )


def schedule_check(m: Measurement) -> CheckResult | None:
    """A warning when an open loop could not send on time (late or dropped requests)."""
    s = m.schedule
    if s is None:
        return None
    ok = s.dropped == 0 and s.late <= 0.01 * max(s.scheduled, 1)
    return CheckResult(
        name="load.schedule",
        kind=KIND,
        passed=ok,
        severity=Severity.WARNING,
        metrics={"scheduled": s.scheduled, "late": s.late, "dropped": s.dropped},
        message=f"{s.late} of {s.scheduled} requests late (> {s.late_after_ms:g} ms), "
        f"{s.dropped} dropped"
        + (
            ""
            if ok
            else f": every connection was busy, so {s.rate:g} requests/s was not sustained; "
            "raise --concurrency or lower --rate"
        ),
    )


def _error_summary(m: Measurement) -> str:
    errors = m.errors
    if not errors:
        return ""
    shown = ", ".join(f"{k}: {n}" for k, n in sorted(errors.items(), key=lambda kv: -kv[1])[:4])
    return f" ({shown})"
