"""A whole load test: the generator's ceiling, the measured load, and the verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.core.checks import CheckResult, blocking_failures
from conveyor.loadtest.client import Endpoint
from conveyor.loadtest.closed import run_closed
from conveyor.loadtest.noop import noop_server, server_cpus
from conveyor.loadtest.open_loop import run_open
from conveyor.loadtest.payloads import Payload
from conveyor.loadtest.shape import LoadShape
from conveyor.loadtest.slo import Slo, evaluate, generator_check, schedule_check
from conveyor.loadtest.stats import Measurement

CEILING_WARMUP_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReport:
    """What a load test did, measured and decided."""

    target: str  # as the user named it: a URL or NAME:VERSION
    url: str
    shape: LoadShape
    payload: Payload
    slo: Slo
    measurement: Measurement
    ceiling: Measurement | None
    checks: list[CheckResult] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def passed(self) -> bool:
        """No blocking (error-severity) check failed; warnings do not fail the gate."""
        return not blocking_failures(self.checks)

    @property
    def ceiling_share(self) -> float | None:
        if self.ceiling is None or self.ceiling.qps <= 0:
            return None
        return self.measurement.qps / self.ceiling.qps

    def to_json(self) -> dict[str, Any]:
        share = self.ceiling_share
        return {
            "format": "conveyor.loadtest/1",
            "target": self.target,
            "url": self.url,
            "started_at": self.started_at.isoformat(),
            "passed": self.passed,
            "shape": self.shape.to_json(),
            "payload": self.payload.to_json(),
            "slo": self.slo.to_json(),
            "result": self.measurement.to_json(),
            "ceiling": self.ceiling.to_json() if self.ceiling else None,
            "ceiling_share": share,
            "checks": [c.to_json() for c in self.checks],
        }


def measure(endpoint: Endpoint, requests: Sequence[bytes], shape: LoadShape) -> Measurement:
    """One warm-up and measured window against ``endpoint`` (blocking; own event loop)."""
    runner = run_closed if shape.rate is None else run_open
    return asyncio.run(runner(endpoint, requests, shape))


def measure_ceiling(
    requests: Sequence[bytes], shape: LoadShape, duration_s: float, path: str = "/invocations"
) -> Measurement:
    """The generator's throughput against the no-op endpoint, in a closed loop over as many
    connections as the test uses: the most this process can send with this payload."""
    probe = LoadShape(
        concurrency=shape.concurrency,
        duration_s=duration_s,
        warmup_s=CEILING_WARMUP_S,
        timeout_s=shape.timeout_s,
    )
    with noop_server(cpus=server_cpus()) as port:
        return measure(Endpoint(host="127.0.0.1", port=port, path=path), requests, probe)


def run_loadtest(
    endpoint: Endpoint,
    payload: Payload,
    shape: LoadShape,
    *,
    target: str | None = None,
    slo: Slo | None = None,
    ceiling_s: float | None = 2.0,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Measure the generator's ceiling (unless ``ceiling_s`` is None), then load
    ``endpoint``; evaluate ``slo`` on what the measured window saw."""
    say = progress or (lambda _: None)
    slo = slo or Slo()
    started = datetime.now(UTC)
    ceiling = None
    if ceiling_s:
        say(f"measuring the generator's ceiling against a no-op endpoint for {ceiling_s:g} s")
        ceiling = measure_ceiling(payload.requests, shape, ceiling_s, endpoint.path)
        say(f"generator ceiling {ceiling.qps:,.0f} requests/s at {ceiling.connections} connections")
    say(f"loading {endpoint.url}: {shape.describe()}")
    m = measure(endpoint, payload.requests, shape)
    checks = evaluate(slo, m)
    checks += [c for c in (generator_check(m, ceiling), schedule_check(m)) if c is not None]
    return LoadReport(
        target=target or endpoint.url,
        url=endpoint.url,
        shape=shape,
        payload=payload,
        slo=slo,
        measurement=m,
        ceiling=ceiling,
        checks=checks,
        started_at=started,
    )
