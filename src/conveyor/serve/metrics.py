"""``/metrics`` in Prometheus' text format, through prometheus_client.

Each service has its own registry. With ``--workers N`` the workers are separate processes:
:func:`conveyor.serve.run.serve` then sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers
start, every worker writes its values there, and whichever worker answers a scrape reports
the sum over all workers (in-flight as the sum over live workers, the model info gauge as the
maximum). Without it, a scrape would see one random worker's counters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

ROUTES = (
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/infer",
    "/invocations",
    "/ping",
    "/health",
    "/metrics",
    "/openapi.json",
    "other",
)
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
REQUEST_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """The service's counters, gauges and histograms (names start ``conveyor_serve_``)."""

    def __init__(self, model: str, version: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        reg: Any = None if self.multiprocess_dir else self.registry
        self.requests = Counter(
            "conveyor_serve_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "code"],
            registry=reg,
        )
        self.latency = Histogram(
            "conveyor_serve_request_duration_seconds",
            "Time from a request's arrival to its response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "conveyor_serve_requests_in_flight",
            "Prediction requests admitted and not yet answered.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "conveyor_serve_model_info",
            "The model version this service serves (always 1).",
            ["model", "version"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.model_info.labels(model, version).set(1)
        self.model_seconds = Histogram(
            "conveyor_serve_model_call_duration_seconds",
            "Time of one call of the model (one batch).",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_rows = Histogram(
            "conveyor_serve_batch_rows",
            "Rows per model call.",
            buckets=ROW_BUCKETS,
            registry=reg,
        )
        self.batch_requests = Histogram(
            "conveyor_serve_batch_requests",
            "Requests answered by one model call (above 1 only with micro-batching).",
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.predicted_rows = Counter(
            "conveyor_serve_predicted_rows",
            "Rows predicted.",
            registry=reg,
        )
        self.log_rows = Counter(
            "conveyor_serve_prediction_log_rows",
            "Prediction log rows, by outcome: written, dropped (the queue was full) or "
            "failed (the store refused them; retried while the queue has room).",
            ["outcome"],
            registry=reg,
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def count_in_flight(self, count: Callable[[], float]) -> bool:
        """Report the requests in flight by calling ``count`` at scrape time, instead of an
        increment and a decrement per request. Not in multiprocess mode, where each worker's
        own increments are summed (returns False: the caller keeps incrementing)."""
        if self.multiprocess_dir is not None:
            return False
        self.in_flight.set_function(count)
        return True

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        children = self._children.get((route, code))
        if children is None:
            children = (self.requests.labels(route, str(code)), self.latency.labels(route))
            self._children[(route, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_model_call(self, rows: int, requests: int, seconds: float) -> None:
        self.model_seconds.observe(seconds)
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)
        self.predicted_rows.inc(rows)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (in-flight) in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
