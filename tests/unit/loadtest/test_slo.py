from __future__ import annotations

import math

import pytest

from conveyor.core.checks import Severity, blocking_failures
from conveyor.errors import ConfigError
from conveyor.loadtest.slo import (
    Slo,
    evaluate,
    generator_check,
    schedule_check,
    slo_from_mapping,
)
from conveyor.loadtest.stats import Latency, Measurement, Schedule


def measured(
    *,
    ok: int = 1000,
    statuses: dict[int, int] | None = None,
    failures: dict[str, int] | None = None,
    p99_ms: float = 20.0,
    elapsed_s: float = 1.0,
    schedule: Schedule | None = None,
) -> Measurement:
    statuses = statuses if statuses is not None else {200: ok}
    failures = failures or {}
    responses = sum(statuses.values())
    return Measurement(
        url="http://127.0.0.1:1/invocations",
        mode="closed" if schedule is None else "open",
        connections=8,
        elapsed_s=elapsed_s,
        requests=responses + sum(failures.values()),
        responses=responses,
        ok=sum(n for s, n in statuses.items() if 200 <= s < 300),
        latency=Latency(
            count=responses, mean_ms=5.0, p50_ms=4.0, p90_ms=9.0, p99_ms=p99_ms, max_ms=80.0
        ),
        statuses=statuses,
        failures=failures,
        schedule=schedule,
    )


def by_name(results: list) -> dict:  # type: ignore[type-arg]
    return {r.name: r for r in results}


def test_every_bound_met_passes_as_serving_checks() -> None:
    results = evaluate(Slo(min_qps=900, max_p99_ms=25, max_error_rate=0.01), measured())
    assert [r.name for r in results] == ["load.min_qps", "load.max_p99_ms", "load.max_error_rate"]
    assert all(r.passed and r.kind == "serving" and r.severity == Severity.ERROR for r in results)
    assert not blocking_failures(results)


def test_each_bound_fails_on_its_own_with_the_figures() -> None:
    m = measured(statuses={200: 900, 500: 80, 503: 20}, failures={"timeout": 5}, p99_ms=40.0)
    results = by_name(evaluate(Slo(min_qps=950, max_p99_ms=25, max_error_rate=0.01), m))
    assert not results["load.min_qps"].passed
    assert results["load.min_qps"].metrics["ok_qps"] == pytest.approx(900.0)
    assert not results["load.max_p99_ms"].passed
    assert "40.00 ms > 25 ms" in results["load.max_p99_ms"].message
    err = results["load.max_error_rate"]
    assert not err.passed
    assert err.metrics["error_rate"] == pytest.approx(105 / 1005)
    assert err.details["errors"] == {"500": 80, "503": 20, "timeout": 5}
    assert "500: 80" in err.message
    assert len(blocking_failures(list(results.values()))) == 3


def test_min_qps_counts_successful_responses_only() -> None:
    fast_errors = measured(statuses={200: 100, 503: 5000})
    (check,) = evaluate(Slo(min_qps=1000), fast_errors)
    assert not check.passed


def test_no_response_fails_p99_and_error_rate() -> None:
    m = measured(statuses={}, failures={}, p99_ms=math.nan)
    results = by_name(evaluate(Slo(max_p99_ms=10, max_error_rate=0.5), m))
    assert not results["load.max_p99_ms"].passed
    assert "no response" in results["load.max_p99_ms"].message
    assert not results["load.max_error_rate"].passed


def test_an_empty_objective_evaluates_to_nothing() -> None:
    assert Slo().empty
    assert evaluate(Slo(), measured()) == []


def test_slo_from_the_project_file_shape_and_flags_over_it() -> None:
    from_file = slo_from_mapping(
        {"min_qps": 1000, "max_p99_ms": 25, "max_error_rate": 0.001}, "conveyor.yaml: load.slo"
    )
    assert from_file == Slo(min_qps=1000, max_p99_ms=25, max_error_rate=0.001)
    assert from_file.merged(Slo(max_p99_ms=50)) == Slo(
        min_qps=1000, max_p99_ms=50, max_error_rate=0.001
    )
    assert slo_from_mapping(None, "x") == Slo()


@pytest.mark.parametrize(
    ("doc", "key"),
    [({"max_error_rate": 2}, "max_error_rate"), ({"min_qbs": 5}, "min_qbs")],
)
def test_a_malformed_slo_names_the_file_and_key(doc: dict[str, float], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        slo_from_mapping(doc, "conveyor.yaml: environments[0].load.slo")
    assert f"conveyor.yaml: environments[0].load.slo.{key}" in err.value.message
    assert "max_p99_ms" in (err.value.hint or "")


def test_generator_headroom_warns_above_half_of_the_ceiling() -> None:
    ceiling = measured(ok=10_000)
    assert generator_check(measured(ok=4000), ceiling).passed  # type: ignore[union-attr]
    near = generator_check(measured(ok=6000), ceiling)
    assert near is not None and not near.passed and near.severity == Severity.WARNING
    assert "bottleneck" in near.message
    assert not blocking_failures([near])
    assert generator_check(measured(), None) is None


def test_schedule_warns_when_requests_were_dropped_or_late() -> None:
    on_time = Schedule(
        rate=100, scheduled=100, late=0, dropped=0, late_after_ms=10, max_send_lag_ms=1
    )
    behind = Schedule(
        rate=100, scheduled=100, late=40, dropped=3, late_after_ms=10, max_send_lag_ms=900
    )
    assert schedule_check(measured(schedule=on_time)).passed  # type: ignore[union-attr]
    check = schedule_check(measured(schedule=behind))
    assert check is not None and not check.passed and check.severity == Severity.WARNING
    assert "40 of 100 requests late" in check.message and "3 dropped" in check.message
    assert schedule_check(measured()) is None
