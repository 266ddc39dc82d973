"""`conveyor reproduce`: rebuild a run from its commit (and diff) and compare every digest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import conveyor, write_files

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from conveyor import pipeline, step
from lib.features import add_ratio


@step
def make(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.uniform(1, 2, size=n)})
    df["y"] = (df["a"] > 0).astype(int)
    return df


@step
def features(df: pd.DataFrame) -> pd.DataFrame:
    return add_ratio(df)


@step
def fit(df: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(random_state=0).fit(df[["a", "b", "ratio"]], df["y"])


@step
def noise(df: pd.DataFrame, unseeded: bool = False) -> list:
    import random
    return [random.random() if unseeded else 0.5, len(df)]


@pipeline
def main(n: int = 200):
    df = make(n=n)
    feats = features(df)
    fit(feats)
    noise(feats)
"""

FEATURES = """
def add_ratio(df):
    out = df.copy()
    out["ratio"] = out["a"] / out["b"]
    return out
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = write_files(
        tmp_path / "repo",
        {
            "project/conveyor.yaml": "name: r\npipelines:\n  main: pipelines/main.py:main\n",
            "project/pipelines/main.py": PIPELINE,
            "project/lib/__init__.py": "",
            "project/lib/features.py": FEATURES,
            ".gitignore": ".conveyor/\n__pycache__/\n",
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "init")
    return root / "project"


def run_json(project: Path, *args: str) -> dict:
    proc = conveyor("run", "--json", *args, cwd=project, check=True)
    return json.loads(proc.stdout)


def test_clean_run_reproduces_bit_for_bit_after_the_code_moved_on(repo: Path) -> None:
    original = run_json(repo, "-p", "n=150")
    # The working tree changes after the run; reproduce must use the recorded commit.
    (repo / "lib/features.py").write_text(FEATURES.replace("/ out", "* out"))
    proc = conveyor("reproduce", original["run_id"], cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "reproduced bit for bit" in proc.stdout
    report = json.loads(conveyor("reproduce", original["run_id"], "--json", cwd=repo).stdout)
    assert report["identical"] is True
    assert report["artifacts_compared"] == 4
    shown = json.loads(conveyor("runs", "show", report["reproduced"], "--json", cwd=repo).stdout)
    assert shown["reproduces"] == original["run_id"]
    assert shown["params"] == {"n": 150}


def test_dirty_tree_diff_is_recorded_and_applied(repo: Path) -> None:
    (repo / "lib/features.py").write_text(FEATURES.replace("/ out", "* out"))
    (repo / "lib/extra.py").write_text("UNTRACKED = True\n")
    original = run_json(repo)
    shown = json.loads(conveyor("runs", "show", original["run_id"], "--json", cwd=repo).stdout)
    assert shown["git_dirty"] is True and shown["git_diff_digest"]
    # Restore the committed code: only the stored diff can bring the change back.
    subprocess.run(["git", "checkout", "--", "."], cwd=repo, check=True)
    (repo / "lib/extra.py").unlink()
    report = json.loads(conveyor("reproduce", original["run_id"], "--json", cwd=repo).stdout)
    assert report["identical"] is True, report
    assert "applied the run's uncommitted diff" in report["notes"]


def test_nondeterministic_step_is_named_as_the_first_divergence(repo: Path) -> None:
    (repo / "conveyor.yaml").write_text(
        "name: r\npipelines:\n  main: pipelines/main.py:main\nparams:\n  unseeded: true\n"
    )
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "noise")
    original = run_json(repo)
    proc = conveyor("reproduce", original["run_id"], cwd=repo)
    assert proc.returncode == 1
    assert "diverges" in proc.stdout and "step 'noise', output 'output'" in proc.stdout


def test_lineage_of_the_model_reaches_params_commit_and_consumers(repo: Path) -> None:
    original = run_json(repo)
    model_digest = next(s for s in original["steps"] if s["name"] == "fit")["outputs"]["output"]
    data = json.loads(conveyor("lineage", model_digest[:10], "--json", cwd=repo).stdout)
    up = data["upstream"]
    assert up["step"] == "fit" and up["run_id"] == original["run_id"]
    assert up["commit"] and len(up["commit"]) == 40
    feats = up["upstream"][0]
    assert feats["step"] == "features"
    assert feats["upstream"][0]["step"] == "make"
    assert feats["upstream"][0]["params"] == {"n": 200, "seed": 0}

    feats_digest = feats["outputs"]["output"]
    down = json.loads(conveyor("lineage", feats_digest, "--json", cwd=repo).stdout)
    assert {d["step"] for d in down["downstream"]} == {"fit", "noise"}

    text = conveyor("lineage", "latest:fit", cwd=repo, check=True).stdout
    assert "make" in text and "n=200" in text and "commit" in text
