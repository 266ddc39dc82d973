"""Check results are recorded on the run; a blocking gate fails the step and the run."""

from __future__ import annotations

import json

from helpers import conveyor, open_and_run

PIPELINE = """
from conveyor import CheckResult, Severity, gate, pipeline, step


@step
def score(value: float = 0.9) -> float:
    return value


@step
def quality_gate(score: float, minimum: float = 0.8, policy: str = "blocking") -> dict:
    results = [
        CheckResult(name="score_minimum", kind="model", passed=score >= minimum,
                    metrics={"score": score}, message=f"score {score} vs minimum {minimum}"),
        CheckResult(name="advice", kind="model", passed=False, severity=Severity.WARNING,
                    message="a warning never blocks"),
    ]
    gate(results, name="quality", policy=policy)
    return {"blessed": True}


@step
def publish(verdict: dict) -> str:
    return "published"


@pipeline
def main(value: float = 0.9):
    publish(quality_gate(score(value=value)))
"""


def test_passing_gate_records_every_result(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE})
    outcome = open_and_run(root)
    assert outcome.status == "succeeded"
    shown = json.loads(conveyor("runs", "show", outcome.run_id, "--json", cwd=root).stdout)
    checks = {c["name"]: c for c in shown["checks"]}
    assert checks["score_minimum"]["passed"] is True
    assert checks["score_minimum"]["metrics"] == {"score": 0.9}
    assert checks["advice"]["passed"] is False and checks["advice"]["severity"] == "warning"

    again = open_and_run(root)
    assert {s.status for s in again.steps} == {"cached"}
    shown = json.loads(conveyor("runs", "show", again.run_id, "--json", cwd=root).stdout)
    assert {c["name"] for c in shown["checks"]} == {"score_minimum", "advice"}


def test_blocking_gate_fails_the_run_with_reasons_and_records_them(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE})
    proc = conveyor("run", "-p", "value=0.5", cwd=root)
    assert proc.returncode == 1
    assert "gate 'quality' failed" in proc.stderr
    shown = conveyor("runs", "show", "latest", cwd=root).stdout
    assert "score_minimum: score 0.5 vs minimum 0.8" in shown
    assert "checks: 0 passed, 2 failed" in shown
    data = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    steps = {s["name"]: s for s in data["steps"]}
    assert steps["quality_gate"]["status"] == "failed"
    assert steps["quality_gate"]["outputs"] == {}
    assert steps["publish"]["status"] == "skipped"
    assert [c["passed"] for c in data["checks"] if c["name"] == "score_minimum"] == [False]


def test_warning_policy_records_but_does_not_block(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE})
    outcome = open_and_run(root, params={"value": "0.5", "quality_gate.policy": "warning"})
    assert outcome.status == "succeeded"
