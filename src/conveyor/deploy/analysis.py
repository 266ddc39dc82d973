"""Canary analysis: is the canary version serving as well as the stable one?

While a canary step runs, the serving process counts each version's requests and errors and
keeps a bounded, uniform sample (:class:`Reservoir`) of its latencies and scores (the first
output column of each predicted row). :func:`analyse_canary` judges the two samples by the
environment's ``rollout:`` settings, one :class:`CheckResult` per criterion:

- ``canary.requests``: the canary has answered ``min_requests``; until then the verdict is
  ``wait``, unless the errors already exceed what ``max_error_rate`` allows over
  ``min_requests`` requests, which fails at once so a crashing canary is rolled back without
  waiting for traffic it would fail;
- ``canary.error_rate``: errors (5xx and model failures) per request, at most ``max_error_rate``;
- ``canary.p99_ms``: the canary's p99 latency, at most ``max_p99_ms`` (when set);
- ``canary.p99_ratio``: its p99 over the stable version's, at most ``max_p99_ratio`` (when set,
  and judged only once the stable version has answered ``min_requests`` too);
- ``canary.shift``: the population stability index (PSI) of the canary's scores against the
  stable version's, over ten bins cut at the stable scores' deciles, at most ``max_shift``.

:func:`compare_shadow` is live shadow mode's comparison of two versions' outputs row by row.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from conveyor.config_delivery import RolloutConfig
from conveyor.core.checks import CheckResult, Severity, blocking_failures

FloatArray = npt.NDArray[np.float64]
Decision = Literal["wait", "pass", "fail"]
KIND = "serving"
PSI_BINS = 10
PSI_EPSILON = 1e-4  # the smallest share a bin counts as, so an empty bin does not give log(0)
# A stable p99 under 1 ms counts as 1 ms in the ratio: below that the event loop's own jitter
# would make a ratio of 2 or 3 out of nothing.
RATIO_FLOOR_MS = 1.0


class Reservoir:
    """A uniform random sample of at most ``capacity`` values from a stream of unknown length
    (Vitter's Algorithm R): every value seen so far is in the sample with the same probability.

    ``add`` is O(1) and takes no lock: it is meant for one asyncio event loop."""

    __slots__ = ("_random", "_values", "capacity", "seen")

    def __init__(self, capacity: int = 10_000, *, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"a reservoir needs a capacity of at least 1, not {capacity}")
        self.capacity = capacity
        self.seen = 0
        self._random = random.Random(seed)  # noqa: S311 (sampling, not secrets)
        self._values: list[float] = []

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self._values) < self.capacity:
            self._values.append(value)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.capacity:
            self._values[slot] = value

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self._values)

    def to_array(self) -> FloatArray:
        return np.array(self._values, dtype=np.float64)


def percentile(values: FloatArray, q: float) -> float:
    """The ``q``-th percentile of ``values``, NaN when there are none."""
    return float(np.percentile(values, q)) if len(values) else math.nan


def row_scores(outputs: npt.NDArray[Any]) -> FloatArray | None:
    """One score per row for a reservoir: a numeric output itself, or the first column of a
    2-D output (None for text labels, which have no distribution to compare)."""
    if outputs.dtype.kind not in "biuf" or outputs.ndim == 0:
        return None
    first = outputs if outputs.ndim == 1 else outputs.reshape(len(outputs), -1)[:, 0]
    return first.astype(np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class TrafficSample:
    """What the serving process collected for one version since a canary step began."""

    requests: int
    errors: int  # 5xx and model failures
    latencies_ms: FloatArray  # a bounded reservoir of request latencies
    scores: FloatArray  # a bounded reservoir of the model's first output column

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise ValueError(
                f"a traffic sample needs 0 <= errors <= requests, got {self.errors} errors "
                f"in {self.requests} requests"
            )
        for name in ("latencies_ms", "scores"):
            values = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            object.__setattr__(self, name, values[np.isfinite(values)])

    @classmethod
    def collected(
        cls, requests: int, errors: int, latencies: Reservoir, scores: Reservoir
    ) -> TrafficSample:
        return cls(requests, errors, latencies.to_array(), scores.to_array())

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TrafficSample:
        return cls(
            requests=int(doc["requests"]),
            errors=int(doc["errors"]),
            latencies_ms=np.asarray(doc.get("latencies_ms", []), dtype=np.float64),
            scores=np.asarray(doc.get("scores", []), dtype=np.float64),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latencies_ms": self.latencies_ms.tolist(),
            "scores": self.scores.tolist(),
        }

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one analysis: ``wait`` for more traffic, ``pass`` the step, or ``fail``
    it (roll back). ``results`` holds one check per criterion, judged or not."""

    decision: Decision
    results: list[CheckResult]
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "summary": self.summary,
            "results": [r.to_json() for r in self.results],
        }


def psi(reference: FloatArray, current: FloatArray, bins: int = PSI_BINS) -> float:
    """The population stability index of ``current`` against ``reference``, each bin's share
    floored at ``PSI_EPSILON``. About 0 for the same distribution; 0.1 is a small shift,
    above 0.25 a large one.

    Probabilities (every value in [0, 1]) fall in ``bins`` equal-width bins: a classifier's
    scores pile up near 0 or 1, where quantile edges would sit a hair apart and a slightly more
    confident model would land wholly in one bin. Other outputs use the reference's quantiles
    (ties merged)."""
    if not len(reference) or not len(current):
        return math.nan
    low = min(float(reference.min()), float(current.min()))
    high = max(float(reference.max()), float(current.max()))
    if low >= 0.0 and high <= 1.0:
        edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    else:
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    p = np.maximum(ref / len(reference), PSI_EPSILON)
    q = np.maximum(cur / len(current), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def analyse_canary(stable: TrafficSample, canary: TrafficSample, rollout: RolloutConfig) -> Verdict:
    """Judge a canary step: ``fail`` when any criterion fails, ``wait`` until the canary has
    answered ``rollout.min_requests``, then ``pass``."""
    enough = canary.requests >= rollout.min_requests
    results = [_requests(canary, rollout), _error_rate(canary, rollout)]
    if enough:
        if rollout.max_p99_ms is not None:
            results.append(_p99(canary, rollout.max_p99_ms))
        if rollout.max_p99_ratio is not None:
            results.append(_p99_ratio(stable, canary, rollout, rollout.max_p99_ratio))
        results.append(_shift(stable, canary, rollout))
    failed = blocking_failures(results)
    if failed:
        decision: Decision = "fail"
        summary = "canary failed: " + "; ".join(r.message for r in failed)
    elif not enough:
        decision, summary = "wait", f"waiting: {results[0].message}"
    else:
        decision = "pass"
        summary = "canary passed: " + "; ".join(r.message for r in results[1:])
    return Verdict(decision, results, summary)


def _requests(canary: TrafficSample, rollout: RolloutConfig) -> CheckResult:
    need, got = rollout.min_requests, canary.requests
    return CheckResult(
        name="canary.requests",
        kind=KIND,
        passed=got >= need,
        severity=Severity.ERROR if got >= need else Severity.INFO,  # too few is a wait
        metrics={"requests": float(got), "min_requests": float(need)},
        message=f"the canary has answered {got:,} of the {need:,} requests it needs"
        if got < need
        else f"the canary has answered {got:,} requests (at least {need:,} needed)",
    )


def _error_rate(canary: TrafficSample, rollout: RolloutConfig) -> CheckResult:
    limit, need = rollout.max_error_rate, rollout.min_requests
    rate, errors, requests = canary.error_rate, canary.errors, canary.requests
    observed = f"error rate {_pct(rate)} ({errors:,} of {requests:,} requests)"
    metrics = {"error_rate": rate, "errors": float(errors), "max_error_rate": limit}
    if requests < need:
        # Integer arithmetic would be exact, but the limit is a float: floor with a nudge so
        # that 1% of 200 allows 2 errors, not 1.
        allowed = math.floor(limit * need + 1e-9)
        passed = errors <= allowed
        message = (
            f"{errors:,} errors in the first {requests:,} requests already exceed the "
            f"{allowed:,} that the {_pct(limit)} limit allows over {need:,} requests"
            if not passed
            else f"{observed} so far; at most {allowed:,} errors are allowed over {need:,} requests"
        )
        return CheckResult(
            name="canary.error_rate",
            kind=KIND,
            passed=passed,
            severity=Severity.ERROR if not passed else Severity.INFO,
            metrics={**metrics, "allowed_errors": float(allowed)},
            message=message,
        )
    passed = rate <= limit
    where = "within" if passed else "above"
    return CheckResult(
        name="canary.error_rate",
        kind=KIND,
        passed=passed,
        metrics=metrics,
        message=f"{observed} is {where} the limit of {_pct(limit)}",
    )


def _p99(canary: TrafficSample, limit: float) -> CheckResult:
    p99 = canary.p99_ms
    if math.isnan(p99):
        return _unjudged("canary.p99_ms", "no canary latency was recorded", Severity.WARNING)
    passed = p99 <= limit
    return CheckResult(
        name="canary.p99_ms",
        kind=KIND,
        passed=passed,
        metrics={"p99_ms": p99, "max_p99_ms": limit},
        message=f"p99 latency {_ms(p99)} is {'within' if passed else 'above'} the limit of "
        f"{_ms(limit)}",
    )


def _p99_ratio(
    stable: TrafficSample, canary: TrafficSample, rollout: RolloutConfig, limit: float
) -> CheckResult:
    if stable.requests < rollout.min_requests or not len(stable.latencies_ms):
        return _unjudged(
            "canary.p99_ratio",
            f"p99 ratio not judged: the stable version has answered {stable.requests:,} "
            f"requests, fewer than the {rollout.min_requests:,} needed to compare with",
        )
    if not len(canary.latencies_ms):
        return _unjudged("canary.p99_ratio", "no canary latency was recorded", Severity.WARNING)
    ours, theirs = canary.p99_ms, stable.p99_ms
    ratio = ours / max(theirs, RATIO_FLOOR_MS)
    passed = ratio <= limit
    return CheckResult(
        name="canary.p99_ratio",
        kind=KIND,
        passed=passed,
        metrics={
            "p99_ratio": ratio,
            "max_p99_ratio": limit,
            "p99_ms": ours,
            "stable_p99_ms": theirs,
        },
        message=f"p99 latency {_ms(ours)} is {ratio:.2f}x the stable version's {_ms(theirs)}, "
        f"{'within' if passed else 'above'} the limit of {limit:g}x",
    )


def _shift(stable: TrafficSample, canary: TrafficSample, rollout: RolloutConfig) -> CheckResult:
    if stable.requests < rollout.min_requests or not len(stable.scores):
        return _unjudged(
            "canary.shift",
            f"prediction shift not judged: the stable version has answered {stable.requests:,} "
            f"requests, fewer than the {rollout.min_requests:,} needed to compare with",
        )
    if not len(canary.scores):
        return _unjudged("canary.shift", "no canary score was recorded", Severity.WARNING)
    value, limit = psi(stable.scores, canary.scores), rollout.max_shift
    passed = value <= limit
    return CheckResult(
        name="canary.shift",
        kind=KIND,
        passed=passed,
        metrics={"psi": value, "max_shift": limit},
        message=f"prediction shift (PSI) {value:.3f} against the stable version is "
        f"{'within' if passed else 'above'} the limit of {limit:g}",
        details={"scores": len(canary.scores), "stable_scores": len(stable.scores)},
    )


def _unjudged(name: str, message: str, severity: Severity = Severity.INFO) -> CheckResult:
    """A criterion that could not be judged: recorded, never blocking by itself (an INFO pass,
    or a WARNING failure when data that should be there is missing)."""
    return CheckResult(
        name=name,
        kind=KIND,
        passed=severity == Severity.INFO,
        severity=severity,
        message=message,
    )


def compare_shadow(
    stable: npt.NDArray[Any], shadow: npt.NDArray[Any], tolerance: float
) -> tuple[float, float]:
    """(agreement, max_abs_diff) of two versions' outputs for the same rows. A row agrees
    when every output agrees: scores (either side floating point) within ``tolerance``,
    labels (integers, booleans, text) exactly. ``max_abs_diff`` is the largest numeric
    difference (a NaN against a number disagrees and is left out of it), NaN for text labels
    or outputs of different widths (which never agree)."""
    if len(stable) != len(shadow):
        raise ValueError(f"cannot compare {len(stable)} rows with {len(shadow)}")
    rows = len(stable)
    if rows == 0:
        return 1.0, 0.0
    a, b = stable.reshape(rows, -1), shadow.reshape(rows, -1)
    if a.shape != b.shape:
        return 0.0, math.nan
    numeric = a.dtype.kind in "biuf" and b.dtype.kind in "biuf"
    if not numeric:
        same = np.array([np.array_equal(x, y) for x, y in zip(a, b, strict=True)])
        return float(same.mean()), math.nan
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    both_nan = np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64))
    diff = np.where(both_nan, 0.0, diff)
    scores = a.dtype.kind == "f" or b.dtype.kind == "f"
    limit = tolerance if scores else 0.0
    agree = np.all(diff <= limit, axis=1)  # NaN against a number never agrees
    finite = diff[np.isfinite(diff)]
    return float(agree.mean()), float(finite.max()) if len(finite) else 0.0


def _pct(x: float) -> str:
    return f"{x:.2%}" if 0 < x < 0.001 else f"{x:.1%}"


def _ms(x: float) -> str:
    return f"{x:,.2f} ms" if x < 10 else f"{x:,.1f} ms"
