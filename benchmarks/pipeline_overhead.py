"""In-process engine overhead per step: Conveyor's ``run_pipeline`` on no-op steps.

What it measures
    Two pipelines of 50 no-op ``@step`` functions with tiny int outputs:

    * ``chain``  - s0 -> s1 -> ... -> s49, each step adds one to its input;
    * ``fanout`` - one source step feeding 49 independent steps.

    For each, the wall time of ``run_pipeline(project, RunOptions(...))`` only, divided by the
    number of steps, in three situations:

    * executed, first run  - a fresh project (empty metadata database and artifact store);
    * cached               - the same pipeline again, every step a verified cache hit;
    * executed, --no-cache - every step executed again on a populated project.

    Imports, project loading, schema creation and the import of the pipeline module are
    excluded: everything is imported and one whole pipeline is run once to warm up before any
    timing. Metadata (SQLite) and artifact (blob) writes are included, as is the fixed per-run
    work (git state, run record, lease), which is also reported on its own from a 1-step
    pipeline so the marginal cost of one more step is visible.

    Each project is its own git repository with everything committed, as a real project would
    be, so the run records a clean git state.

Targets
    * at most 2 ms per executed step (metadata and artifact writes included);
    * at most 0.5 ms per cached step.
    For reference only: Hamilton measured ~8 us per node in process, but persists nothing.

How to run (from the repository root)
    .venv/bin/python benchmarks/pipeline_overhead.py            # 50 steps, 5 repetitions
    .venv/bin/python benchmarks/pipeline_overhead.py --quick    # 10 steps, 2 repetitions
    .venv/bin/python benchmarks/pipeline_overhead.py --profile  # also cProfile one cached and
                                                                # one executed chain run
Options: --steps N, --repeat N, --keep (leave the temporary projects in place).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conveyor.engine.project import Project, open_project
from conveyor.engine.run import RunOptions, RunOutcome, run_pipeline

EXECUTED_TARGET_MS = 2.0
CACHED_TARGET_MS = 0.5
HAMILTON_US = 8.0

GITIGNORE = ".conveyor/\n__pycache__/\n"


def chain_source(n: int) -> str:
    lines = ["from conveyor import pipeline, step", "", ""]
    lines += ["@step", "def s0(x: int = 0) -> int:", "    return x", "", ""]
    for i in range(1, n):
        lines += ["@step", f"def s{i}(x: int) -> int:", "    return x + 1", "", ""]
    lines += ["@pipeline", "def chain():", "    v = s0()"]
    lines += [f"    v = s{i}(v)" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def fanout_source(n: int) -> str:
    lines = ["from conveyor import pipeline, step", "", ""]
    lines += ["@step", "def src(x: int = 0) -> int:", "    return x", "", ""]
    for i in range(1, n):
        lines += ["@step", f"def f{i}(x: int) -> int:", f"    return x + {i}", "", ""]
    lines += ["@pipeline", "def fanout():", "    v = src()"]
    lines += [f"    f{i}(v)" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def make_template(root: Path, n: int) -> Path:
    """A committed git project with pipelines chain (n steps), fanout (n) and one (1 step)."""
    root.mkdir(parents=True)
    (root / "pipelines").mkdir()
    (root / "pipelines" / "__init__.py").write_text("")
    (root / "pipelines" / "chain.py").write_text(chain_source(n))
    (root / "pipelines" / "fanout.py").write_text(fanout_source(n))
    (root / "pipelines" / "one.py").write_text(chain_source(1).replace("chain", "one"))
    (root / "conveyor.yaml").write_text(
        "name: bench\n"
        "pipelines:\n"
        "  chain: pipelines/chain.py:chain\n"
        "  fanout: pipelines/fanout.py:fanout\n"
        "  one: pipelines/one.py:one\n"
    )
    (root / ".gitignore").write_text(GITIGNORE)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bench project")
    return root


class Bench:
    """One project directory; "fresh" means its .conveyor state is deleted and it is reopened.

    Reusing one directory keeps the process's view of loaded project roots the same as in a
    real ``conveyor run`` (one root), and keeps the pipeline modules imported.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project: Project | None = None

    def fresh_project(self, pipeline: str) -> Project:
        """The project with empty stores, opened, its schema created and pipeline imported."""
        if self.project is not None:
            self.project.engine.dispose()
        shutil.rmtree(self.root / ".conveyor", ignore_errors=True)
        project = open_project(self.root)
        _ = project.metadata  # creates the schema
        _ = project.artifacts
        project.pipeline(pipeline)  # imports the pipeline module
        self.project = project
        return project


def timed_run(project: Project, pipeline: str, *, no_cache: bool, expect: str) -> float:
    options = RunOptions(pipeline=pipeline, no_cache=no_cache)
    t0 = time.perf_counter()
    outcome = run_pipeline(project, options)
    elapsed = time.perf_counter() - t0
    check(outcome, expect)
    return elapsed


def check(outcome: RunOutcome, expect: str) -> None:
    bad = [s.name for s in outcome.steps if str(s.status) != expect]
    if str(outcome.status) != "succeeded" or bad:
        raise SystemExit(f"run {outcome.run_id}: expected every step {expect}, not {bad[:5]}")


def measure(bench: Bench, pipeline: str, steps: int, repeat: int) -> dict[str, list[float]]:
    """Seconds per run for each situation, ``repeat`` samples each."""
    samples: dict[str, list[float]] = {"first": [], "cached": [], "no_cache": []}
    for _ in range(repeat):
        project = bench.fresh_project(pipeline)
        samples["first"].append(timed_run(project, pipeline, no_cache=False, expect="succeeded"))
        samples["cached"].append(timed_run(project, pipeline, no_cache=False, expect="cached"))
        samples["no_cache"].append(timed_run(project, pipeline, no_cache=True, expect="succeeded"))
    return samples


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def verdict(value_ms: float, target_ms: float) -> str:
    return f"{'MET ' if value_ms <= target_ms else 'MISSED'} (target <= {target_ms} ms)"


def profile_run(bench: Bench, pipeline: str, *, cached: bool, top: int) -> None:
    project = bench.fresh_project(pipeline)
    if cached:
        timed_run(project, pipeline, no_cache=False, expect="succeeded")
    profiler = cProfile.Profile()
    options = RunOptions(pipeline=pipeline)
    profiler.enable()
    outcome = run_pipeline(project, options)
    profiler.disable()
    check(outcome, "cached" if cached else "succeeded")
    for sort, title in (("cumulative", "cumulative, in src/conveyor"), ("tottime", "own time")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(sort)
        if sort == "cumulative":
            stats.print_stats(r"src/conveyor", top)
        else:
            stats.print_stats(top)
        kind = "cached" if cached else "executed (first run)"
        print(f"\n--- cProfile: {pipeline}, {kind}; top {top} by {title} ---")
        text = out.getvalue()
        start = text.find("   ncalls")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 steps, 2 repetitions")
    parser.add_argument("--steps", type=int, default=None, help="steps per pipeline (50)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (5)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of each kind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    args = parser.parse_args()
    steps = args.steps or (10 if args.quick else 50)
    repeat = args.repeat or (2 if args.quick else 5)

    work = Path(tempfile.mkdtemp(prefix="cvbench-overhead-"))
    try:
        bench = Bench(make_template(work / "project", steps))
        print(f"Conveyor in-process engine overhead: {steps}-step pipelines, median of {repeat}")
        print(
            f"python {sys.version.split()[0]}, projects under {work}; "
            f"load average {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)"
        )
        # Warm up: imports, closure hashing caches, environment lock, SQLAlchemy statement cache.
        for name in ("chain", "fanout", "one"):
            project = bench.fresh_project(name)
            timed_run(project, name, no_cache=False, expect="succeeded")
            timed_run(project, name, no_cache=False, expect="cached")

        results = {name: measure(bench, name, steps, repeat) for name in ("chain", "fanout")}
        fixed = measure(bench, "one", 1, repeat)

        print()
        header = f"{'pipeline':<10}{'situation':<22}{'run ms':>10}{'ms/step':>10}"
        header += f"{'marginal':>10}   vs Hamilton {HAMILTON_US:.0f} us/node"
        print(header)
        print("-" * len(header))
        labels = {
            "first": "executed, first run",
            "cached": "cached",
            "no_cache": "executed, --no-cache",
        }
        worst = {"executed": 0.0, "cached": 0.0}
        for name, samples in results.items():
            for situation, values in samples.items():
                run_s = statistics.median(values)
                one_s = statistics.median(fixed[situation])
                per_step = run_s / steps
                marginal = (run_s - one_s) / (steps - 1) if steps > 1 else per_step
                ratio = per_step * 1e6 / HAMILTON_US
                print(
                    f"{name:<10}{labels[situation]:<22}{ms(run_s)}  {ms(per_step)}  "
                    f"{ms(marginal)}   {ratio:7.0f}x"
                )
                kind = "cached" if situation == "cached" else "executed"
                worst[kind] = max(worst[kind], per_step * 1000)
        print()
        print(
            "fixed per-run cost (1-step pipeline): "
            + ", ".join(
                f"{labels[s]} {statistics.median(v) * 1000:.2f} ms" for s, v in fixed.items()
            )
        )
        print("marginal = (run time - 1-step run time) / (steps - 1): the cost of one more step")
        print(
            f"Hamilton reference: ~{HAMILTON_US:.0f} us per node in process, nothing persisted"
            " (quoted, not measured here)"
        )
        print()
        print(
            f"executed step, worst median: {worst['executed']:.2f} ms/step  "
            f"{verdict(worst['executed'], EXECUTED_TARGET_MS)}"
        )
        print(
            f"cached step,   worst median: {worst['cached']:.2f} ms/step  "
            f"{verdict(worst['cached'], CACHED_TARGET_MS)}"
        )

        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        if args.profile:
            profile_run(bench, "chain", cached=True, top=15)
            profile_run(bench, "chain", cached=False, top=15)
    finally:
        if args.keep:
            print(f"\nprojects kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
