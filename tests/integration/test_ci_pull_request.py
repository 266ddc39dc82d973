"""`conveyor ci` on a pull request: a git repository with a main branch and three commits on a
feature branch (one improves the model, one degrades it past the gate, one breaks a unit test
of the feature logic), each checked against main, with the report posted as one sticky
comment to a local server standing in for the GitHub REST API."""

from __future__ import annotations

import json
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers import conveyor, write_files

pytestmark = pytest.mark.slow

CONFIG = """
name: tiny
pipelines:
  training: pipelines/training.py:training
params: {n_rows: 4000}
model: {name: tiny}
checks:
  model:
    label: label
    thresholds: {roc_auc: ">= 0.70"}
    champion: {metric: roc_auc, max_drop: 0.02, resamples: 200}
ci:
  sample: {rows: 1200}
  data: make_data
  serve: {enabled: false}
"""

FEATURES = """
def ratio(a: float, b: float) -> float:
    return a / b
"""

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from conveyor import pipeline, step
from conveyor.steps import evaluate_model, validate_model

from pipelines.features import ratio

FEATURES = {features}


@step
def make_data(n_rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n_rows, 3)), columns=["x1", "x2", "x3"])
    logit = 1.2 * df["x1"] + 2.0 * df["x2"] * ratio(1.0, 1.0)
    df["label"] = (logit + rng.normal(scale=0.8, size=n_rows) > 0).astype(int)
    return df


@step(outputs=("train", "test"))
def split(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(data) * 0.7)
    return data.iloc[:cut].reset_index(drop=True), data.iloc[cut:].reset_index(drop=True)


@step
def train(train: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(train[FEATURES], train["label"])


@step
def evaluation_rows(test: pd.DataFrame) -> pd.DataFrame:
    return test[["x1", "x2", "x3", "label"]]  # the model picks its own columns


@pipeline
def training(n_rows: int = 1000, seed: int = 0):
    data = make_data(n_rows=n_rows, seed=seed)
    train_set, test_set = split(data)
    model = train(train_set)
    rows = evaluation_rows(test_set)
    evaluate_model(model, rows, bootstrap=200)
    validate_model(model, rows)
"""

TEST = """
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.features import ratio  # noqa: E402


def test_ratio_divides():
    assert ratio(3.0, 4.0) == 0.75
"""


class FakeGitHub:
    """Issue comments of one pull request, kept in memory; every request is recorded."""

    def __init__(self) -> None:
        self.comments: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                return body

            def do_GET(self) -> None:
                self._record()
                page = 1 if "page=1" in self.path else 2
                self._send(200, fake.comments if page == 1 else [])

            def do_POST(self) -> None:
                body = self._record()
                comment = {"id": 1000 + len(fake.comments), "body": body["body"]}
                fake.comments.append(comment)
                self._send(201, comment)

            def do_PATCH(self) -> None:
                body = self._record()
                ident = int(self.path.rsplit("/", 1)[1])
                for comment in fake.comments:
                    if comment["id"] == ident:
                        comment["body"] = body["body"]
                        self._send(200, comment)
                        return
                self._send(404, {"message": "Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class CIRun:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    junit: ET.Element
    markdown: str


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def commit(root: Path, files: dict[str, str], message: str) -> str:
    write_files(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, CIRun], FakeGitHub]]:
    root = tmp_path_factory.mktemp("pr") / "repo"
    write_files(
        root,
        {
            "conveyor.yaml": CONFIG,
            "pipelines/__init__.py": "",
            "pipelines/features.py": FEATURES,
            "pipelines/training.py": PIPELINE.format(features='["x1"]'),
            "tests/test_features.py": TEST,
            ".gitignore": ".conveyor/\n__pycache__/\n",
        },
    )
    git(root, "init", "-q", "-b", "main")
    commit(root, {}, "main: one feature")
    git(root, "checkout", "-q", "-b", "feature")
    shas = {
        "improves": commit(
            root,
            {"pipelines/training.py": PIPELINE.format(features='["x1", "x2"]')},
            "use x2 too",
        ),
        "degrades": commit(
            root, {"pipelines/training.py": PIPELINE.format(features='["x3"]')}, "only x3"
        ),
    }
    git(root, "checkout", "-q", shas["improves"])
    shas["breaks_test"] = commit(
        root,
        {"pipelines/features.py": FEATURES.replace("a / b", "a / b if b == 1 else b / a")},
        "a feature-logic bug",
    )
    github = FakeGitHub()
    summary = root.parent / "summary.md"
    env = {
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": "ghs_secret-token-value",
        "GITHUB_REPOSITORY": "acme/tiny",
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_EVENT_PATH": "",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    found = {}
    try:
        for name in ("improves", "degrades", "breaks_test"):
            git(root, "checkout", "-q", shas[name])
            proc = conveyor("ci", "--base", "main", cwd=root, env=env)
            out = root / ".conveyor" / "ci"
            found[name] = CIRun(
                code=proc.returncode,
                stdout=proc.stdout,
                stderr=proc.stderr,
                report=json.loads((out / "result.json").read_text()),
                junit=ET.parse(out / "junit.xml").getroot(),
                markdown=(out / "report.md").read_text(),
            )
        found["summary"] = CIRun(0, summary.read_text(), "", {}, ET.Element("x"), "")
        yield found, github
    finally:
        github.close()


def _check(run: CIRun, name: str) -> dict[str, Any]:
    checks = [c for s in run.report["stages"] for c in s["checks"] if c["name"] == name]
    assert checks, (
        f"no check {name}: {[c['name'] for s in run.report['stages'] for c in s['checks']]}"
    )
    return checks[0]


def test_a_commit_that_improves_the_model_passes(runs: tuple[dict[str, CIRun], FakeGitHub]) -> None:
    run = runs[0]["improves"]
    assert run.code == 0, run.stderr
    assert run.report["passed"] is True
    assert run.report["baseline"]["source"] == "computed"
    assert "computed at the merge-base" in run.markdown
    assert run.markdown.startswith("<!-- conveyor-ci -->\n## ✅ Conveyor CI passed")
    champion = _check(run, "baseline_champion:roc_auc")
    assert champion["passed"] and champion["metrics"]["difference"] > 0.05
    roc = next(m for m in run.report["comparison"]["metrics"] if m["name"] == "roc_auc")
    assert roc["candidate"] > roc["baseline"] and roc["low"] is not None
    assert "▲" in run.markdown and "better" in run.markdown
    assert "train.features" not in run.markdown  # code changed, not params
    assert {s["name"]: s["status"] for s in run.report["stages"]} == {
        "tests": "passed",
        "pipeline": "passed",
        "baseline": "passed",
        "data": "passed",
        "model": "passed",
        "serving": "skipped",
    }
    assert "ghs_secret" not in run.stdout + run.stderr


def test_a_commit_that_degrades_the_model_past_the_gate_fails(
    runs: tuple[dict[str, CIRun], FakeGitHub],
) -> None:
    run = runs[0]["degrades"]
    assert run.code == 1, run.stderr
    assert run.report["baseline"]["source"] == "store"  # the run computed for the first commit
    assert "found in the metadata store" in run.markdown
    threshold = _check(run, "validate_model/threshold:roc_auc")
    assert not threshold["passed"] and threshold["severity"] == "error"
    assert run.markdown.splitlines()[1].startswith("## ❌ Conveyor CI failed")
    why = run.markdown.split("### Why it failed", 1)[1].split("###", 1)[0]
    assert "`validate_model/threshold:roc_auc`: roc\\_auc 0.4" in why and "&lt; 0.7" in why
    champion = _check(run, "baseline_champion:roc_auc")
    assert not champion["passed"] and "worse by more than 0.02" in champion["message"]
    assert "▼" in run.markdown and "worse" in run.markdown
    assert "conveyor ci failed" in run.stderr


def test_a_commit_that_breaks_a_unit_test_fails_and_names_it(
    runs: tuple[dict[str, CIRun], FakeGitHub],
) -> None:
    run = runs[0]["breaks_test"]
    assert run.code == 1, run.stderr
    tests = next(s for s in run.report["stages"] if s["name"] == "tests")
    assert tests["status"] == "failed"
    failed = [c for c in tests["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["tests.test_features::test_ratio_divides"]
    why = run.markdown.split("### Why it failed", 1)[1].split("###", 1)[0]
    assert "`tests.test_features::test_ratio_divides`: assert" in why


def test_junit_counts_match_the_checks(runs: tuple[dict[str, CIRun], FakeGitHub]) -> None:
    for name in ("improves", "degrades", "breaks_test"):
        run = runs[0][name]
        checks = [c for s in run.report["stages"] for c in s["checks"]]
        blocking = [c for c in checks if not c["passed"] and c["severity"] == "error"]
        skipped_stages = [s for s in run.report["stages"] if s["status"] == "skipped"]
        cases = run.junit.findall(".//testcase")
        assert int(run.junit.get("tests")) == len(cases) == len(checks) + len(skipped_stages)
        assert int(run.junit.get("failures")) == len(run.junit.findall(".//failure"))
        assert len(run.junit.findall(".//failure")) == len(blocking)
        assert len(run.junit.findall(".//skipped")) == len(skipped_stages)
        assert (len(blocking) > 0) == (run.code == 1)


def test_one_sticky_comment_is_created_then_updated(
    runs: tuple[dict[str, CIRun], FakeGitHub],
) -> None:
    found, github = runs
    writes = [r for r in github.requests if r["method"] in ("POST", "PATCH")]
    assert [r["method"] for r in writes] == ["POST", "PATCH", "PATCH"]
    assert writes[0]["path"] == "/repos/acme/tiny/issues/7/comments"
    assert {r["path"] for r in writes[1:]} == {"/repos/acme/tiny/issues/comments/1000"}
    assert len(github.comments) == 1
    assert github.comments[0]["body"] == found["breaks_test"].markdown
    for r in github.requests:
        assert r["headers"]["authorization"] == "Bearer ghs_secret-token-value"
        assert r["headers"]["accept"] == "application/vnd.github+json"
        assert r["headers"]["x-github-api-version"] == "2022-11-28"
        if r["method"] != "GET":
            assert set(r["body"]) == {"body"} and isinstance(r["body"]["body"], str)
            assert r["headers"]["content-type"] == "application/json"
    gets = [r for r in github.requests if r["method"] == "GET"]
    assert all(r["path"].startswith("/repos/acme/tiny/issues/7/comments?") for r in gets)
    assert found["summary"].stdout.count("<!-- conveyor-ci -->") == 3  # appended each run
