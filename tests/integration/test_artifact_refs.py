"""ArtifactRef params: a step names an artifact of another run; the key holds its digest."""

from __future__ import annotations

from helpers import conveyor, open_and_run

PIPELINES = """
from conveyor import ArtifactRef, load_artifact, pipeline, step


@step
def make(value: int = 3) -> dict:
    return {"value": value}


@step
def compare(current: dict, baseline: ArtifactRef = "") -> dict:
    old = load_artifact(baseline) if baseline else {"value": 0}
    return {"delta": current["value"] - old["value"]}


@pipeline
def produce(value: int = 3):
    make(value=value)


@pipeline
def check(value: int = 3):
    compare(make(value=value))
"""

CONFIG = """
name: refs
pipelines:
  produce: pipelines/main.py:produce
  check: pipelines/main.py:check
"""


def test_ref_is_resolved_to_a_digest_and_loaded_in_the_step(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINES}, config=CONFIG)
    baseline = open_and_run(root, pipeline="produce", params={"value": "10"})
    digest = baseline.step("make").outputs["output"].digest

    outcome = open_and_run(root, pipeline="check", params={"value": "4", "baseline": "latest:make"})
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        assert project.artifacts.load(outcome.step("compare").outputs["output"]) == {"delta": -6}
    shown = conveyor("runs", "show", "latest", "--json", cwd=root, check=True).stdout
    assert f'"baseline": "{digest}"' in shown

    # The same digest given by prefix is the same key: the step is reused.
    again = open_and_run(root, pipeline="check", params={"value": "4", "baseline": digest[:10]})
    assert again.step("compare").status == "cached"


def test_unknown_ref_is_refused_before_anything_runs(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINES}, config=CONFIG)
    open_and_run(root, pipeline="produce")
    proc = conveyor("run", "check", "-p", "baseline=latest:nostep", cwd=root)
    assert proc.returncode == 2
    assert "param 'compare.baseline'" in proc.stderr and "has no step 'nostep'" in proc.stderr
