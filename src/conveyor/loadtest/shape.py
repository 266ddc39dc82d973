"""The shape of a load test: how many connections, what rate, for how long."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conveyor.errors import UsageError

DEFAULT_CONCURRENCY = 8  # closed loop: connections, each with one request in flight
DEFAULT_OPEN_CONNECTIONS = 64  # open loop: the most requests in flight at once
LATE_AFTER_S = 0.010  # an open-loop request sent this long after its time is late
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h|)")
_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadShape:
    """Closed loop at ``concurrency`` connections, or open loop at ``rate`` requests/s.

    ``warmup_s`` of load runs first and is not measured; the measured window then ends after
    ``duration_s`` or ``max_requests`` requests, whichever comes first.
    """

    concurrency: int = DEFAULT_CONCURRENCY
    rate: float | None = None
    duration_s: float = 10.0
    warmup_s: float = 2.0
    max_requests: int | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.concurrency > 10_000:
            raise UsageError(
                f"concurrency {self.concurrency} is out of range", hint="use 1 to 10000"
            )
        if self.rate is not None and not self.rate > 0:
            raise UsageError(f"rate {self.rate} is not positive", hint="e.g. --rate 500")
        if not self.duration_s > 0:
            raise UsageError(f"duration {self.duration_s}s is not positive", hint="e.g. 10s")
        if self.warmup_s < 0:
            raise UsageError(f"warm-up {self.warmup_s}s is negative", hint="e.g. 2s, or 0")
        if self.max_requests is not None and self.max_requests < 1:
            raise UsageError(f"max requests {self.max_requests} is not positive")
        if not self.timeout_s > 0:
            raise UsageError(f"timeout {self.timeout_s}s is not positive", hint="e.g. 10s")

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    def describe(self) -> str:
        load = (
            f"closed loop, {self.concurrency} connections"
            if self.rate is None
            else f"open loop, {self.rate:g} requests/s over up to {self.concurrency} connections"
        )
        bound = f"{self.duration_s:g} s" + (
            f" or {self.max_requests} requests" if self.max_requests else ""
        )
        return f"{load}; {self.warmup_s:g} s warm-up, then {bound}"

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "max_requests": self.max_requests,
            "timeout_s": self.timeout_s,
        }


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    """Seconds from ``"10s"``, ``"500ms"``, ``"2m"`` or a bare number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    found = _DURATION.fullmatch(str(text).strip().lower())
    if found is None:
        raise UsageError(
            f"{what} '{text}' is not a duration", hint="write e.g. 10s, 500ms, 2m or 1.5"
        )
    return float(found["number"]) * _UNITS[found["unit"]]
