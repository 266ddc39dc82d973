"""The pytest plugin as a team uses it: fixtures in their own test suite, run by pytest."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import conveyor, write_files

TESTS = """
from conveyor.testing import assert_metric


def test_pipeline_on_a_sample(conveyor_run):
    run = conveyor_run(params={"n_rows": 300})
    assert run.succeeded
    assert len(run.artifact("make_data")) == 300
    train, test = run.artifact("split", "train"), run.artifact("split", "test")
    assert len(train) + len(test) == 300
    assert_metric(run, "roc_auc", ">= 0.8")


def test_same_sample_is_reused(conveyor_run):
    first = conveyor_run(params={"n_rows": 300})
    assert conveyor_run(params={"n_rows": 300}) is first


def test_artifact_of_the_projects_last_run(conveyor_artifact):
    metrics = conveyor_artifact("latest:evaluate")
    assert set(metrics) == {"accuracy", "roc_auc"}


def test_a_metric_that_misses(conveyor_run):
    assert_metric(conveyor_run(params={"n_rows": 300}), "roc_auc", ">= 0.99999")
"""


def test_fixtures_run_the_pipeline_in_stores_of_their_own(tmp_path: Path) -> None:
    project = tmp_path / "team"
    conveyor("init", str(project), cwd=tmp_path, check=True)
    write_files(project, {"tests/test_pipeline.py": TESTS})
    conveyor("run", cwd=project, check=True)  # the team's own last run, read by a fixture
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_pipeline.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 3 passed" in proc.stdout
    assert "expected >= 0.99999" in proc.stdout and "roc_auc = 0.9" in proc.stdout
    with sqlite3.connect(project / ".conveyor" / "conveyor.db") as db:
        (runs,) = db.execute("SELECT count(*) FROM runs").fetchone()
    assert runs == 1  # the sample runs went to stores of the test session, not the team's
