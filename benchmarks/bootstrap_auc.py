"""Paired bootstrap of ROC AUC: Conveyor's vectorised bootstrap against a naive sklearn loop.

What it measures
    The champion/challenger comparison of the model gate: 1,000 paired bootstrap resamples
    of ROC AUC for two models scored on the same 100,000 evaluation rows (30% positives,
    continuous scores), i.e. ``paired_bootstrap(auc_stat(...), auc_stat(...), n)`` from
    ``conveyor.checks.bootstrap``. The time includes drawing the resample indices, turning
    them into counts, and both models' AUC on every resample; it excludes making the data.
    The median of the repetitions is compared with the target.

    Side by side, the naive way: for each resample, index the rows and call
    ``sklearn.metrics.roc_auc_score`` for each model. It is run on the first few resamples
    of the *same* index stream (``resample_indices``) and its time is extrapolated to 1,000
    resamples, giving the speed ratio.

    Agreement: on those resamples, the per-resample AUC values of both methods must agree to
    1e-9, on the continuous scores and on a copy rounded to 2 decimals (many ties).

Target
    1,000 paired resamples of ROC AUC on 100,000 rows in at most 5 s on a 2-CPU machine.

How to run (from the repository root)
    .venv/bin/python benchmarks/bootstrap_auc.py            # 5 repetitions, naive on 40
    .venv/bin/python benchmarks/bootstrap_auc.py --quick    # 1 repetition, naive on 10
    .venv/bin/python benchmarks/bootstrap_auc.py --profile  # also cProfile one run
Options: --rows N, --resamples B, --repeat N, --naive B (resamples of the naive loop).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from conveyor.checks.bootstrap import (
    auc_stat,
    paired_bootstrap,
    resample_counts,
    resample_indices,
    resampled_values,
)

TARGET_S = 5.0
TOLERANCE = 1e-9
SEED = 7


def make_data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' probabilities; the challenger is slightly better."""
    rng = np.random.default_rng(20240601)
    y = (rng.random(n) < 0.3).astype(np.int64)
    latent = rng.normal(size=n) + 1.2 * y
    champion = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.8, n))))
    challenger = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.7, n))))
    return y, champion, challenger


def conveyor_run(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int) -> float:
    """Seconds for one paired bootstrap, stats built inside the clock (one sort per model)."""
    t0 = time.perf_counter()
    result = paired_bootstrap(
        auc_stat(y == 1, a), auc_stat(y == 1, b), y.size, resamples=resamples, seed=SEED
    )
    elapsed = time.perf_counter() - t0
    assert result.interval is not None
    return elapsed


def counts_only(n: int, resamples: int) -> float:
    """Seconds to draw the indices and count them (the part shared by both models)."""
    t0 = time.perf_counter()
    for _ in resample_counts(n, resamples, SEED):
        pass
    return time.perf_counter() - t0


def naive_run(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int) -> tuple[float, list]:
    """Seconds and per-resample (AUC a, AUC b) of the sklearn loop on the same resamples."""
    values = []
    t0 = time.perf_counter()
    for rows in resample_indices(y.size, resamples, SEED):
        values.append((roc_auc_score(y[rows], a[rows]), roc_auc_score(y[rows], b[rows])))
    return time.perf_counter() - t0, values


def agreement(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int) -> float:
    """Largest |vectorised - sklearn| over both models and the first ``resamples``."""
    ours = resampled_values(
        [auc_stat(y == 1, a), auc_stat(y == 1, b)], y.size, resamples=resamples, seed=SEED
    )
    _, theirs = naive_run(y, a, b, resamples)
    return float(np.abs(ours.T - np.array(theirs)).max())


def profile_run(y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    paired_bootstrap(auc_stat(y == 1, a), auc_stat(y == 1, b), y.size, resamples=resamples)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    text = out.getvalue()
    start = text.find("   ncalls")
    print("\n--- cProfile: one paired bootstrap, top 12 by own time ---")
    print(text[start:].rstrip() if start >= 0 else text.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, naive loop on 10")
    parser.add_argument("--rows", type=int, default=100_000, help="evaluation rows (100000)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (1000)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (5)")
    parser.add_argument("--naive", type=int, default=None, help="resamples of the naive loop")
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 5)
    naive_b = args.naive or (10 if args.quick else 40)
    n, resamples = args.rows, args.resamples

    y, champion, challenger = make_data(n)
    print(f"Paired bootstrap of ROC AUC: {resamples} resamples x 2 models on {n} rows")
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}; "
        f"load average {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)"
    )
    conveyor_run(y[:2000], champion[:2000], challenger[:2000], 20)  # warm up

    times = [conveyor_run(y, champion, challenger, resamples) for _ in range(repeat)]
    shared = counts_only(n, resamples)
    naive_s, _ = naive_run(y, champion, challenger, naive_b)
    naive_total = naive_s / naive_b * resamples
    median = statistics.median(times)

    print()
    print(f"conveyor, vectorised    median {median:7.2f} s   (min {min(times):.2f}, n={repeat})")
    print(f"  of which indices + counts     {shared:7.2f} s   (shared by both models)")
    print(
        f"naive sklearn loop      {naive_total:7.2f} s   "
        f"(extrapolated from {naive_b} resamples: {naive_s:.2f} s)"
    )
    print(f"speed-up                {naive_total / median:7.1f} x")

    continuous = agreement(y, champion, challenger, min(naive_b, 10))
    tied = agreement(y, np.round(champion, 2), np.round(challenger, 2), min(naive_b, 10))
    worst = max(continuous, tied)
    print()
    print(
        f"agreement with sklearn on the same resamples: max |diff| {continuous:.2e} "
        f"(continuous), {tied:.2e} (rounded, with ties)  "
        f"{'OK' if worst <= TOLERANCE else 'MISMATCH'} (tolerance {TOLERANCE:g})"
    )
    verdict = "MET" if median <= TARGET_S else "MISSED"
    print(f"target: {resamples} paired resamples on {n} rows <= {TARGET_S:g} s: {verdict}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.profile:
        profile_run(y, champion, challenger, resamples)
    if worst > TOLERANCE:
        raise SystemExit("vectorised AUC disagrees with sklearn")


if __name__ == "__main__":
    main()
