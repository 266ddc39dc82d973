"""Canary analysis: each criterion passes and fails on constructed traffic, a canary waits for
enough requests unless it is already failing, PSI measures a shift, and the reservoir keeps a
uniform sample."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from conveyor.config_delivery import RolloutConfig
from conveyor.core.checks import Severity
from conveyor.deploy.analysis import (
    Reservoir,
    TrafficSample,
    Verdict,
    analyse_canary,
    compare_shadow,
    psi,
    row_scores,
)

ROLLOUT = RolloutConfig(
    strategy="canary", min_requests=200, max_error_rate=0.01, max_p99_ms=100, max_shift=0.2
)


def sample(
    requests: int = 300,
    errors: int = 0,
    *,
    latency: float = 10.0,
    shift: float = 0.0,
    seed: int = 0,
) -> TrafficSample:
    """Traffic whose latencies centre on ``latency`` ms and whose scores are probabilities,
    moved ``shift`` standard deviations on the logit scale."""
    rng = np.random.default_rng(seed)
    latencies = latency * rng.lognormal(0.0, 0.2, size=requests)
    scores = 1 / (1 + np.exp(-(rng.normal(shift, 1.0, size=requests))))
    return TrafficSample(requests, errors, latencies, scores)


def by_name(verdict: Verdict) -> dict[str, Any]:
    return {r.name: r for r in verdict.results}


# -- the verdict -----------------------------------------------------------------------------


def test_a_canary_like_the_stable_version_passes_every_criterion() -> None:
    verdict = analyse_canary(sample(seed=1), sample(seed=2), ROLLOUT)
    assert verdict.decision == "pass", verdict.summary
    assert [r.name for r in verdict.results] == [
        "canary.requests",
        "canary.error_rate",
        "canary.p99_ms",
        "canary.p99_ratio",
        "canary.shift",
    ]
    assert all(r.passed and r.kind == "serving" for r in verdict.results)
    assert verdict.summary.startswith("canary passed: error rate 0.0% (0 of 300 requests)")
    assert json.loads(json.dumps(verdict.to_json(), allow_nan=False))["decision"] == "pass"


def test_too_few_requests_is_a_wait_not_a_failure() -> None:
    verdict = analyse_canary(sample(), sample(57, 1), ROLLOUT)
    assert verdict.decision == "wait"
    assert "57 of the 200 requests" in verdict.summary
    requests = by_name(verdict)["canary.requests"]
    assert not requests.passed and requests.severity == Severity.INFO
    # nothing is judged on 57 requests but the error allowance
    assert set(by_name(verdict)) == {"canary.requests", "canary.error_rate"}


def test_a_crashing_canary_fails_before_it_reaches_min_requests() -> None:
    verdict = analyse_canary(sample(), sample(40, 12), ROLLOUT)
    assert verdict.decision == "fail"
    error = by_name(verdict)["canary.error_rate"]
    assert not error.passed and error.severity == Severity.ERROR
    assert error.message == (
        "12 errors in the first 40 requests already exceed the 2 that the 1.0% limit "
        "allows over 200 requests"
    )
    assert error.metrics["allowed_errors"] == 2
    assert verdict.summary.startswith("canary failed: 12 errors in the first 40 requests")


def test_errors_within_the_allowance_still_wait() -> None:
    assert analyse_canary(sample(), sample(40, 2), ROLLOUT).decision == "wait"


def test_a_zero_error_limit_fails_on_the_first_error() -> None:
    strict = ROLLOUT.model_copy(update={"max_error_rate": 0.0})
    assert analyse_canary(sample(), sample(3, 1), strict).decision == "fail"


def test_an_error_rate_above_the_limit_fails_saying_observed_and_allowed() -> None:
    verdict = analyse_canary(sample(), sample(300, 12), ROLLOUT)
    assert verdict.decision == "fail"
    error = by_name(verdict)["canary.error_rate"]
    assert error.message == "error rate 4.0% (12 of 300 requests) is above the limit of 1.0%"
    assert error.metrics["error_rate"] == pytest.approx(0.04)
    assert error.metrics["max_error_rate"] == 0.01


def test_an_error_rate_at_the_limit_passes() -> None:
    verdict = analyse_canary(sample(), sample(300, 3), ROLLOUT)
    assert verdict.decision == "pass"
    assert "is within the limit of 1.0%" in by_name(verdict)["canary.error_rate"].message


def test_a_p99_above_max_p99_ms_fails() -> None:
    verdict = analyse_canary(sample(latency=90), sample(latency=90), ROLLOUT)
    p99 = by_name(verdict)["canary.p99_ms"]
    assert verdict.decision == "fail" and not p99.passed
    assert p99.metrics["p99_ms"] > 100
    assert p99.message.startswith("p99 latency ") and "above the limit of 100.0 ms" in p99.message


def test_without_max_p99_ms_there_is_no_absolute_latency_criterion() -> None:
    loose = ROLLOUT.model_copy(update={"max_p99_ms": None})
    verdict = analyse_canary(sample(latency=900), sample(latency=900), loose)
    assert verdict.decision == "pass"
    assert "canary.p99_ms" not in by_name(verdict)


def test_a_canary_three_times_slower_than_stable_fails_the_ratio() -> None:
    loose = ROLLOUT.model_copy(update={"max_p99_ms": None})
    verdict = analyse_canary(sample(latency=10), sample(latency=30, seed=1), loose)
    ratio = by_name(verdict)["canary.p99_ratio"]
    assert verdict.decision == "fail" and not ratio.passed
    assert 2.5 < ratio.metrics["p99_ratio"] < 3.5
    assert "the stable version's" in ratio.message
    assert ratio.message.endswith("above the limit of 2x")


def test_the_ratio_is_not_judged_until_stable_has_enough_requests() -> None:
    loose = ROLLOUT.model_copy(update={"max_p99_ms": None})
    verdict = analyse_canary(sample(50, latency=1), sample(latency=30), loose)
    ratio = by_name(verdict)["canary.p99_ratio"]
    assert verdict.decision == "pass"
    assert ratio.passed and ratio.severity == Severity.INFO
    assert "stable version has answered 50 requests, fewer than the 200" in ratio.message


def test_sub_millisecond_latencies_do_not_make_a_ratio_out_of_jitter() -> None:
    verdict = analyse_canary(sample(latency=0.1), sample(latency=0.5, seed=1), ROLLOUT)
    assert by_name(verdict)["canary.p99_ratio"].passed


def test_without_max_p99_ratio_there_is_no_ratio_criterion() -> None:
    off = ROLLOUT.model_copy(update={"max_p99_ratio": None})
    assert "canary.p99_ratio" not in by_name(analyse_canary(sample(), sample(), off))


def test_shifted_predictions_fail_the_shift_criterion() -> None:
    verdict = analyse_canary(sample(seed=1), sample(shift=1.0, seed=2), ROLLOUT)
    shift = by_name(verdict)["canary.shift"]
    assert verdict.decision == "fail" and not shift.passed
    assert shift.metrics["psi"] > 0.2
    assert "prediction shift (PSI)" in shift.message
    assert shift.message.endswith("is above the limit of 0.2")


def test_criteria_that_fail_together_are_all_reported() -> None:
    verdict = analyse_canary(sample(seed=1), sample(300, 30, latency=500, shift=2), ROLLOUT)
    failed = {r.name for r in verdict.results if not r.passed}
    assert failed == {"canary.error_rate", "canary.p99_ms", "canary.p99_ratio", "canary.shift"}


# -- PSI -------------------------------------------------------------------------------------


def test_psi_is_zero_for_identical_scores_and_small_for_the_same_distribution() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=20_000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, rng.normal(size=20_000)) < 0.01


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=5000)
    small, large = psi(ref, rng.normal(0.2, 1, 5000)), psi(ref, rng.normal(1.0, 1, 5000))
    assert 0.01 < small < 0.1 < 0.5 < large


def test_psi_handles_discrete_and_constant_scores() -> None:
    labels = np.array([0.0] * 70 + [1.0] * 30)
    assert psi(labels, labels) == pytest.approx(0.0, abs=1e-12)
    flipped = psi(labels, 1 - labels)
    assert math.isfinite(flipped) and flipped > 0.5
    assert psi(np.ones(10), np.ones(10)) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(psi(np.ones(10), np.zeros(0)))


# -- the reservoir ---------------------------------------------------------------------------


def test_the_reservoir_keeps_everything_until_it_is_full_then_its_capacity() -> None:
    r = Reservoir(5, seed=1)
    r.extend([1.0, 2.0, 3.0])
    assert r.to_array().tolist() == [1.0, 2.0, 3.0]
    r.extend(range(100))
    assert len(r) == 5 and r.seen == 103
    assert r.to_array().dtype == np.float64


def test_the_reservoir_is_reproducible_for_a_seed() -> None:
    a, b, c = Reservoir(10, seed=7), Reservoir(10, seed=7), Reservoir(10, seed=8)
    for x in range(1000):
        a.add(x)
        b.add(x)
        c.add(x)
    assert a.to_array().tolist() == b.to_array().tolist() != c.to_array().tolist()


def test_the_reservoir_sample_is_uniform_over_the_stream() -> None:
    # every item of a 100-item stream lands in a 10-slot reservoir with probability 1/10
    trials, counts = 3000, np.zeros(100)
    for seed in range(trials):
        r = Reservoir(10, seed=seed)
        r.extend(range(100))
        counts[r.to_array().astype(int)] += 1
    assert counts.sum() == trials * 10
    assert stats.chisquare(counts).pvalue > 0.001
    # early and late items alike (Algorithm R done wrong favours one end)
    assert abs(counts[:50].sum() - counts[50:].sum()) < 0.05 * counts.sum()


def test_a_reservoir_needs_room() -> None:
    with pytest.raises(ValueError, match="capacity of at least 1"):
        Reservoir(0)


# -- samples and shadow comparison -----------------------------------------------------------


def test_a_traffic_sample_round_trips_through_json() -> None:
    s = TrafficSample(4, 1, np.array([1.0, 2.0, math.inf]), np.array([0.1, math.nan, 0.9]))
    assert s.latencies_ms.tolist() == [1.0, 2.0] and s.scores.tolist() == [0.1, 0.9]
    doc = json.loads(json.dumps(s.to_json(), allow_nan=False))
    back = TrafficSample.from_json(doc)
    assert (back.requests, back.errors, back.error_rate) == (4, 1, 0.25)
    assert back.latencies_ms.tolist() == [1.0, 2.0] and back.scores.tolist() == [0.1, 0.9]


def test_a_traffic_sample_with_more_errors_than_requests_is_refused() -> None:
    with pytest.raises(ValueError, match="3 errors in 2 requests"):
        TrafficSample(2, 3, np.zeros(0), np.zeros(0))


def test_collected_takes_the_reservoirs() -> None:
    latencies, scores = Reservoir(), Reservoir()
    latencies.extend([1.0, 2.0])
    scores.extend(row_scores(np.array([[0.2, 0.8], [0.6, 0.4]])))
    s = TrafficSample.collected(2, 0, latencies, scores)
    assert s.latencies_ms.tolist() == [1.0, 2.0] and s.scores.tolist() == [0.2, 0.6]
    assert row_scores(np.array(["yes", "no"], dtype=object)) is None
    assert row_scores(np.array([1, 0])).tolist() == [1.0, 0.0]


def test_compare_shadow_scores_within_the_tolerance_agree() -> None:
    a = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    b = a + np.array([[0.0, 1e-9], [0.0, 0.0], [0.3, -0.3]])
    agreement, diff = compare_shadow(a, b, tolerance=1e-6)
    assert agreement == pytest.approx(2 / 3) and diff == pytest.approx(0.3)
    assert compare_shadow(a, a, tolerance=0.0) == (1.0, 0.0)


def test_compare_shadow_labels_must_be_equal() -> None:
    assert compare_shadow(np.array([1, 0, 1, 1]), np.array([1, 1, 1, 1]), 0.5)[0] == 0.75
    text = np.array(["yes", "no"], dtype=object)
    agreement, diff = compare_shadow(text, np.array(["yes", "yes"], dtype=object), 0.0)
    assert agreement == 0.5 and math.isnan(diff)


def test_compare_shadow_outputs_of_another_shape_never_agree() -> None:
    agreement, diff = compare_shadow(np.zeros((3, 2)), np.zeros((3, 3)), 1.0)
    assert agreement == 0.0 and math.isnan(diff)
    with pytest.raises(ValueError, match="3 rows with 2"):
        compare_shadow(np.zeros(3), np.zeros(2), 1.0)


def test_compare_shadow_nan_agrees_only_with_nan() -> None:
    a, b = np.array([math.nan, math.nan, 1.0]), np.array([math.nan, 1.0, 1.0])
    assert compare_shadow(a, b, 1e-6) == (pytest.approx(2 / 3), 0.0)


def test_psi_of_a_slightly_more_confident_classifier_is_small() -> None:
    """Probabilities piled up near 0 (a boosted model's): a retrained model a little more
    confident shifts every score by a hair. Quantile bins a hair apart would call that a
    large shift; the equal-width bins for probabilities do not."""
    rng = np.random.default_rng(3)
    stable = rng.beta(0.4, 9.0, size=2000)
    retrained = np.clip(stable * 0.93 + rng.normal(0, 0.002, size=2000), 0.0, 1.0)
    assert psi(stable, retrained) < 0.05
    inverted = 1.0 - stable  # a model that learned the opposite
    assert psi(stable, inverted) > 1.0
