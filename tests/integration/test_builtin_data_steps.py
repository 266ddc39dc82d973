"""The built-in validate_data step: defaults from conveyor.yaml, a gate, recorded anomalies."""

from __future__ import annotations

import json

from helpers import conveyor, open_and_run, write_files

PIPELINE = """
import pandas as pd
from conveyor import pipeline, step
from conveyor.steps import validate_data


@step
def load(bad: bool = False) -> pd.DataFrame:
    ages = [25, 40, 33, 51] * 10
    if bad:
        ages[3] = -7
    return pd.DataFrame({"age": ages, "region": ["north", "south"] * 20})


@step
def train(data: pd.DataFrame) -> int:
    return len(data)


@pipeline
def main(bad: bool = False):
    data = load(bad=bad)
    validate_data(data)
    train(data)
"""

SCHEMA = """
version: 1
columns:
  - name: age
    type: integer
    min: 18
    max: 99
  - name: region
    type: categorical
    domain: [north, south]
"""


def project(factory, checks: str = "checks:\n  data:\n    schema: schemas/data.yaml\n"):
    config = "name: t\npipelines:\n  main: pipelines/main.py:main\n" + checks
    root = factory({"pipelines/main.py": PIPELINE}, config=config)
    write_files(root, {"schemas/data.yaml": SCHEMA})
    return root


def test_clean_data_passes_and_every_column_check_is_recorded(make_project) -> None:
    root = project(make_project)
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    schema_checks = [c for c in shown["checks"] if c["step"] == "validate_data"]
    assert schema_checks and all(c["passed"] for c in schema_checks)


def test_out_of_range_value_fails_the_gate_with_the_numbers(make_project) -> None:
    root = project(make_project)
    proc = conveyor("run", "-p", "bad=true", cwd=root)
    assert proc.returncode == 1
    assert "gate 'data' failed" in proc.stderr
    assert "age" in proc.stderr and "-7" in proc.stderr
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    steps = {s["name"]: s["status"] for s in shown["steps"]}
    assert steps["validate_data"] == "failed"
    assert steps["train"] == "succeeded"  # not downstream of the gate
    failed = [c for c in shown["checks"] if not c["passed"]]
    assert any(c["name"] == "schema:age" for c in failed)


def test_warning_policy_lets_the_run_pass(make_project) -> None:
    root = project(make_project)
    proc = conveyor("run", "-p", "bad=true", "-p", "validate_data.policy=warning", cwd=root)
    assert proc.returncode == 0, proc.stderr


def test_editing_the_schema_reruns_the_validation(make_sqlite_project) -> None:
    root = project(make_sqlite_project)
    open_and_run(root)
    write_files(root, {"schemas/data.yaml": SCHEMA.replace("max: 99", "max: 45")})
    again = open_and_run(root, explain=True)
    assert again.step("load").status == "cached"
    assert again.step("validate_data").status == "failed"
    assert "schemas/data.yaml" in " ".join(again.step("validate_data").reasons)


def test_missing_schema_setting_is_a_config_error_before_running(make_sqlite_project) -> None:
    root = project(make_sqlite_project, checks="")
    proc = conveyor("run", cwd=root)
    assert proc.returncode == 2
    assert "no schema is configured" in proc.stderr
    assert "checks.data.schema" in proc.stderr
    assert not (root / ".conveyor" / "artifacts" / "objects").exists()


def test_misspelt_schema_key_is_a_config_error_naming_the_file(make_sqlite_project) -> None:
    root = project(make_sqlite_project)
    write_files(root, {"schemas/data.yaml": SCHEMA.replace("min: 18", "mni: 18")})
    proc = conveyor("run", cwd=root)
    assert proc.returncode == 2
    assert "schemas/data.yaml" in proc.stderr and "did you mean 'min'?" in proc.stderr


def test_infer_schema_step_stores_an_editable_yaml_file(make_sqlite_project) -> None:
    source = PIPELINE.replace(
        "from conveyor.steps import validate_data",
        "from conveyor.steps import infer_schema, validate_data",
    )
    source = source.replace("    validate_data(data)\n", "    infer_schema(data)\n")
    root = make_sqlite_project(
        {"pipelines/main.py": source},
        config="name: t\npipelines:\n  main: pipelines/main.py:main\n",
    )
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    info = outcome.step("infer_schema").outputs["output"]
    assert info.materializer == "file" and info.meta["filename"] == "schema.yaml"
    from conveyor.checks.schema import schema_from_yaml
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        text = project.artifacts.load(info, root / ".conveyor" / "tmp" / "s").read_text()
    assert "version: 1" in text
    assert schema_from_yaml(text).names == ["age", "region"]
