"""What a load test measured: latency samples, statuses, errors, and their summary.

Every latency is kept (8 bytes a request: a million requests are 8 MB), so percentiles are
exact, by the nearest-rank method: p99 is the smallest latency that at least 99% of the
requests did not exceed.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50.0, 90.0, 99.0)


def percentile(sorted_values: array[float] | list[float], p: float) -> float:
    """Nearest-rank percentile of ascending values (``p`` in 0..100); NaN when empty."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile {p} is outside 0..100")
    rank = max(1, math.ceil(p / 100.0 * n))
    return float(sorted_values[rank - 1])


class Recorder:
    """Collects one phase's outcomes; a request is recorded once, when it ends."""

    __slots__ = ("errors", "failures", "first_send", "last_end", "latencies", "statuses")

    def __init__(self) -> None:
        self.latencies: array[float] = array("d")
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.first_send = math.inf
        self.last_end = 0.0

    def response(self, start: float, end: float, status: int) -> None:
        self.latencies.append(end - start)
        self.statuses[status] += 1
        if end > self.last_end:
            self.last_end = end

    def failure(self, end: float, kind: str) -> None:
        self.failures[kind] += 1
        if end > self.last_end:
            self.last_end = end

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.failures.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Latency percentiles in milliseconds, over every request that got a response."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: array[float] | list[float]) -> Latency:
        ordered = sorted(seconds)
        if not ordered:
            return cls(
                count=0,
                mean_ms=math.nan,
                p50_ms=math.nan,
                p90_ms=math.nan,
                p99_ms=math.nan,
                max_ms=math.nan,
            )
        p50, p90, p99 = (percentile(ordered, p) * 1000.0 for p in PERCENTILES)
        return cls(
            count=len(ordered),
            mean_ms=math.fsum(ordered) / len(ordered) * 1000.0,
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            max_ms=ordered[-1] * 1000.0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_ms": _finite(self.mean_ms),
            "p50_ms": _finite(self.p50_ms),
            "p90_ms": _finite(self.p90_ms),
            "p99_ms": _finite(self.p99_ms),
            "max_ms": _finite(self.max_ms),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """How well an open loop kept to its schedule."""

    rate: float  # requests per second asked for
    scheduled: int  # requests whose time fell in the measured window
    late: int  # sent more than ``late_after_ms`` after their scheduled time
    dropped: int  # never sent: every connection was busy until the end
    late_after_ms: float
    max_send_lag_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "scheduled": self.scheduled,
            "late": self.late,
            "dropped": self.dropped,
            "late_after_ms": self.late_after_ms,
            "max_send_lag_ms": _finite(self.max_send_lag_ms),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """One measured phase against one endpoint."""

    url: str
    mode: str  # closed | open
    connections: int
    elapsed_s: float
    requests: int  # responses + failures
    responses: int
    ok: int  # 2xx responses
    latency: Latency
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # no response: timeout, reset, ...
    schedule: Schedule | None = None

    @property
    def qps(self) -> float:
        """Responses (of any status) per second."""
        return self.responses / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok_qps(self) -> float:
        """2xx responses per second: the throughput the SLO's ``min_qps`` holds to."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def errors(self) -> dict[str, int]:
        """Failed requests by cause: a non-2xx status ("500") or a failure ("timeout")."""
        by_status = {str(s): n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}
        return {**by_status, **dict(sorted(self.failures.items()))}

    @property
    def error_rate(self) -> float:
        return (self.requests - self.ok) / self.requests if self.requests else 0.0

    @classmethod
    def of(
        cls,
        recorder: Recorder,
        *,
        url: str,
        mode: str,
        connections: int,
        started: float,
        schedule: Schedule | None = None,
    ) -> Measurement:
        elapsed = max(recorder.last_end - started, 0.0)
        return cls(
            url=url,
            mode=mode,
            connections=connections,
            elapsed_s=elapsed,
            requests=recorder.requests,
            responses=len(recorder.latencies),
            ok=sum(n for s, n in recorder.statuses.items() if 200 <= s < 300),
            latency=Latency.of(recorder.latencies),
            statuses=dict(sorted(recorder.statuses.items())),
            failures=dict(sorted(recorder.failures.items())),
            schedule=schedule,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "mode": self.mode,
            "connections": self.connections,
            "elapsed_s": self.elapsed_s,
            "requests": self.requests,
            "responses": self.responses,
            "ok": self.ok,
            "qps": self.qps,
            "ok_qps": self.ok_qps,
            "error_rate": self.error_rate,
            "latency": self.latency.to_json(),
            "statuses": {str(s): n for s, n in self.statuses.items()},
            "failures": dict(self.failures),
            "errors": self.errors,
            "schedule": self.schedule.to_json() if self.schedule else None,
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
