"""How long `conveyor ci` takes on the credit-risk example: cold (empty .conveyor, so the
pipeline, the baseline at the merge-base and the package are all built) and warm (the same
commit again: every step cached, the baseline found in the metadata store by commit).

The example is copied to a temporary directory and made a git repository with a `main`
branch and a feature branch one commit ahead (a comment in the pipeline), so the baseline is
the merge-base's run. Targets: cold <= 60 s, warm <= 15 s on the 2-CPU machine these were
written on. Prints figures and the time of every stage; never fails.

    .venv/bin/python benchmarks/ci_speed.py [--quick] [--profile] [--keep] [--no-serve]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "credit-risk"
TARGETS = {"cold": 60.0, "warm": 15.0}


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def make_repo(workdir: Path) -> Path:
    root = workdir / "credit-risk"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".conveyor", "__pycache__"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "main")
    git(root, "checkout", "-q", "-b", "feature")
    pipeline = root / "pipelines" / "training.py"
    pipeline.write_text(pipeline.read_text() + "\n# a change on the feature branch\n")
    git(root, "commit", "-q", "-am", "feature")
    return root


def run_ci(root: Path, extra: list[str]) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "NO_COLOR": "1"}
    for var in ("GITHUB_TOKEN", "GITLAB_TOKEN", "GITHUB_STEP_SUMMARY"):
        env.pop(var, None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor", "ci", "--json", *extra],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        print(proc.stderr[-3000:])
        raise SystemExit(f"conveyor ci exited {proc.returncode}")
    result: dict[str, object] = json.loads(proc.stdout)
    return elapsed, result


def show(label: str, elapsed: float, result: dict[str, object]) -> None:
    target = TARGETS[label]
    verdict = "meets" if elapsed <= target else "MISSES"
    print(
        f"{label:<5} {elapsed:6.1f} s wall   ({verdict} the {target:g} s target; "
        f"ci passed: {result['passed']})"
    )
    stages = result["stages"]
    assert isinstance(stages, list)
    for stage in stages:
        print(f"        {stage['name']:<9} {stage['status']:<8} {stage['duration_s']:6.1f} s")
    baseline = result["baseline"]
    assert isinstance(baseline, dict)
    print(f"        baseline: {baseline['description']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the serving stage")
    parser.add_argument("--no-serve", action="store_true", help="skip the serving stage")
    parser.add_argument("--profile", action="store_true", help="print conveyor's stderr too")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository")
    args = parser.parse_args()
    extra = ["--no-serve"] if args.quick or args.no_serve else []
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-ci-bench-"))
    try:
        root = make_repo(workdir)
        cold = run_ci(root, extra)
        show("cold", *cold)
        warm = run_ci(root, extra)
        show("warm", *warm)
        print(f"warm / cold: {warm[0] / cold[0]:.2f}")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
