"""Artifact store vs direct pyarrow: writing and reading ~1 GB of Parquet.

What it measures
    One pandas DataFrame (8 random float64 columns, a random int64 column and a string column
    drawn from 50,000 distinct values) sized so that its Parquet file is about 1 GB; the
    actual file size is printed. Side by side, interleaved (the order alternates every
    repetition), a few repetitions:

    * store  - ``info = store.save(df)`` then ``store.load(info)`` through Conveyor's
      ``ArtifactStore`` on a local ``BlobStore`` (materialize to Parquet in the staging
      area, sha256, rename under ``objects/ab/cdef...``; on load, verify the sha256, then read);
    * direct - ``pq.write_table(pa.Table.from_pandas(df), path)`` then
      ``pq.read_table(path).to_pandas()``.

    Write, read and total wall times (median) and the ratios store/direct are printed, with the
    time of one sha256 over the file, which is what the store adds by design (once on write,
    once on read). The files are written to a temporary directory on the same filesystem; the
    reads come from the page cache for both sides, and ``os.sync()`` runs after each write so
    that one side's write-back does not land in the other side's timing. Each repetition
    writes with both sides, then reads with both (order alternating), after one untimed read:
    on the development machine (a 2-CPU VM) the first large read after the writes was
    consistently 2-6x slower whichever side it was, which would otherwise decide the result.
    Memory is freed between phases and the process's resident size is printed.

Target
    The store costs at most 1.5 x direct pyarrow (write, read and total).

How to run (from the repository root)
    .venv/bin/python benchmarks/artifact_store.py            # ~1 GB, 5 repetitions
    .venv/bin/python benchmarks/artifact_store.py --quick    # ~100 MB, 2 repetitions
    .venv/bin/python benchmarks/artifact_store.py --profile  # also cProfile one save and load
Options: --mb SIZE (target Parquet size in MB), --repeat N, --dir PATH (where to write;
default a temporary directory, removed afterwards). Needs about 3 x SIZE of free disk and
roughly 5 x SIZE of free memory at peak.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import hashlib
import io
import os
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.core.records import ArtifactInfo
from conveyor.store.artifacts import ArtifactStore
from conveyor.store.blobs import BlobStore
from conveyor.store.materializers import MaterializeContext

RATIO_TARGET = 1.5
FLOATS = 8
STRING_POOL = 50_000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_memory() -> None:
    gc.collect()
    pa.default_memory_pool().release_unused()


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {f"f{i}": rng.standard_normal(rows) for i in range(FLOATS)}
    data["id"] = rng.integers(0, 2**40, size=rows, dtype=np.int64)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype="S1")
    pool = rng.choice(letters, size=(STRING_POOL, 12)).view("S12").ravel().astype(str)
    data["label"] = pd.array(pool[rng.integers(0, STRING_POOL, size=rows)], dtype="str")
    return pd.DataFrame(data)


def rows_for(target_bytes: int) -> int:
    """Rows whose Parquet is about ``target_bytes``, from the size of a 1,000,000-row sample."""
    sample_rows = 1_000_000
    sample = make_frame(sample_rows, seed=1)
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(sample), buf)
    per_row = buf.getvalue().size / sample_rows
    return max(1000, int(target_bytes / per_row))


def sha256_file(path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        hashlib.file_digest(f, "sha256")
    return time.perf_counter() - t0


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        raise SystemExit(f"round trip changed the frame: {a.shape} -> {b.shape}")
    if not np.array_equal(a["f0"].to_numpy(), b["f0"].to_numpy()):
        raise SystemExit("round trip changed column f0")


class Sides:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store_dir = root / "store"
        self.direct_path = root / "direct" / "frame.parquet"
        self.direct_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = ArtifactStore(
            BlobStore(str(self.store_dir), cache_dir=root / "cache"), MaterializeContext()
        )
        self.info: ArtifactInfo | None = None

    def write(self, side: str, df: pd.DataFrame) -> float:
        """Write ``df`` through one side; returns seconds. Syncs and frees memory after."""
        t0 = time.perf_counter()
        if side == "store":
            self.info = self.store.save(df)
        else:
            pq.write_table(pa.Table.from_pandas(df), self.direct_path)
        elapsed = time.perf_counter() - t0
        free_memory()
        os.sync()
        return elapsed

    def read(self, side: str, df: pd.DataFrame) -> float:
        """Read back what ``write`` wrote; returns seconds. Checks the frame and frees it."""
        t0 = time.perf_counter()
        if side == "store":
            back = self.store.load(self.info)
        else:
            back = pq.read_table(self.direct_path).to_pandas()
        elapsed = time.perf_counter() - t0
        same_frame(df, back)
        del back
        free_memory()
        return elapsed

    def blob(self) -> Path:
        assert self.info is not None
        return self.store.blobs.local_path(self.info.digest)

    def clean(self) -> None:
        self.info = None
        shutil.rmtree(self.store_dir / "objects", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.direct_path.unlink()
        os.sync()


def profile(sides: Sides, df: pd.DataFrame, top: int = 15) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    info = sides.store.save(df)
    back = sides.store.load(info)
    profiler.disable()
    del back
    free_memory()
    sides.clean()
    for pattern, title in ((r"src/conveyor", "cumulative, in src/conveyor"), ("", "own time")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        if pattern:
            stats.sort_stats("cumulative").print_stats(pattern, top)
        else:
            stats.sort_stats("tottime").print_stats(top)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\n--- cProfile: one store.save + store.load; top {top} by {title} ---")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~100 MB, 2 repetitions")
    parser.add_argument("--mb", type=int, default=None, help="target Parquet size (1000 MB)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (5)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    parser.add_argument("--profile", action="store_true", help="cProfile one save and load")
    args = parser.parse_args()
    target_mb = args.mb or (100 if args.quick else 1000)
    repeat = args.repeat or (2 if args.quick else 5)

    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cvbench-artifacts-", dir=args.dir))
    try:
        print(
            f"Artifact store vs direct pyarrow, ~{target_mb} MB of Parquet, {repeat} "
            f"repetitions, interleaved; scratch in {root}"
        )
        print(
            f"pandas {pd.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        rows = rows_for(target_mb * 1_000_000)
        t0 = time.perf_counter()
        df = make_frame(rows)
        print(
            f"frame: {rows:,} rows x {df.shape[1]} columns, "
            f"{df.memory_usage(deep=True).sum() / 1e6:,.0f} MB in memory, "
            f"built in {time.perf_counter() - t0:.1f} s; RSS {rss_mb():,.0f} MB"
        )
        sides = Sides(root)
        # Warm up both paths (first-call costs of pyarrow, the blob store's directories).
        warm = df.iloc[: max(1000, rows // 20)]
        for side in ("store", "direct"):
            sides.write(side, warm)
            sides.read(side, warm)
        sides.clean()
        del warm
        samples: dict[str, list[float]] = {
            k: [] for k in ("store_w", "store_r", "direct_w", "direct_r", "sha256")
        }
        for r in range(repeat):
            # Writes of both sides, then reads of both, the order alternating every repetition.
            order = ("store", "direct") if r % 2 == 0 else ("direct", "store")
            times = {}
            for side in order:
                times[f"{side}_w"] = sides.write(side, df)
            sides.read("direct", df)  # untimed: whichever read comes first is slow, see above
            for side in order:
                times[f"{side}_r"] = sides.read(side, df)
            blob = sides.blob()
            store_size, direct_size = blob.stat().st_size, sides.direct_path.stat().st_size
            times["sha256"] = sha256_file(blob)
            for key, value in times.items():
                samples[key].append(value)
            print(
                f"  rep {r + 1} ({order[0]} first): write store {times['store_w']:5.2f} s, "
                f"direct {times['direct_w']:5.2f} s; read store {times['store_r']:5.2f} s, "
                f"direct {times['direct_r']:5.2f} s; RSS {rss_mb():,.0f} MB",
                flush=True,
            )
            sides.clean()

        med = {k: statistics.median(v) for k, v in samples.items()}
        best = {k: min(v) for k, v in samples.items()}
        print()
        print(
            f"Parquet size: store blob {store_size / 1e6:,.1f} MB, direct file "
            f"{direct_size / 1e6:,.1f} MB"
        )
        print(
            f"{'seconds':<8}{'median store':>14}{'direct':>8}{'ratio':>8}"
            f"{'min store':>12}{'direct':>8}{'ratio':>8}"
        )
        print("-" * 66)
        ratios = {}
        for label, keys in (("write", ("_w",)), ("read", ("_r",)), ("total", ("_w", "_r"))):
            ms, md = (sum(med[f"{side}{k}"] for k in keys) for side in ("store", "direct"))
            bs, bd = (sum(best[f"{side}{k}"] for k in keys) for side in ("store", "direct"))
            ratios[label] = ms / md
            print(
                f"{label:<8}{ms:>14.2f}{md:>8.2f}{ms / md:>7.2f}x{bs:>12.2f}{bd:>8.2f}"
                f"{bs / bd:>7.2f}x"
            )
        mbps = store_size / 1e6 / med["sha256"]
        print(
            f"\none sha256 over the blob: {med['sha256']:.2f} s ({mbps:,.0f} MB/s); the store "
            "hashes once on save and once on load (verification)"
        )
        print(
            f"store overhead: write {med['store_w'] - med['direct_w']:+.2f} s, "
            f"read {med['store_r'] - med['direct_r']:+.2f} s"
        )
        total = ratios["total"]
        ok = "MET   " if total <= RATIO_TARGET else "MISSED"
        print(
            f"\nwrite + read through the store: {total:.2f}x direct pyarrow  {ok} (target <= "
            f"{RATIO_TARGET}x; per phase: write {ratios['write']:.2f}x, read "
            f"{ratios['read']:.2f}x; the min columns show the same without noise)"
        )
        print(f"peak RSS {rss_peak_mb():,.0f} MB; load average {os.getloadavg()[0]:.2f}")
        if args.profile:
            profile(sides, df)
        del df
        free_memory()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def rss_peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
