"""Data validation speed: ``validate(data, schema)`` on 1,000,000 rows x 50 columns.

What it measures
    A DataFrame of 1,000,000 rows and 50 columns, as a training set would look after reading
    it from Parquet:

    * 30 float64 columns, normal, 1% NaN;
    * 10 int64 columns, uniform in [0, 1000);
    * 10 text columns (pandas' string dtype) drawn from 20 categories, 2% null.

    The schema is inferred from it once (that time is printed too), then the wall time of
    ``validate(frame, schema)`` only is measured on two frames:

    * clean     - the same data: every check runs, no anomaly is found;
    * anomalous - a copy with out-of-range values, unseen categories and infinities in
                  some columns and one column missing, so examples and counts are gathered.

    Imports and data generation are excluded; one untimed run of each warms up first. The
    figure is the median of the timed runs; the minimum is printed too.

Target
    validate() on 1,000,000 x 50 in at most 2 s on a 2-CPU machine (the clean frame, and the
    anomalous one). infer_schema() has no target; its figure is for reference.

How to run (from the repository root)
    .venv/bin/python benchmarks/validate_schema.py             # 1,000,000 rows, 5 repetitions
    .venv/bin/python benchmarks/validate_schema.py --quick     # 100,000 rows, 3 repetitions
    .venv/bin/python benchmarks/validate_schema.py --profile   # also cProfile one validate()
Options: --rows N, --repeat N.
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
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks.schema import Schema, infer_schema
from conveyor.checks.validation import ValidationReport, validate

TARGET_S = 2.0
FULL_ROWS = 1_000_000
FLOATS, INTS, TEXTS = 30, 10, 10
CATEGORIES = np.array([f"category-{i:02d}" for i in range(20)], dtype=object)


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(FLOATS):
        values = rng.normal(100.0, 15.0, rows)
        values[rng.random(rows) < 0.01] = np.nan
        columns[f"f{i:02d}"] = values
    for i in range(INTS):
        columns[f"i{i:02d}"] = rng.integers(0, 1000, rows)
    for i in range(TEXTS):
        text = pd.Series(CATEGORIES[rng.integers(0, len(CATEGORIES), rows)], dtype="str")
        columns[f"c{i:02d}"] = text.where(rng.random(rows) >= 0.02)
    return pd.DataFrame(columns)


def make_anomalous(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with anomalies in a few columns (about 1% of their rows each)."""
    bad = frame.drop(columns=["f29"])
    rows = len(bad)
    step = 100
    for name in ("f00", "f01", "i00"):
        values = bad[name].to_numpy(copy=True)
        values[::step] = 10**6
        bad[name] = values
    inf = bad["f02"].to_numpy(copy=True)
    inf[::step] = np.inf
    bad["f02"] = inf
    unseen = bad["c00"].copy()
    unseen.iloc[::step] = [f"new-{i % 500}" for i in range(len(unseen.iloc[::step]))]
    bad["c00"] = unseen
    assert len(bad) == rows
    return bad


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def verdict(seconds: float) -> str:
    return f"{'MET' if seconds <= TARGET_S else 'MISSED'} (target <= {TARGET_S:.1f} s)"


def profile(frame: pd.DataFrame, schema: Schema, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    validate(frame, schema)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    print(f"\n--- cProfile: validate(), anomalous frame; top {top} by cumulative time ---")
    print(text[start:].rstrip() if start >= 0 else text.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 repetitions")
    parser.add_argument("--rows", type=int, default=None, help=f"rows ({FULL_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=None, help="timed repetitions (5)")
    parser.add_argument("--profile", action="store_true", help="cProfile one validate()")
    args = parser.parse_args()
    rows = args.rows or (FULL_ROWS // 10 if args.quick else FULL_ROWS)
    repeat = args.repeat or (3 if args.quick else 5)

    print(f"Conveyor data validation: {rows:,} rows x {FLOATS + INTS + TEXTS} columns")
    print(
        f"({FLOATS} float, {INTS} int, {TEXTS} text of 20 categories); median of {repeat} "
        f"after a warm-up"
    )
    print(
        f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}; "
        f"load average {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)"
    )
    t0 = time.perf_counter()
    frame = make_frame(rows)
    anomalous = make_anomalous(frame)
    print(f"data generated in {time.perf_counter() - t0:.1f} s\n")

    infer_samples = timed(lambda: infer_schema(frame), max(1, repeat // 2))
    schema = infer_schema(frame)
    reports: dict[str, ValidationReport] = {}

    def run(name: str, data: pd.DataFrame) -> None:
        reports[name] = validate(data, schema)

    results = {
        "clean": timed(lambda: run("clean", frame), repeat),
        "anomalous": timed(lambda: run("anomalous", anomalous), repeat),
    }
    if reports["clean"].anomalies:
        raise SystemExit(f"clean frame has anomalies:\n{reports['clean'].to_text()}")

    header = f"{'what':<36}{'median s':>10}{'min s':>10}{'rows/s':>14}   verdict"
    print(header)
    print("-" * len(header))
    for name, samples in results.items():
        median = statistics.median(samples)
        found = len(reports[name].anomalies)
        label = f"validate, {name} ({found} anomalies)"
        print(
            f"{label:<36}{median:>10.3f}{min(samples):>10.3f}{rows / median:>14,.0f}   "
            f"{verdict(median * FULL_ROWS / rows)}"
        )
    median = statistics.median(infer_samples)
    print(f"{'infer_schema':<36}{median:>10.3f}{min(infer_samples):>10.3f}{rows / median:>14,.0f}")
    if rows != FULL_ROWS:
        print(f"\nverdicts scale the median linearly to {FULL_ROWS:,} rows (--quick or --rows)")
    print(f"\nanomalies found in the anomalous frame:\n{reports['anomalous'].to_text()}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    if args.profile:
        profile(anomalous, schema, top=20)


if __name__ == "__main__":
    main()
