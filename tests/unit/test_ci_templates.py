"""`conveyor init --ci github|gitlab`: the workflow files are valid and hold the expected jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ci.templates import render_workflow, write_workflow
from conveyor.errors import UsageError
from helpers import conveyor

SCHEMA = Path(__file__).with_name("fixtures") / "github-workflow.schema.json"


def load_workflow(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as True; GitHub reads it as the string "on".
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def test_github_workflow_matches_the_schema_and_has_the_three_jobs() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path, text = render_workflow("github", pipeline="training")
    assert path == ".github/workflows/conveyor.yml"
    doc = load_workflow(text)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert set(doc["jobs"]) == {"ci", "release", "retrain"}
    assert set(doc["on"]) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert doc["permissions"]["pull-requests"] == "write"

    def runs(job: str) -> str:
        return "\n".join(s.get("run", "") for s in doc["jobs"][job]["steps"])

    def cached(job: str) -> set[str]:
        return {
            s["with"]["path"] for s in doc["jobs"][job]["steps"] if "cache@" in s.get("uses", "")
        }

    assert "conveyor ci --base origin/${{ github.base_ref }}" in runs("ci")
    assert doc["jobs"]["ci"]["if"] == "github.event_name == 'pull_request'"
    checkout = doc["jobs"]["ci"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0
    for job in ("release", "retrain"):
        assert "conveyor run training" in runs(job)
        assert 'conveyor promote "$ref" --to test' in runs(job)
    for job in ("ci", "release", "retrain"):
        assert cached(job) == {".venv", ".conveyor"}


def test_the_schema_rejects_a_broken_workflow() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    doc = load_workflow(render_workflow("github")[1])
    del doc["jobs"]["ci"]["runs-on"]
    with pytest.raises(jsonschema.ValidationError, match="runs-on"):
        jsonschema.validate(doc, schema)


def test_gitlab_pipeline_has_the_jobs_and_reports() -> None:
    path, text = render_workflow("gitlab")
    assert path == ".gitlab-ci.yml"
    doc = yaml.safe_load(text)
    assert {"conveyor-ci", "release", "retrain"} <= set(doc)
    ci = doc["conveyor-ci"]
    assert ci["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert ci["artifacts"]["reports"] == {
        "junit": ".conveyor/ci/junit.xml",
        "metrics": ".conveyor/ci/metrics.txt",
    }
    assert any("conveyor promote" in line for line in doc["release"]["script"])
    assert doc["retrain"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    assert {tuple(c["paths"]) for c in doc["cache"]} == {(".venv", ".cache/pip"), (".conveyor",)}


def test_init_ci_writes_the_workflow_once(tmp_path: Path) -> None:
    project = tmp_path / "p"
    created = conveyor("init", str(project), "--ci", "github", cwd=tmp_path, check=True)
    assert "project ready" in created.stdout
    assert (project / ".github/workflows/conveyor.yml").is_file()
    added = conveyor("init", str(project), "--ci", "gitlab", cwd=tmp_path, check=True)
    assert "gitlab workflow ready" in added.stdout and (project / ".gitlab-ci.yml").is_file()
    with pytest.raises(UsageError, match="already exists"):
        write_workflow(project, "github")
    again = conveyor("init", str(project), "--ci", "nope", cwd=tmp_path)
    assert again.returncode == 2
