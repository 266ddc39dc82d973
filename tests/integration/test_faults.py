"""Faults a run must survive: SIGKILL, Ctrl-C, races, lost leases, corrupt blobs, raising steps.

Every test drives the real ``conveyor`` command in its own process (or the library in-process
where only the outcome matters) and then inspects the stores as an operator would: the
objects on disk must verify, the metadata must tell the truth about what happened, and the
next run must pick up cleanly from what was left.
"""

from __future__ import annotations

import random
import shutil
import signal
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from conveyor.store import tables
from helpers import conveyor, open_and_run, write_files
from integration.faults_support import (
    SIGNALS_SNIPPET,
    Background,
    BlobAudit,
    KillPoint,
    StoreWatch,
    artifacts_dir,
    background,
    cli_json,
    execute,
    object_path,
    query,
    release,
    run_json,
    sha256_of,
    started_flag,
    step_statuses,
    strike,
    wait_until,
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
    plan += [KillPoint("stored", 0.0), KillPoint("stored", 0.0)]  # blob stored, not recorded
    plan += [KillPoint("stored", rng.uniform(0.0, 0.3))]  # between steps
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


# -- 2. two identical runs at the same moment ------------------------------------------------
RACE_PIPELINE = """
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from conveyor import log_metrics, pipeline, step

MEETING = Path(__file__).resolve().parents[1] / "meeting"


@step
def meet(n: int = 20_000) -> pd.DataFrame:
    # Both runs wait here for each other, so both execute every step side by side.
    MEETING.mkdir(exist_ok=True)
    (MEETING / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(MEETING.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other run never arrived")
        time.sleep(0.01)
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 5, n)})


@step(outputs=("train", "test"))
def split(df: pd.DataFrame, frac: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(df) * frac)
    return df.iloc[:cut], df.iloc[cut:]


@step
def fit(train: pd.DataFrame) -> np.ndarray:
    return train.groupby("g")["x"].mean().to_numpy()


@step
def score(model: np.ndarray, test: pd.DataFrame) -> dict:
    err = float(((test["x"] - model[test["g"].to_numpy()]) ** 2).mean())
    log_metrics({"mse": err})
    return {"mse": err}


@pipeline
def main(frac: float = 0.8):
    train, test = split(meet(), frac=frac)
    score(fit(train), test)
"""

RACE_STEPS = {"meet", "split", "fit", "score"}


def _duplicates(root: Path, table: str, columns: str) -> list[tuple]:
    sql = f"SELECT {columns}, COUNT(*) FROM {table} GROUP BY {columns} HAVING COUNT(*) > 1"
    return [tuple(r) for r in query(root, sql)]


def test_two_identical_runs_started_together_both_succeed_without_duplicates(
    make_project,
) -> None:
    """Two `conveyor run` on a fresh project race to create the schema, to write the same
    blobs and the same artifact rows; both succeed and the metadata has no duplicates."""
    root = make_project({"pipelines/main.py": RACE_PIPELINE})
    with background(root, "run", "--json") as one, background(root, "run", "--json") as two:
        results = [one.wait(), two.wait()]
    for done in results:
        assert done.returncode == 0, done.describe()

    runs = cli_json(root, "runs", "list")
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"], runs
    assert len({r["id"] for r in runs}) == 2
    assert _duplicates(root, "artifacts", "digest") == []
    assert _duplicates(root, "step_runs", "run_id, name") == []
    assert _duplicates(root, "params", "run_id, scope, key") == []
    assert _duplicates(root, "metrics", "run_id, step, key") == []
    assert len(query(root, "SELECT version_num FROM alembic_version")) == 1
    for run in runs:
        steps = query(root, "SELECT name FROM step_runs WHERE run_id = :r", r=run["id"])
        assert sorted(s.name for s in steps) == sorted(RACE_STEPS)
        params = query(root, "SELECT scope, key FROM params WHERE run_id = :r", r=run["id"])
        assert sorted(tuple(p) for p in params) == [
            ("", "frac"),
            ("meet", "n"),
            ("split", "frac"),
        ]
    # Both runs computed ``meet`` themselves, at the same time, and stored the same bytes.
    meets = query(root, "SELECT status FROM step_runs WHERE name = 'meet'")
    assert [m.status for m in meets] == ["succeeded", "succeeded"]

    stored = BlobAudit(root).digests()
    referenced = query(root, "SELECT digest FROM step_outputs UNION SELECT digest FROM step_inputs")
    assert {r.digest for r in referenced} <= stored
    rows = {r.digest for r in query(root, "SELECT digest FROM artifacts")}
    assert {r.digest for r in referenced} <= rows


# -- 3. leases -------------------------------------------------------------------------------
SLEEPY_PIPELINE = (
    SIGNALS_SNIPPET
    + """
from conveyor import pipeline, step


@step
def load(n: int = 50) -> list:
    return list(range(n))


@step
def clean(values: list) -> list:
    return [v for v in values if v % 7]


@step
def nap(values: list) -> int:
    wait_for_release("nap")
    return sum(values)


@step
def report(total: int) -> dict:
    return {"total": total}


@pipeline
def main():
    report(nap(clean(load())))
"""
)


def _the_run(root: Path) -> tuple[str, str]:
    """(id, status) of the only run, straight from the database (no command reaps it)."""
    (row,) = query(root, "SELECT id, status FROM runs")
    return row.id, row.status


def _shown(root: Path, run_id: str) -> tuple[dict, dict[str, dict]]:
    """``conveyor runs show RUN --json`` as (run, {step: step record})."""
    run = cli_json(root, "runs", "show", run_id)
    return run, {s["name"]: s for s in run["steps"]}


def _start_and_park(root: Path, proc: Background) -> str:
    """Wait until the run sits in step ``nap``; return its id."""
    wait_until(started_flag(root, "nap").exists, "step nap started", proc)
    run_id, status = _the_run(root)
    assert status == "running"
    return run_id


def test_sigkilled_run_is_reported_failed_by_the_next_command(make_project) -> None:
    """A run whose process died is marked failed (not left running) by the next command
    that looks, with an error saying it stopped without finishing; its finished steps are
    reused by the next run."""
    root = make_project({"pipelines/main.py": SLEEPY_PIPELINE})
    with background(root, "run") as proc:
        run_id = _start_and_park(root, proc)
        assert proc.kill().returncode == -signal.SIGKILL
    assert _the_run(root) == (run_id, "running")  # nothing has looked at it yet

    run, steps = _shown(root, run_id)
    assert run["status"] == "failed"
    assert "the run stopped without finishing: its process is gone" in run["error"]
    assert steps["load"]["status"] == steps["clean"]["status"] == "succeeded"
    assert steps["nap"]["status"] == "failed"
    assert "interrupted" in steps["nap"]["error"]
    assert "report" not in steps
    human = conveyor("runs", "show", run_id, cwd=root, check=True).stdout
    assert "stopped without finishing" in human

    release(root, "nap")
    done, again = run_json(root)
    assert done.returncode == 0, done.describe()
    assert step_statuses(again) == {
        "load": "cached",
        "clean": "cached",
        "nap": "succeeded",
        "report": "succeeded",
    }


def _set_lease(root: Path, run_id: str, owner: str, beat: datetime) -> None:
    stmt = sa.update(tables.runs).where(tables.runs.c.id == run_id)
    assert execute(root, stmt.values(lease_owner=owner, heartbeat_at=beat)) == 1


def test_run_of_another_host_is_reaped_only_once_its_heartbeat_is_stale(make_project) -> None:
    """A run owned by a process on another machine cannot be checked by pid: it stays
    running while its heartbeat is fresh and is reaped as failed once the heartbeat is
    older than the lease allows."""
    root = make_project({"pipelines/main.py": SLEEPY_PIPELINE})
    with background(root, "run") as proc:
        run_id = _start_and_park(root, proc)
        proc.kill()
    elsewhere = "build-agent-7.example:4242:0badc0de"  # host:pid:token of a remote owner

    _set_lease(root, run_id, elsewhere, datetime.now(UTC))
    run, steps = _shown(root, run_id)
    assert run["status"] == "running", run
    assert steps["nap"]["status"] == "running"

    _set_lease(root, run_id, elsewhere, datetime.now(UTC) - timedelta(hours=1))
    (listed,) = [r for r in cli_json(root, "runs", "list") if r["id"] == run_id]
    assert listed["status"] == "failed"
    assert "the run stopped without finishing: no heartbeat since" in listed["error"]
    _, steps = _shown(root, run_id)
    assert steps["nap"]["status"] == "failed"


def _lease_renewed_for(root: Path, run_id: str) -> float:
    """Seconds between the run's start and its latest heartbeat."""
    runs = tables.runs
    (row,) = query(
        root, sa.select(runs.c.started_at, runs.c.heartbeat_at).where(runs.c.id == run_id)
    )
    return float((row.heartbeat_at - row.started_at).total_seconds())


def _sleepy_project(make_project, heartbeat_s: float) -> Path:
    config = f"""
        name: test
        pipelines:
          main: pipelines/main.py:main
        heartbeat_seconds: {heartbeat_s}
    """
    return make_project(
        {"pipelines/main.py": SLEEPY_PIPELINE}, config=textwrap.dedent(config).lstrip()
    )


def test_live_run_is_not_reaped_by_a_concurrent_command(make_project) -> None:
    """While a step runs for longer than the lease TTL, the heartbeat keeps the run alive:
    `conveyor runs list` / `runs show` from another process report it running, and the
    run then finishes as succeeded."""
    beat = 0.4
    root = _sleepy_project(make_project, beat)
    with background(root, "run") as proc:
        run_id = _start_and_park(root, proc)
        # The lease TTL is 6 beats: from 9 beats on, only the heartbeat keeps the run alive.
        wait_until(lambda: _lease_renewed_for(root, run_id) > 9 * beat, "lease renewed", proc)
        (listed,) = [r for r in cli_json(root, "runs", "list") if r["id"] == run_id]
        assert listed["status"] == "running", listed
        run, steps = _shown(root, run_id)
        assert run["status"] == "running" and steps["nap"]["status"] == "running"
        assert proc.running()
        release(root, "nap")
        done = proc.wait()
    assert done.returncode == 0, done.describe()
    run, _ = _shown(root, run_id)
    assert run["status"] == "succeeded" and run["error"] is None


def test_run_that_lost_its_lease_is_not_resurrected(make_project) -> None:
    """Once a stale run has been reaped and reported as stopped without finishing, the
    process that held the lease may not come back and rewrite the run as succeeded."""
    root = _sleepy_project(make_project, 30)  # no beat of its own during the test
    with background(root, "run") as proc:
        run_id = _start_and_park(root, proc)
        # As if the process had been frozen for an hour (a suspended VM or container).
        stale = datetime.now(UTC) - timedelta(hours=1)
        runs = tables.runs
        assert execute(root, sa.update(runs).where(runs.c.id == run_id).values(heartbeat_at=stale))
        (listed,) = [r for r in cli_json(root, "runs", "list") if r["id"] == run_id]
        assert listed["status"] == "failed"
        assert "no heartbeat since" in listed["error"]
        release(root, "nap")
        done = proc.wait()
    run, _ = _shown(root, run_id)
    assert run["status"] == "failed", run
    assert done.returncode == 1, done.describe()
    assert "lost its lease" in done.stderr


# -- 4. Ctrl-C -------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_cancels_the_run_and_the_next_run_resumes(make_project, workers: str) -> None:
    """Ctrl-C while a step runs (in-process or in a worker): exit code 130, the run and that
    step are cancelled, and the next run reuses the steps that had completed."""
    root = make_project({"pipelines/main.py": SLEEPY_PIPELINE})
    with background(root, "run", "--workers", workers) as proc:
        run_id = _start_and_park(root, proc)
        proc.ctrl_c()
        done = proc.wait()
    assert done.returncode == 130, done.describe()
    assert f"run {run_id} cancelled" in done.stderr
    assert "Traceback" not in done.stderr

    run, steps = _shown(root, run_id)
    assert run["status"] == "cancelled"
    assert {name: s["status"] for name, s in steps.items()} == {
        "load": "succeeded",
        "clean": "succeeded",
        "nap": "cancelled",
    }

    release(root, "nap")
    done, again = run_json(root, "--workers", workers)
    assert done.returncode == 0, done.describe()
    assert step_statuses(again) == {
        "load": "cached",
        "clean": "cached",
        "nap": "succeeded",
        "report": "succeeded",
    }
    assert again["steps"][1]["outputs"] == steps["clean"]["outputs"]


# -- 5. corrupt and missing blobs ------------------------------------------------------------
CHAIN_PIPELINE = """
import numpy as np
import pandas as pd
from conveyor import pipeline, step


@step
def make(n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n)})


@step
def middle(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(z=df["x"].cumsum() - df["y"])


@step
def final(df: pd.DataFrame) -> dict:
    return {"z_last": float(df["z"].iloc[-1]), "rows": len(df)}


@pipeline
def main():
    final(middle(make()))
"""


def _flip_one_byte(path: Path) -> bytes:
    """Invert the byte in the middle of ``path``; returns the damaged content."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def _quarantined(root: Path) -> list[Path]:
    return sorted((artifacts_dir(root) / "quarantine").glob("*"))


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_damaged_blob_is_never_served_from_the_cache(make_project, damage: str) -> None:
    """A cached output whose blob has a flipped byte (or is gone) is a cache miss: the step
    re-runs with a warning naming the digest, a corrupt blob moves to quarantine/, and the
    recomputed blob verifies."""
    root = make_project({"pipelines/main.py": CHAIN_PIPELINE})
    first = open_and_run(root)
    digest = first.step("middle").outputs["output"].digest
    blob = object_path(root, digest)
    damaged = _flip_one_byte(blob) if damage == "flip" else blob.read_bytes()
    if damage == "delete":
        blob.unlink()

    done, again = run_json(root)
    assert done.returncode == 0, done.describe()
    assert step_statuses(again) == {"make": "cached", "middle": "succeeded", "final": "cached"}
    assert again["steps"][1]["outputs"] == {"output": digest}
    word = "corrupt" if damage == "flip" else "missing"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert any(digest[:12] in w and word in w and "middle" in w for w in warnings), done.stderr
    assert sha256_of(blob) == digest
    if damage == "flip":
        (moved,) = _quarantined(root)
        assert moved.name.startswith(digest) and moved.read_bytes() == damaged
    else:
        assert _quarantined(root) == []

    done, third = run_json(root)
    assert done.returncode == 0, done.describe()
    assert set(step_statuses(third).values()) == {"cached"}


def test_recomputing_the_same_bytes_repairs_a_corrupt_blob(make_project) -> None:
    """A step that re-runs (its code changed) and produces the bytes of a blob that was
    corrupted on disk must leave a blob that verifies: the store may not keep serving the
    corrupt copy under that digest."""
    root = make_project({"pipelines/main.py": CHAIN_PIPELINE})
    first = open_and_run(root)
    digest = first.step("middle").outputs["output"].digest
    _flip_one_byte(object_path(root, digest))
    # A comment changes middle's source (so its cache key), not the bytes it produces.
    edited = CHAIN_PIPELINE.replace(
        "    return df.assign(", "    # same result, new cache key\n    return df.assign("
    )
    write_files(root, {"pipelines/main.py": edited})

    again = open_and_run(root)
    assert again.step("middle").status == "succeeded"
    assert again.step("middle").outputs["output"].digest == digest
    assert sha256_of(object_path(root, digest)) == digest


# -- 6. a step that raises -------------------------------------------------------------------
RAISING_TRAIN = """
@step
def train(features: pd.DataFrame) -> dict:
    print(f"training on {len(features)} rows")
    raise ValueError("learning rate exploded at epoch 3")
"""

FIXED_TRAIN = """
@step
def train(features: pd.DataFrame) -> dict:
    print(f"training on {len(features)} rows")
    return {"weight": float(features["x2"].mean())}
"""

BRANCHING_PIPELINE = """
import numpy as np
import pandas as pd
from conveyor import pipeline, step


@step
def load(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"x": rng.normal(size=n)})


@step
def featurize(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(x2=df["x"] ** 2)

{train}

@step
def evaluate(model: dict) -> dict:
    return {"score": model["weight"] * 2}


@step
def profile(df: pd.DataFrame) -> dict:
    return {"mean": float(df["x"].mean()), "rows": len(df)}


@step
def publish(stats: dict) -> str:
    return f"{stats['rows']} rows, mean {stats['mean']:.3f}"


@pipeline
def main():
    df = load()
    evaluate(train(featurize(df)))
    publish(profile(df))
"""


def _recorded_digests(root: Path, run_id: str) -> set[str]:
    """Blobs a run's metadata accounts for: step outputs and captured logs."""
    outputs = query(
        root,
        "SELECT o.digest FROM step_outputs o JOIN step_runs s ON s.id = o.step_run_id "
        "WHERE s.run_id = :r",
        r=run_id,
    )
    logs = query(root, "SELECT logs_digest FROM step_runs WHERE run_id = :r", r=run_id)
    return {r.digest for r in outputs} | {r.logs_digest for r in logs if r.logs_digest}


def test_raising_step_fails_the_run_but_keeps_independent_work(make_project) -> None:
    """A step that raises fails the run (exit 1) with its traceback on record, stores
    nothing, skips what depends on it, lets the independent branch finish; once fixed, the
    next run reuses every step that succeeded and runs the rest."""
    root = make_project({"pipelines/main.py": BRANCHING_PIPELINE.replace("{train}", RAISING_TRAIN)})
    done, failed = run_json(root)
    assert done.returncode == 1, done.describe()
    assert failed["status"] == "failed"
    assert step_statuses(failed) == {
        "load": "succeeded",
        "featurize": "succeeded",
        "train": "failed",
        "evaluate": "skipped",
        "profile": "succeeded",
        "publish": "succeeded",
    }
    assert "ValueError: learning rate exploded at epoch 3" in done.stderr

    run_id = failed["run_id"]
    shown = conveyor("runs", "show", run_id, cwd=root, check=True).stdout
    assert "Traceback (most recent call last)" in shown
    assert "ValueError: learning rate exploded at epoch 3" in shown
    assert "pipelines/main.py" in shown and 'raise ValueError("learning rate' in shown
    run, steps = _shown(root, run_id)
    assert run["error"] == "step train failed"
    assert steps["train"]["outputs"] == {} and steps["evaluate"]["outputs"] == {}
    assert "upstream step train" in steps["evaluate"]["error"]
    train_outputs = query(
        root,
        "SELECT o.digest FROM step_outputs o JOIN step_runs s ON s.id = o.step_run_id "
        "WHERE s.name IN ('train', 'evaluate')",
    )
    assert train_outputs == []
    # Every blob on disk is a recorded output of a step that succeeded, or captured logs.
    assert BlobAudit(root).digests() == _recorded_digests(root, run_id)

    write_files(root, {"pipelines/main.py": BRANCHING_PIPELINE.replace("{train}", FIXED_TRAIN)})
    done, fixed = run_json(root)
    assert done.returncode == 0, done.describe()
    assert step_statuses(fixed) == {
        "load": "cached",
        "featurize": "cached",
        "train": "succeeded",
        "evaluate": "succeeded",
        "profile": "cached",
        "publish": "cached",
    }
