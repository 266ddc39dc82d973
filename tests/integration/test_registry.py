"""The model registry: versions numbered by the database, also under concurrent registration."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import conveyor, open_and_run

PIPELINE = """
import numpy as np
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step


@step
def train(c: float = 1.0) -> LogisticRegression:
    x = np.arange(40, dtype=float).reshape(20, 2)
    return LogisticRegression(C=c).fit(x, np.arange(20) % 2)


@pipeline
def main(c: float = 1.0):
    train(c=c)
"""

CONFIG = "name: reg\npipelines:\n  main: pipelines/main.py:main\nmodel:\n  name: churn\n"


def test_register_list_show(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    run = open_and_run(root)
    first = json.loads(
        conveyor(
            "model",
            "register",
            run.run_id,
            "--json",
            "-d",
            "baseline",
            "--tag",
            "team=risk",
            cwd=root,
            check=True,
        ).stdout
    )
    assert (first["name"], first["version"]) == ("churn", 1)
    assert first["digest"] == run.step("train").outputs["output"].digest
    second = conveyor("model", "register", "latest", "--name", "churn", cwd=root, check=True)
    assert "registered churn:2" in second.stdout
    listed = json.loads(conveyor("model", "list", "--json", cwd=root, check=True).stdout)
    assert [(m["name"], m["version"]) for m in listed] == [("churn", 2), ("churn", 1)]
    shown = json.loads(conveyor("model", "show", "churn:1", "--json", cwd=root, check=True).stdout)
    assert shown["description"] == "baseline" and shown["tags"] == {"team": "risk"}
    assert json.loads(conveyor("model", "show", "churn", "--json", cwd=root).stdout)["version"] == 2


def test_mistakes_are_clear(make_sqlite_project) -> None:
    root = make_sqlite_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    open_and_run(root)
    cases = [
        (("model", "register", "latest", "--step", "trian"), "has no step 'trian'"),
        (("model", "register", "latest", "--name", "bad name"), "invalid model name"),
        (("model", "show", "churn:7"), "model churn has no version 7"),
        (("model", "show", "other"), "no model named 'other' is registered"),
        (("model", "show", "churn:x"), "is not NAME:VERSION"),
    ]
    for args, message in cases:
        proc = conveyor(*args, cwd=root)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)


REGISTER = """
import sys
from pathlib import Path
from conveyor.engine.project import open_project
from conveyor.registry.versions import register_model

with open_project(Path(sys.argv[1])) as project:
    for _ in range(int(sys.argv[2])):
        register_model(project.metadata, name="churn", run_ref="latest", step="train")
"""


def test_concurrent_registrations_get_distinct_numbers(make_project, tmp_path) -> None:
    root = make_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    open_and_run(root)
    script = tmp_path / "register.py"
    script.write_text(REGISTER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(root), "5"], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    listed = json.loads(conveyor("model", "list", "churn", "--json", cwd=root, check=True).stdout)
    assert sorted(m["version"] for m in listed) == list(range(1, 21))


def test_register_step_registers_each_new_model_once(make_project) -> None:
    source = PIPELINE.replace(
        "from conveyor import pipeline, step",
        "from conveyor import pipeline, step\nfrom conveyor.steps import register",
    )
    source = source.replace("    train(c=c)", "    register(train(c=c))")
    root = make_project({"pipelines/main.py": source}, config=CONFIG)
    first = open_and_run(root)
    assert first.status == "succeeded", [s.error for s in first.steps]
    assert open_and_run(root).step("register").status == "cached"
    open_and_run(root, params={"c": "0.5"})
    listed = json.loads(conveyor("model", "list", "--json", cwd=root, check=True).stdout)
    assert [(m["version"], m["step"]) for m in listed] == [(2, "train"), (1, "train")]
    assert listed[1]["run_id"] == first.run_id


def test_lineage_of_a_model_version(make_sqlite_project) -> None:
    root = make_sqlite_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    run = open_and_run(root, params={"c": "0.25"})
    conveyor("model", "register", run.run_id, cwd=root, check=True)
    data = json.loads(conveyor("lineage", "churn:1", "--json", cwd=root, check=True).stdout)
    assert data["upstream"]["step"] == "train"
    assert data["upstream"]["params"] == {"c": 0.25}
