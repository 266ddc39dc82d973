"""Faults a run must survive: SIGKILL, Ctrl-C, races, lost leases, corrupt blobs, raising steps.

Every test drives the real ``conveyor`` command in its own process (or the library in-process
where only the outcome matters) and then inspects the stores as an operator would: the
objects on disk must verify, the metadata must tell the truth about what happened, and the
next run must pick up cleanly from what was left.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from integration.faults_support import (
    BlobAudit,
    KillPoint,
    StoreWatch,
    artifacts_dir,
    background,
    cli_json,
    query,
    run_json,
    step_statuses,
    strike,
)

# -- 1. SIGKILL at random moments ------------------------------------------------------------
BIG_PIPELINE = """
import numpy as np
import pandas as pd
from conveyor import pipeline, step

ROWS = 3_300_000  # x 4 float64 columns: a ~105 MB Parquet file of incompressible numbers


@step
def prepare(trial: int = 0) -> dict:
    return {"trial": trial, "rows": ROWS}


@step
def big(spec: dict) -> pd.DataFrame:
    rng = np.random.default_rng(spec["trial"])
    return pd.DataFrame(rng.random((spec["rows"], 4)), columns=["a", "b", "c", "d"])


@step
def summarize(frame: pd.DataFrame) -> dict:
    return {"rows": len(frame), "mean_a": float(frame["a"].mean())}


@pipeline
def main(trial: int = 0):
    summarize(big(prepare(trial=trial)))
"""


def kill_plan(seed: int = 20240611) -> list[KillPoint]:
    """20 deterministic kill points spanning a run: start-up, each step, the big write."""
    rng = random.Random(seed)
    plan = [KillPoint("after", 0.0)]  # before the run is even recorded
    plan += [KillPoint("after", rng.uniform(0.05, 0.9)) for _ in range(8)]
    plan += [KillPoint("staged", rng.uniform(0.05, 0.95)) for _ in range(6)]
    plan += [KillPoint("staged", 1.0) for _ in range(2)]  # hashing, renaming
    plan += [KillPoint("stored", rng.uniform(0.0, 0.3)) for _ in range(3)]  # between steps
    rng.shuffle(plan)
    return plan


def _new_run(root: Path, known: set[str]) -> str | None:
    """The id of the run a trial recorded, if it got that far before it was killed."""
    ids = {r.id for r in query(root, "SELECT id FROM runs")}
    new = ids - known
    assert len(new) <= 1, f"one process recorded {len(new)} runs: {sorted(new)}"
    known.update(new)
    return new.pop() if new else None


def _check_not_left_running(root: Path, run_id: str) -> str:
    """``conveyor runs list`` reports the trial's run as finished, never as running."""
    (run,) = [r for r in cli_json(root, "runs", "list", "-n", "1000") if r["id"] == run_id]
    assert run["status"] in ("failed", "succeeded"), run
    if run["status"] == "failed":
        assert "stopped without finishing" in run["error"], run
    running = query(root, "SELECT name FROM step_runs WHERE status = 'running'")
    assert not running, f"step runs left running: {running}"
    return str(run["status"])


def _check_outputs_verify(root: Path, stored: set[str]) -> None:
    """Every output recorded for a successful step has a blob, and the blob verifies."""
    rows = query(
        root,
        "SELECT o.digest, s.run_id, s.name FROM step_outputs o "
        "JOIN step_runs s ON s.id = o.step_run_id WHERE s.status IN ('succeeded', 'cached')",
    )
    missing = [tuple(r) for r in rows if r.digest not in stored]
    assert not missing, f"metadata points at blobs that do not exist: {missing}"


@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts_the_stores(make_sqlite_project) -> None:
    """SIGKILL anywhere, even halfway through writing a 100 MB artifact, leaves no partial
    object under a final key and no run reported as running; runs afterwards succeed."""
    root = make_sqlite_project({"pipelines/main.py": BIG_PIPELINE})
    audit = BlobAudit(root)
    try:
        began = time.monotonic()
        done, first = run_json(root, "-p", "trial=0")
        run_s = time.monotonic() - began
        assert done.returncode == 0, done.describe()
        big_size = max(p.stat().st_size for p in (artifacts_dir(root) / "objects").glob("*/*"))
        known = {first["run_id"]}
        statuses: list[str] = []
        mid_write = 0
        for trial, point in enumerate(kill_plan(), start=1):
            watch = StoreWatch(root, big_size)
            with background(root, "run", "-p", f"trial={trial}") as proc:
                hit = strike(proc, point, watch, run_s)
            assert hit.killed or hit.result.returncode == 0, hit.result.describe()
            mid_write += 0 < hit.staged_bytes < big_size
            run_id = _new_run(root, known)
            if run_id is not None:
                statuses.append(_check_not_left_running(root, run_id))
            _check_outputs_verify(root, audit.digests())
            if trial % 10 == 0:
                again, out = run_json(root, "-p", f"trial={trial}")
                assert again.returncode == 0 and out["status"] == "succeeded", again.describe()
                known.add(out["run_id"])
        # What completed before all those faults is still served whole from the cache.
        again, out = run_json(root, "-p", "trial=0")
        assert again.returncode == 0, again.describe()
        assert step_statuses(out) == dict.fromkeys(step_statuses(first), "cached")
        _check_outputs_verify(root, audit.digests())
        assert statuses.count("failed") >= 10, statuses  # the kills really hit running runs
        assert mid_write >= 3, f"only {mid_write} kills landed inside the big write"
    finally:
        shutil.rmtree(artifacts_dir(root), ignore_errors=True)  # gigabytes of test data
