"""Stage 1: the team's pytest suite, in a child process, with the ``conveyor.testing`` plugin.

Every test becomes a check result (kind ``test``), read back from the JUnit XML pytest
writes, so the CI report and its own JUnit file name each failing test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from conveyor.core.checks import CheckResult
from conveyor.errors import ConfigError

NO_TESTS_COLLECTED = 5
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MAX_MESSAGE = 2000


def test_paths(root: Path, configured: Sequence[str] | None) -> list[str]:
    """The test paths of the project, each checked to lie inside it."""
    if configured is None:
        return ["tests"] if (root / "tests").is_dir() else []
    base = root.resolve()
    for rel in configured:
        if not (base / rel).resolve().is_relative_to(base):
            raise ConfigError(f"ci.tests: '{rel}' is outside the project")
        if not (base / rel).exists():
            raise ConfigError(
                f"ci.tests: '{rel}' does not exist in {root}",
                hint="list test files or directories relative to the project directory",
            )
    return list(configured)


class PytestRun:
    """pytest running in a child process; :meth:`wait` gives its results. It runs while the
    pipeline stages run in this process, so the suite's time overlaps theirs."""

    def __init__(
        self, root: Path, paths: Sequence[str], extra: Sequence[str], timeout_s: float
    ) -> None:
        self.paths, self.timeout_s = list(paths), timeout_s
        self.tmp = tempfile.TemporaryDirectory(prefix="conveyor-pytest-")
        self.junit = Path(self.tmp.name) / "junit.xml"
        self.output = open(Path(self.tmp.name) / "output.txt", "w+b")  # noqa: SIM115
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={self.junit}",
            *extra,
            "--",
            *paths,
        ]
        self.started = time.monotonic()
        # One thread per native library: the suite shares the CPUs with the pipeline stage,
        # and OpenMP threads that outnumber the CPUs spin instead of working.
        env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}
        self.proc = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=self.output,
        )

    def done(self) -> bool:
        return self.proc.poll() is not None

    def wait(self) -> tuple[list[CheckResult], list[str], float]:
        """(one result per test, notes, seconds the suite took). Always cleans up."""
        try:
            left = self.timeout_s - (time.monotonic() - self.started)
            try:
                code = self.proc.wait(timeout=max(left, 0.1))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                message = f"timed out after {self.timeout_s:g} s (ci.timeout)"
                failed = CheckResult(name="pytest", kind="test", passed=False, message=message)
                return [failed], [], time.monotonic() - self.started
            elapsed = time.monotonic() - self.started
            results = parse_junit(self.junit) if self.junit.is_file() else []
            if code == NO_TESTS_COLLECTED:
                return [], [f"pytest collected no tests in {', '.join(self.paths)}"], elapsed
            if code != 0 and all(r.passed for r in results):
                self.output.seek(0)
                text = self.output.read().decode("utf-8", errors="replace")
                tail = "\n".join(text.strip().splitlines()[-15:])
                message = f"pytest exited {code}: {tail}"[-MAX_MESSAGE:]
                results.append(
                    CheckResult(name="pytest", kind="test", passed=False, message=message)
                )
            return results, [], elapsed
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.output.closed:
            self.output.close()
            self.tmp.cleanup()


def parse_junit(path: Path) -> list[CheckResult]:
    """One result per ``testcase`` of a JUnit XML file written by pytest."""
    tree = ET.parse(path)  # noqa: S314 - our own child process wrote it
    results = []
    for case in tree.iter("testcase"):
        name = "::".join(p for p in (case.get("classname", ""), case.get("name", "")) if p)
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            trace = (problem.text or "").strip()
            message = problem.get("message") or (trace.splitlines() or ["failed"])[-1]
            results.append(
                CheckResult(
                    name=name,
                    kind="test",
                    passed=False,
                    message=message[:MAX_MESSAGE],
                    metrics={"time_s": float(case.get("time") or 0)},
                    details={"traceback": trace[-MAX_MESSAGE * 4 :]},
                )
            )
        else:
            results.append(
                CheckResult(
                    name=name,
                    kind="test",
                    passed=True,
                    message="skipped: " + (skipped.get("message") or "")
                    if skipped is not None
                    else "",
                    metrics={"time_s": float(case.get("time") or 0)},
                )
            )
    return results
