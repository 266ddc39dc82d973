"""Whole-process time of an up-to-date 50-stage pipeline: ``conveyor run`` vs ``dvc repro``.

What it measures
    The wall time of one command, as a user types it, when nothing needs to run:

    * ``dvc repro`` on a 50-stage ``dvc.yaml`` chain (stage i copies out{i-1}.txt to out{i}.txt
      with ``cp``), up to date;
    * ``conveyor run cmds`` on the identical 50 cmd steps declared in ``conveyor.yaml``, fully
      cached;
    * ``conveyor run chain`` on a chain of 50 Python ``@step`` functions, fully cached.

    Each side lives in its own git repository with its files committed (DVC needs ``git init``
    and ``dvc init``). Both are run once to populate, then N timed runs of each are interleaved
    (the order rotates every round) and the medians compared. DVC's analytics and update check
    are switched off so it makes no network calls. Also timed: ``conveyor --help`` and
    ``python -c pass`` (the interpreter floor), median of 10 each.

    DVC is installed by this script into its own virtual environment under
    ``benchmarks/.work/dvc-venv`` (``pip install dvc``), reused when present.

Targets
    * ``conveyor run`` (cached) takes at most a third of ``dvc repro`` (up to date);
    * ``conveyor --help`` takes at most 0.3 s.
    For reference: DVC with 3 stages, up to date, took 0.40 s on the development machine.

How to run (from the repository root)
    .venv/bin/python benchmarks/cli_vs_dvc.py            # 50 stages, 10 interleaved rounds
    .venv/bin/python benchmarks/cli_vs_dvc.py --quick    # 10 stages, 3 rounds
    .venv/bin/python benchmarks/cli_vs_dvc.py --profile  # also: import time and cProfile of
                                                         # one cached `conveyor run cmds`
Options: --stages N, --rounds N, --keep (leave the temporary projects in place).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
DVC_VENV = WORK / "dvc-venv"
BIN = Path(sys.executable).parent
PYTHON = Path(sys.executable)
CONVEYOR = BIN / "conveyor"

RATIO_TARGET = 1 / 3
HELP_TARGET_S = 0.3
DVC_3_STAGE_REFERENCE_S = 0.40

ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "NO_COLOR": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def sh(argv: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


def ensure_dvc() -> Path:
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        print(f"installing DVC into {DVC_VENV} (once) ...", flush=True)
        shutil.rmtree(DVC_VENV, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        sh([PYTHON, "-m", "venv", DVC_VENV])
        pip = DVC_VENV / "bin" / "python"
        sh([pip, "-m", "pip", "install", "-q", "--disable-pip-version-check", "dvc"])
    return dvc


# -- projects ---------------------------------------------------------------------------------
def dvc_project(root: Path, dvc: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "in.txt").write_text("conveyor benchmark input\n" * 10)
    lines = ["stages:"]
    for i in range(n):
        src = "in.txt" if i == 0 else f"out{i - 1}.txt"
        lines += [
            f"  s{i}:",
            f"    cmd: cp {src} out{i}.txt",
            f"    deps: [{src}]",
            f"    outs: [out{i}.txt]",
        ]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    sh(["git", "init", "-q"], root)
    sh([dvc, "init", "-q"], root)
    sh([dvc, "config", "core.analytics", "false"], root)
    sh([dvc, "config", "core.check_update", "false"], root)
    sh([dvc, "repro", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "dvc bench project"], root)


def conveyor_project(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "in.txt").write_text("conveyor benchmark input\n" * 10)
    lines = ["name: bench", "pipelines:", "  chain: pipelines/chain.py:chain", "  cmds:"]
    lines.append("    steps:")
    for i in range(n):
        src = "in.txt" if i == 0 else f"out{i - 1}.txt"
        lines.append(
            f"      - {{name: s{i}, cmd: [cp, {src}, out{i}.txt], deps: [{src}], "
            f"outs: [out{i}.txt]}}"
        )
    (root / "conveyor.yaml").write_text("\n".join(lines) + "\n")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "__init__.py").write_text("")
    (root / "pipelines" / "chain.py").write_text(chain_source(n))
    (root / ".gitignore").write_text(".conveyor/\n__pycache__/\nout*.txt\n")
    sh(["git", "init", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "conveyor bench project"], root)
    for pipeline in ("cmds", "chain"):
        sh([CONVEYOR, "run", pipeline], root)


def chain_source(n: int) -> str:
    lines = ["from conveyor import pipeline, step", "", ""]
    lines += ["@step", "def s0(x: int = 0) -> int:", "    return x", "", ""]
    for i in range(1, n):
        lines += ["@step", f"def s{i}(x: int) -> int:", "    return x + 1", "", ""]
    lines += ["@pipeline", "def chain():", "    v = s0()"]
    lines += [f"    v = s{i}(v)" for i in range(1, n)]
    return "\n".join(lines) + "\n"


# -- checks of the timed commands -------------------------------------------------------------
def check_dvc(proc: subprocess.CompletedProcess[str]) -> None:
    text = proc.stdout + proc.stderr
    if "up to date" not in text or re.search(r"Running stage", text):
        raise SystemExit(f"dvc repro was not up to date:\n{text}")


def check_conveyor(n: int) -> object:
    def check(proc: subprocess.CompletedProcess[str]) -> None:
        statuses = [s["status"] for s in json.loads(proc.stdout)["steps"]]
        if len(statuses) != n or set(statuses) != {"cached"}:
            raise SystemExit(f"conveyor run was not fully cached: {statuses}")

    return check


def timed(argv: list[str | Path], cwd: Path | None, check: object = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{proc.stdout}\n{proc.stderr}")
    if callable(check):
        check(proc)
    return elapsed


PHASES = """
import json, sys, time
t0 = time.perf_counter()
import conveyor.cli.main
t1 = time.perf_counter()
from pathlib import Path
from conveyor.engine.project import open_project
from conveyor.engine.run import RunOptions, run_pipeline
t2 = time.perf_counter()
project = open_project(Path.cwd())
t3 = time.perf_counter()
_ = project.metadata, project.artifacts
t4 = time.perf_counter()
outcome = run_pipeline(project, RunOptions(pipeline=sys.argv[1]))
t5 = time.perf_counter()
assert {str(s.status) for s in outcome.steps} == {"cached"}
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]))
"""


def phases(root: Path, pipeline: str, floor: float, repeat: int = 5) -> None:
    """Where the wall time of a cached ``conveyor run`` goes, in a fresh process each time."""
    names = [
        "import conveyor.cli.main (click)",
        "import engine (SQLAlchemy, pydantic, ...)",
        "open_project (read and validate conveyor.yaml)",
        "open stores (engine, schema check)",
        f"run_pipeline ({pipeline}, all cached)",
    ]
    runs = []
    for _ in range(repeat):
        proc = sh([PYTHON, "-c", PHASES, pipeline], root)
        runs.append(json.loads(proc.stdout))
    print(f"\n--- phases of a cached `conveyor run {pipeline}` (median of {repeat}, ms) ---")
    print(f"{floor * 1000:8.1f}  interpreter start-up (python -c pass)")
    for i, name in enumerate(names):
        print(f"{statistics.median(r[i] for r in runs) * 1000:8.1f}  {name}")


def profile(root: Path, work: Path, top: int) -> None:
    """Import time and a cProfile of one cached ``conveyor run cmds`` in a fresh process."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "conveyor", "run", "cmds"],
        cwd=root,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []  # (cumulative us, module), children before parents as importtime prints them
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            rows.append((int(m.group(1)), m.group(2)))
    total = sum(us for us, name in rows if name == "conveyor.engine.run") or max(rows)[0]
    by_package: dict[str, int] = {}
    for us, name in rows:
        pkg = name if name.startswith("conveyor") else name.split(".")[0]
        by_package[pkg] = max(by_package.get(pkg, 0), us)
    print(
        f"\n--- python -X importtime, cached `conveyor run cmds`: importing "
        f"conveyor.engine.run took {total / 1e3:.0f} ms (inflated by -X importtime); top "
        f"{top} packages and conveyor modules by cumulative import ms ---"
    )
    for name, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{us / 1e3:8.1f}  {name}")

    out = work / "run.prof"
    subprocess.run(
        [PYTHON, "-m", "cProfile", "-o", out, "-m", "conveyor", "run", "cmds"],
        cwd=root,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    for pattern, title in ((r"src/conveyor", "in src/conveyor"), ("", "all functions")):
        buf = io.StringIO()
        stats = pstats.Stats(str(out), stream=buf)
        stats.sort_stats("cumulative")
        stats.print_stats(pattern, top) if pattern else stats.print_stats(top)
        text = buf.getvalue()
        start = text.find("   ncalls")
        print(f"\n--- cProfile of a cached `conveyor run cmds`; top {top} cumulative, {title} ---")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 stages, 3 rounds")
    parser.add_argument("--stages", type=int, default=None, help="stages per pipeline (50)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (10)")
    parser.add_argument("--profile", action="store_true", help="profile one conveyor run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    args = parser.parse_args()
    n = args.stages or (10 if args.quick else 50)
    rounds = args.rounds or (3 if args.quick else 10)

    dvc = ensure_dvc()
    dvc_version = sh([dvc, "--version"]).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="cvbench-cli-"))
    try:
        print(f"Up-to-date {n}-stage pipeline as a whole process; {rounds} interleaved rounds")
        print(f"DVC {dvc_version} ({dvc}); Conveyor {CONVEYOR}; projects under {work}")
        print(f"load average {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
        dvc_root, cv_root = work / "dvc", work / "conveyor"
        dvc_project(dvc_root, dvc, n)
        conveyor_project(cv_root, n)

        cases = {
            "dvc repro": ([dvc, "repro"], dvc_root, check_dvc),
            "conveyor run cmds": ([CONVEYOR, "run", "cmds", "--json"], cv_root, check_conveyor(n)),
            "conveyor run chain": (
                [CONVEYOR, "run", "chain", "--json"],
                cv_root,
                check_conveyor(n),
            ),
            "conveyor --help": ([CONVEYOR, "--help"], None, None),
            "python -c pass": ([PYTHON, "-c", "pass"], None, None),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for r in range(max(rounds, 10)):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                if r >= rounds and name not in ("conveyor --help", "python -c pass"):
                    continue  # --help and the floor always get 10 samples
                argv, cwd, check = cases[name]
                samples[name].append(timed(argv, cwd, check))

        med = {name: statistics.median(v) for name, v in samples.items()}
        print()
        print(f"{'command':<22}{'median s':>10}{'min s':>9}{'max s':>9}{'n':>4}{'vs dvc':>9}")
        print("-" * 63)
        for name, values in samples.items():
            ratio = med[name] / med["dvc repro"]
            print(
                f"{name:<22}{med[name]:>10.3f}{min(values):>9.3f}{max(values):>9.3f}"
                f"{len(values):>4}{ratio:>9.2f}"
            )
        floor = med["python -c pass"]
        print()
        print(
            f"reference: DVC 3-stage up to date took {DVC_3_STAGE_REFERENCE_S:.2f} s on the "
            "development machine"
        )
        print(f"interpreter floor (python -c pass): {floor:.3f} s")
        print()
        for name in ("conveyor run cmds", "conveyor run chain"):
            ratio = med[name] / med["dvc repro"]
            ok = "MET   " if ratio <= RATIO_TARGET else "MISSED"
            print(f"{name}: {med[name]:.3f} s = {ratio:.2f} x dvc repro  {ok} (target <= 0.33 x)")
        ok = "MET   " if med["conveyor --help"] <= HELP_TARGET_S else "MISSED"
        print(
            f"conveyor --help: {med['conveyor --help']:.3f} s  {ok} (target <= {HELP_TARGET_S} s)"
        )

        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        if args.profile:
            for pipeline in ("cmds", "chain"):
                phases(cv_root, pipeline, floor)
            profile(cv_root, work, 15)
    finally:
        if args.keep:
            print(f"\nprojects kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
