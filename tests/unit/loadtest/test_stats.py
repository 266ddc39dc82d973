from __future__ import annotations

import math

import pytest

from conveyor.loadtest.stats import Latency, Measurement, Recorder, percentile


def test_nearest_rank_percentiles_of_one_to_a_hundred() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (0, 1, 50, 90, 99, 100)] == [1, 1, 50, 90, 99, 100]


def test_percentile_is_a_value_that_was_measured() -> None:
    values = [0.001, 0.002, 0.010]
    assert percentile(values, 50) == 0.002
    assert percentile(values, 99) == 0.010
    assert percentile([0.5], 90) == 0.5


def test_percentile_of_nothing_is_nan_and_a_bad_rank_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_latency_summary_in_milliseconds_is_ordered() -> None:
    seconds = [0.001] * 90 + [0.005] * 9 + [0.100]
    lat = Latency.of(seconds)
    assert lat.count == 100
    assert lat.p50_ms == pytest.approx(1.0)
    assert lat.p90_ms == pytest.approx(1.0)
    assert lat.p99_ms == pytest.approx(5.0)
    assert lat.max_ms == pytest.approx(100.0)
    assert lat.mean_ms == pytest.approx((0.09 + 0.045 + 0.1) / 100 * 1000)


def test_latency_of_no_response_has_nan_figures_and_null_json() -> None:
    lat = Latency.of([])
    assert lat.count == 0 and math.isnan(lat.p99_ms)
    assert lat.to_json()["p99_ms"] is None


def test_measurement_counts_statuses_failures_and_error_rate() -> None:
    rec = Recorder()
    for i in range(90):
        rec.response(10.0 + i * 0.01, 10.0 + i * 0.01 + 0.002, 200)
    for _ in range(6):
        rec.response(11.0, 11.001, 500)
    rec.response(11.0, 11.001, 429)
    rec.failure(11.5, "timeout")
    rec.failure(11.5, "timeout")
    rec.failure(12.0, "connection reset")
    m = Measurement.of(rec, url="http://h:1/x", mode="closed", connections=4, started=10.0)
    assert m.requests == 100
    assert m.responses == 97
    assert m.ok == 90
    assert m.error_rate == pytest.approx(0.10)
    assert m.errors == {"429": 1, "500": 6, "connection reset": 1, "timeout": 2}
    assert m.elapsed_s == pytest.approx(2.0)
    assert m.qps == pytest.approx(97 / 2.0)
    assert m.ok_qps == pytest.approx(90 / 2.0)
    doc = m.to_json()
    assert doc["statuses"] == {"200": 90, "429": 1, "500": 6}
    assert doc["failures"] == {"connection reset": 1, "timeout": 2}


def test_an_empty_measurement_has_no_rate_and_no_errors() -> None:
    m = Measurement.of(Recorder(), url="u", mode="open", connections=1, started=5.0)
    assert m.requests == 0 and m.qps == 0.0 and m.error_rate == 0.0 and m.errors == {}
