"""Per-feature drift on a wide table: Conveyor's ``drift`` vs Evidently's ``DataDriftPreset``.

What it measures
    A reference and a current table of ROWS rows each (default 1,000,000) with 50 columns:
    40 numeric (normal, lognormal, uniform, exponential, Poisson counts, a 4-level integer
    rating, two with 5% NaN) and 10 categorical (12 labels, Zipf-like mix). A known subset
    drifts: 8 numeric columns (mean shifts of 0.2-0.5 std, a 1.5x scale change, a changed
    rating mix) and 3 categorical ones (a changed mix); two more numeric columns get a shift
    of 0.03 std, which neither tool should call drift. Both tables are written to Parquet.

    * Conveyor: ``drift(reference, current)`` in this process on the DataFrames read from
      those files; one untimed warm-up, then the median of ``--repeat`` (3) runs.
    * Evidently 0.7: ``Report([DataDriftPreset()], include_tests=True).run(current, ref)`` in
      a subprocess of its own virtual environment, on the same Parquet files. Only
      ``run()`` and reading the results back (``snapshot.dict()``) are timed, inside the
      subprocess; imports and Parquet reads are not. One run (it is the slow side).

    Printed: both times, the speed ratio, the agreement of the per-column drift verdicts
    (and the columns where they differ), each side's verdicts against the known drifted
    set, the largest difference between the two sides' drift scores per method, and the
    dataset verdicts.

    Evidently is installed by this script into ``benchmarks/.work/evidently-venv``
    (``pip install "evidently==0.7.*" "pandas<3" pyarrow``; Evidently 0.7 needs pandas < 3),
    reused when present.

Targets
    * Conveyor: at most 5 s for 1,000,000 rows x 50 columns against an equal-sized reference;
    * at least 20x faster than Evidently's preset on the same data.
    For reference: Evidently's preset took 4.3 s on 100,000 rows x 20 numeric columns on the
    development machine.

How to run (from the repository root)
    .venv/bin/python benchmarks/drift_vs_evidently.py              # 1,000,000 rows
    .venv/bin/python benchmarks/drift_vs_evidently.py --quick      # 100,000 rows
    .venv/bin/python benchmarks/drift_vs_evidently.py --rows 300000 --repeat 5
Options: --rows N, --repeat N, --no-evidently (Conveyor only), --profile (cProfile one
Conveyor run on one thread), --keep (leave the Parquet files in place).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.checks.drift import DriftReport, drift

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
EVIDENTLY_VENV = WORK / "evidently-venv"
EVIDENTLY_PYTHON = EVIDENTLY_VENV / "bin" / "python"
TARGET_S = 5.0
RATIO_TARGET = 20.0
EVIDENTLY_100K_X_20_S = 4.3
CATEGORIES = np.array([f"label_{i:02d}" for i in range(12)])
ZIPF = 1 / np.arange(1, 13)

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
import evidently
from evidently import Report
from evidently.presets import DataDriftPreset

reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2])
t0 = time.perf_counter()
snapshot = Report([DataDriftPreset()], include_tests=True).run(
    current_data=current, reference_data=reference
)
t1 = time.perf_counter()
result = snapshot.dict()
t2 = time.perf_counter()
columns, share = {}, None
for metric in result["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        columns[config["column"]] = {
            "method": config["method"], "threshold": config["threshold"],
            "score": metric["value"],
        }
    elif config["type"].endswith("DriftedColumnsCount"):
        share = metric["value"]["share"]
for test in result["tests"]:
    if test["name"].startswith("Value Drift for column "):
        columns[test["name"][len("Value Drift for column "):]]["drifted"] = test["status"] == "FAIL"
print(json.dumps({
    "run_s": t1 - t0, "results_s": t2 - t1, "columns": columns, "share": share,
    "version": evidently.__version__, "pandas": pd.__version__,
}))
"""

# Evidently's display names of its methods, by Conveyor's method names
EVIDENTLY_METHODS = {
    "ks": "K-S p_value",
    "chisquare": "chi-square p_value",
    "z": "Z-test p_value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
}


def numbers(rng: np.random.Generator, family: int, rows: int, shift: float) -> np.ndarray:
    """One numeric column; ``shift`` moves its mean by that many standard deviations."""
    if family == 0:
        return rng.normal(shift, 1.0, rows)
    if family == 1:
        return rng.lognormal(1.0 + 0.6 * shift, 0.6, rows)  # shift in log space
    if family == 2:
        return rng.uniform(0, 10, rows) + shift * 10 / 12**0.5
    if family == 3:
        return rng.exponential(2.0, rows) + shift * 2.0
    return rng.poisson(40 + shift * 40**0.5, rows)


def make_tables(rows: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """Reference and current tables, and the names of the columns made to drift."""
    rng = np.random.default_rng(seed)
    shifts = {"num00": 0.5, "num01": 0.35, "num02": 0.2, "num03": 0.3, "num04": 0.25, "num05": 0.5}
    shifts |= {"num10": 0.03, "num15": 0.03}  # below every threshold: not drift
    reference, current = {}, {}
    for i in range(40):
        name = f"num{i:02d}"
        reference[name] = numbers(rng, i % 5, rows, 0.0)
        current[name] = numbers(rng, i % 5, rows, shifts.get(name, 0.0))
    current["num06"] = current["num06"] * 1.5  # same mean, a wider spread
    levels, before, after = [1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], [0.25] * 4
    reference["num07"] = rng.choice(levels, rows, p=before)  # 4 integer levels: categorical
    current["num07"] = rng.choice(levels, rows, p=after)
    base = ZIPF / ZIPF.sum()
    for i in range(10):
        mix = base[::-1] if i < 3 else base
        reference[f"cat{i}"] = CATEGORIES[rng.choice(12, rows, p=base)]
        current[f"cat{i}"] = CATEGORIES[rng.choice(12, rows, p=mix)]
    ref, cur = pd.DataFrame(reference), pd.DataFrame(current)
    for name in ("num20", "num21"):
        for table in (ref, cur):
            table.loc[rng.random(rows) < 0.05, name] = np.nan
    known = {n for n, s in shifts.items() if s >= 0.1} | {"num06", "num07", "cat0", "cat1", "cat2"}
    return ref, cur, known


def ensure_evidently() -> Path:
    if not EVIDENTLY_PYTHON.exists():
        print(f"installing Evidently into {EVIDENTLY_VENV} (once) ...", flush=True)
        shutil.rmtree(EVIDENTLY_VENV, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)])
        run(
            [
                str(EVIDENTLY_PYTHON),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "evidently==0.7.*",
                "pandas<3",
                "pyarrow",
            ]
        )
    return EVIDENTLY_PYTHON


def run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def time_conveyor(
    reference: pd.DataFrame, current: pd.DataFrame, repeat: int
) -> tuple[float, DriftReport]:
    report = drift(reference, current)  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        report = drift(reference, current)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), report


def time_evidently(ref_path: Path, cur_path: Path, work: Path) -> dict:  # type: ignore[type-arg]
    script = work / "evidently_drift.py"
    script.write_text(EVIDENTLY_SCRIPT)
    python = ensure_evidently()
    print("running Evidently's DataDriftPreset (one run; this is the slow part) ...", flush=True)
    t0 = time.perf_counter()
    out = json.loads(
        run([str(python), str(script), str(ref_path), str(cur_path)]).strip().splitlines()[-1]
    )
    out["process_s"] = time.perf_counter() - t0
    return out


def compare(report: DriftReport, evidently: dict, known: set[str]) -> None:  # type: ignore[type-arg]
    ours = {f.column: f for f in report.features}
    theirs = evidently["columns"]
    both = sorted(set(ours) & set(theirs))
    differ = [c for c in both if ours[c].drifted != theirs[c]["drifted"]]
    agree = len(both) - len(differ)
    print(f"verdict agreement: {agree}/{len(both)} columns ({agree / len(both):.1%})")
    for c in differ:
        f, e = ours[c], theirs[c]
        print(
            f"  {c}: Conveyor {f.verdict} ({f.method} {f.score:.4g}), "
            f"Evidently {'drift' if e['drifted'] else 'no drift'} ({e['method']} {e['score']:.4g})"
        )
    only = sorted(set(ours) ^ set(theirs))
    if only:
        print(f"  compared by one side only: {', '.join(only)}")
    gaps: dict[str, float] = {}
    for c in both:
        f = ours[c]
        if EVIDENTLY_METHODS.get(f.method) == theirs[c]["method"] and f.score is not None:
            gaps[f.method] = max(gaps.get(f.method, 0.0), abs(f.score - theirs[c]["score"]))
        else:
            print(f"  {c}: methods differ: Conveyor {f.method}, Evidently {theirs[c]['method']}")
    for method, gap in sorted(gaps.items()):
        print(f"largest score difference, {method}: {gap:.2e}")
    for side, called in (
        ("Conveyor", {c for c in both if ours[c].drifted}),
        ("Evidently", {c for c in both if theirs[c]["drifted"]}),
    ):
        missed, extra = sorted(known - called), sorted(called - known)
        print(
            f"{side} vs the known drifted set ({len(known)}): missed {missed or 'none'}, "
            f"extra {extra or 'none'}"
        )
    print(
        f"dataset drift: Conveyor {report.drifted} (share {report.share:.2f}), "
        f"Evidently {evidently['share'] is not None and evidently['share'] >= 0.5} "
        f"(share {evidently['share']:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--rows", type=int, default=None, help="rows per table (1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed Conveyor runs (3)")
    parser.add_argument("--no-evidently", action="store_true", help="time Conveyor only")
    parser.add_argument("--profile", action="store_true", help="cProfile one Conveyor run")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet files")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="conveyor-drift-bench-"))
    try:
        print(
            f"drift on {rows:,} rows x 50 columns (40 numeric, 10 categorical), reference and "
            f"current of equal size; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )
        reference, current, known = make_tables(rows)
        ref_path, cur_path = work / "reference.parquet", work / "current.parquet"
        reference.to_parquet(ref_path, index=False)
        current.to_parquet(cur_path, index=False)
        reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        seconds, report = time_conveyor(reference, current, args.repeat)
        met = "met" if seconds <= TARGET_S else "NOT met"
        print(
            f"Conveyor drift: {seconds:.3f} s (median of {args.repeat}; target <= {TARGET_S:g} s "
            f"at 1M rows: {met if rows >= 1_000_000 else 'n/a at this size'})"
        )
        print(report.summary())
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(drift, reference, current, workers=1)  # one thread: all seen
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(20)
            print(text.getvalue())
        if not args.no_evidently:
            del reference
            evidently = time_evidently(ref_path, cur_path, work)
            theirs = evidently["run_s"] + evidently["results_s"]
            ratio = theirs / seconds
            print(
                f"Evidently {evidently['version']} (pandas {evidently['pandas']}) DataDriftPreset: "
                f"{theirs:.2f} s (run {evidently['run_s']:.2f} s + results "
                f"{evidently['results_s']:.2f} s; whole subprocess {evidently['process_s']:.1f} s)"
            )
            verdict = "met" if ratio >= RATIO_TARGET else "NOT met"
            print(
                f"speed ratio: Conveyor {ratio:.1f}x faster "
                f"(target >= {RATIO_TARGET:g}x: {verdict})"
            )
            print(
                f"(reference: Evidently took {EVIDENTLY_100K_X_20_S} s on 100k x 20 numeric here)"
            )
            compare(report, evidently, known)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        if args.keep:
            print(f"Parquet files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
