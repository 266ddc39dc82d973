"""Load tests of a prediction service: a gate on throughput, latency and errors.

``conveyor loadtest TARGET`` is a thin shell over :func:`run_loadtest`: a closed loop at a
fixed concurrency or an open loop at a fixed rate, from a minimal keep-alive HTTP/1.1 client,
with the generator's own ceiling measured against a no-op endpoint alongside.
"""

from __future__ import annotations

from conveyor.loadtest.client import Endpoint
from conveyor.loadtest.payloads import Payload, Rows, build_payload
from conveyor.loadtest.run import LoadReport, measure, measure_ceiling, run_loadtest
from conveyor.loadtest.shape import LoadShape, parse_duration
from conveyor.loadtest.slo import Slo, evaluate, slo_from_mapping
from conveyor.loadtest.stats import Latency, Measurement, percentile

__all__ = [
    "Endpoint",
    "Latency",
    "LoadReport",
    "LoadShape",
    "Measurement",
    "Payload",
    "Rows",
    "Slo",
    "build_payload",
    "evaluate",
    "measure",
    "measure_ceiling",
    "parse_duration",
    "percentile",
    "run_loadtest",
    "slo_from_mapping",
]
