"""Single-row prediction latency in process: scikit-learn against onnxruntime.

What it measures
    The time of one ``predict_proba`` call on one row, as a prediction service makes it, for

    * ``logreg`` - a LogisticRegression on 20 float features;
    * ``hgb``    - a HistGradientBoostingClassifier (100 iterations) on the same 20 features;
    * ``pipe``   - for reference: Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler),
      LogisticRegression) on 18 float, 1 int and 1 text column, which ONNX takes as one input
      per column (the other two take one float tensor).

    Each model is called through four paths, on the same rows:

    * ``sklearn, DataFrame`` - ``model.predict_proba(one_row_df)``: the baseline;
    * ``sklearn, numpy``     - ``predict_proba`` on a 1x20 array, by an identical model fitted
      on the array (so scikit-learn does not warn about missing feature names); not for pipe;
    * ``OnnxModel``          - ``conveyor.registry.onnx.OnnxModel.predict_proba(one_row_df)``:
      what serving with ONNX costs, DataFrame-to-tensor conversion included;
    * ``onnxruntime, raw``   - ``session.run`` on a prepared float32 array: the floor.

    The ONNX model comes from ``compile_onnx`` and runs single-threaded (the serving default).
    Every path is checked to give the same probabilities (within 1e-5) before timing. After a
    warm-up, each call is timed on its own with ``perf_counter_ns``; the paths take turns in
    rounds, cycling through rows, so drift on a busy machine hits them alike. Median and p99
    in microseconds, and each median as a ratio of the DataFrame baseline's.

Targets
    None: the figures decide whether serving through ONNX is worth its equivalence proof.

How to run (from the repository root, with the onnx extra installed)
    .venv/bin/python benchmarks/predict_latency.py            # 20,000 timed calls per path
    .venv/bin/python benchmarks/predict_latency.py --quick    # 2,000
    .venv/bin/python benchmarks/predict_latency.py --profile  # also cProfile OnnxModel (logreg)
Options: --calls N (timed calls per path and model).
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
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conveyor.registry.onnx import OnnxModel, compile_onnx, equivalent, prove_equivalence

FEATURES = 20
TRAIN_ROWS = 10_000
DISTINCT_ROWS = 256  # rows cycled through, so no path profits from one row in cache
WARMUP = 500
ROUND = 100  # calls per path before the next path takes its turn


def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Numeric features, labels, and the same rows with an int and a text column."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"x{i}": rng.normal(size=TRAIN_ROWS) for i in range(FEATURES)})
    y = (X["x0"] + X["x1"] - X["x2"] + rng.normal(size=TRAIN_ROWS) > 0.3).astype(int)
    mixed = X.iloc[:, : FEATURES - 2].copy()
    mixed["children"] = rng.integers(0, 4, TRAIN_ROWS)
    mixed["region"] = rng.choice(["north", "south", "east", "west"], TRAIN_ROWS)
    return X, y, mixed


def models(X: pd.DataFrame, y: pd.Series, mixed: pd.DataFrame) -> dict[str, tuple[Any, Any]]:
    """name -> (model fitted on the DataFrame, identical model fitted on its array or None)."""
    logreg = LogisticRegression(max_iter=1000)
    hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["children", "region"]),
            ("num", StandardScaler(), list(mixed.columns[: FEATURES - 2])),
        ]
    )
    pipe = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=1000))])
    return {
        "logreg": (clone(logreg).fit(X, y), clone(logreg).fit(X.to_numpy(), y)),
        "hgb": (clone(hgb).fit(X, y), clone(hgb).fit(X.to_numpy(), y)),
        "pipe": (pipe.fit(mixed, y), None),
    }


def paths(model: Any, array_model: Any, frame: pd.DataFrame) -> dict[str, Callable[[int], Any]]:
    """Each path as a function of a row number, all scoring the same rows."""
    onnx_model = OnnxModel(compile_onnx(model, frame))
    rows = [frame.iloc[[i]] for i in range(DISTINCT_ROWS)]
    found: dict[str, Callable[[int], Any]] = {
        "sklearn, DataFrame": lambda i: model.predict_proba(rows[i]),
    }
    if array_model is not None:
        arrays = [r.to_numpy() for r in rows]
        tensors = [a.astype(np.float32) for a in arrays]
        session = onnx_model.session
        found["sklearn, numpy"] = lambda i: array_model.predict_proba(arrays[i])
        found["OnnxModel"] = lambda i: onnx_model.predict_proba(rows[i])
        found["onnxruntime, raw"] = lambda i: session.run(None, {"X": tensors[i]})[1]
    else:
        found["OnnxModel"] = lambda i: onnx_model.predict_proba(rows[i])
    return found


def verify(
    name: str, model: Any, frame: pd.DataFrame, found: dict[str, Callable[[int], Any]]
) -> None:
    results = prove_equivalence(model, compile_onnx(model, frame), frame[:200], frame[:5000])
    if not equivalent(results):
        raise SystemExit(f"{name}: ONNX is not equivalent: {[r.message for r in results]}")
    for i in range(0, DISTINCT_ROWS, 17):
        expected = np.asarray(found["sklearn, DataFrame"](i))
        for path, call in found.items():
            got = np.asarray(call(i), dtype=np.float64)
            if not np.allclose(got, expected, atol=1e-5):
                raise SystemExit(f"{name}, {path}: row {i} gives {got}, not {expected}")


def measure(found: dict[str, Callable[[int], Any]], calls: int) -> dict[str, list[float]]:
    """Microseconds per call for each path; paths take turns in rounds of ROUND calls."""
    for call in found.values():
        for i in range(WARMUP):
            call(i % DISTINCT_ROWS)
    samples: dict[str, list[float]] = {path: [] for path in found}
    clock = time.perf_counter_ns
    done = 0
    while done < calls:
        for path, call in found.items():
            times = samples[path]
            for k in range(done, done + ROUND):
                row = k % DISTINCT_ROWS
                t0 = clock()
                call(row)
                times.append((clock() - t0) / 1000)
        done += ROUND
    return samples


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def report(name: str, samples: dict[str, list[float]]) -> None:
    base = statistics.median(samples["sklearn, DataFrame"])
    for path, values in samples.items():
        median = statistics.median(values)
        ratio = f"{median / base:6.2f}x" if path != "sklearn, DataFrame" else "     1x"
        speedup = f"{base / median:6.1f}x faster" if median < base else ""
        print(f"{name:<8}{path:<22}{median:10.1f}{p99(values):10.1f}   {ratio}   {speedup}")


def profile(found: dict[str, Callable[[int], Any]], top: int = 15) -> None:
    call = found["OnnxModel"]
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(5000):
        call(i % DISTINCT_ROWS)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    print(f"\n--- cProfile: OnnxModel.predict_proba, logreg, 5000 calls; top {top} by own time ---")
    print(text[start:].rstrip() if start >= 0 else text.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 timed calls per path")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per path (20,000)")
    parser.add_argument("--profile", action="store_true", help="cProfile OnnxModel on logreg")
    args = parser.parse_args()
    calls = args.calls or (2_000 if args.quick else 20_000)
    calls = max(ROUND, calls // ROUND * ROUND)

    print(f"Single-row predict_proba latency, in process: {calls} timed calls per path")
    print(
        f"python {sys.version.split()[0]}, scikit-learn {version('scikit-learn')}, "
        f"onnxruntime {version('onnxruntime')}, skl2onnx {version('skl2onnx')}, "
        f"pandas {version('pandas')}; load average {os.getloadavg()[0]:.2f} "
        f"(on {os.cpu_count()} CPUs); ONNX single-threaded"
    )
    X, y, mixed = data()
    fitted = models(X, y, mixed)
    print()
    header = f"{'model':<8}{'path':<22}{'median us':>10}{'p99 us':>10}   vs DataFrame"
    print(header)
    print("-" * (len(header) + 14))
    logreg_paths: dict[str, Callable[[int], Any]] = {}
    for name, (model, array_model) in fitted.items():
        frame = mixed if name == "pipe" else X
        found = paths(model, array_model, frame)
        verify(name, model, frame, found)
        report(name, measure(found, calls))
        if name == "logreg":
            logreg_paths = found
    print()
    print("ratio = median / median of sklearn on a 1-row DataFrame (below 1x: faster)")
    print("OnnxModel includes the DataFrame-to-tensor conversion; raw is session.run alone")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.profile:
        profile(logreg_paths)


if __name__ == "__main__":
    main()
