"""Running pipelines end to end against real SQLite and PostgreSQL stores."""

from __future__ import annotations

from pathlib import Path

from helpers import open_and_run

PIPELINE = """
import numpy as np
import pandas as pd
from conveyor import log_metrics, pipeline, step


@step
def make(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.integers(0, 2, n)})


@step(outputs=("head", "tail"))
def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    half = len(df) // 2
    return df.iloc[:half], df.iloc[half:]


@step
def stats(head: pd.DataFrame, tail: pd.DataFrame) -> dict:
    mean = float(head["x"].mean() - tail["x"].mean())
    log_metrics({"mean_gap": mean})
    print("gap", mean)
    return {"mean_gap": mean, "rows": len(head) + len(tail)}


@pipeline
def main(n: int = 20):
    df = make(n=n)
    head, tail = split(df)
    stats(head, tail)
"""


def test_second_run_is_fully_cached_and_metrics_are_recorded(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE})
    first = open_and_run(root)
    assert first.status == "succeeded"
    assert [s.status for s in first.steps] == ["succeeded"] * 3
    second = open_and_run(root)
    assert [s.status for s in second.steps] == ["cached"] * 3
    assert second.step("stats").outputs == first.step("stats").outputs

    from conveyor.engine.project import open_project
    from conveyor.store import queries

    with open_project(root, environ={}) as project:
        for run_id in (first.run_id, second.run_id):
            assert "mean_gap" in queries.run_metrics(project.metadata, run_id)
        value = project.artifacts.load(second.step("stats").outputs["output"])
    assert value["rows"] == 20

    from helpers import conveyor

    logs = conveyor("runs", "show", first.run_id, "--logs", "stats", cwd=root, check=True)
    assert f"gap {value['mean_gap']}" in logs.stdout


def test_changing_a_param_reruns_only_affected_steps(make_project) -> None:
    root: Path = make_project({"pipelines/main.py": PIPELINE})
    open_and_run(root)
    again = open_and_run(root, params={"n": "30"}, explain=True)
    assert [s.status for s in again.steps] == ["succeeded"] * 3
    assert any("'n' changed (20 -> 30)" in r for r in again.step("make").reasons)


FAN_OUT = """
import os
import time
from conveyor import pipeline, step


@step
def source(n: int = 3) -> list:
    return list(range(n))


@step
def square(values: list, k: int = 0) -> dict:
    print("worker pid", os.getpid())
    time.sleep(0.2)
    return {"k": k, "pid": os.getpid(), "sum": sum(v * v for v in values) + k}


@step
def total(a: dict, b: dict, c: dict) -> int:
    return a["sum"] + b["sum"] + c["sum"]


@pipeline
def main():
    values = source()
    total(square(values, k=1), square(values, k=2), square(values, k=3))
"""


def test_workers_run_independent_steps_in_other_processes(make_sqlite_project) -> None:
    import os

    from conveyor.engine.project import open_project

    root = make_sqlite_project({"pipelines/main.py": FAN_OUT})
    outcome = open_and_run(root, workers=2)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    assert [s.name for s in outcome.steps] == ["source", "square", "square_2", "square_3", "total"]
    with open_project(root, environ={}) as project:
        results = [
            project.artifacts.load(outcome.step(n).outputs["output"])
            for n in ("square", "square_2", "square_3")
        ]
        assert project.artifacts.load(outcome.step("total").outputs["output"]) == 3 * 5 + 6
        from conveyor.store import queries

        steps = {s.name: s for s in queries.step_runs(project.metadata, outcome.run_id)}
        logs = project.artifacts.load_text(steps["square_2"].logs_digest)
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids
    assert f"worker pid {results[1]['pid']}" in logs
    again = open_and_run(root, workers=2)
    assert {s.status for s in again.steps} == {"cached"}
    # In-process and pooled execution share the cache.
    assert {s.status for s in open_and_run(root).steps} == {"cached"}


def test_changing_a_project_module_reruns_the_step_that_imports_it(make_sqlite_project) -> None:
    from helpers import write_files

    root = make_sqlite_project(
        {
            "pipelines/main.py": """
            from conveyor import pipeline, step
            from lib.scale import factor

            @step
            def base(x: int = 2) -> int:
                return x

            @step
            def scaled(x: int) -> int:
                return x * factor()

            @pipeline
            def main():
                scaled(base())
            """,
            "lib/__init__.py": "",
            "lib/scale.py": "def factor():\n    return 10\n",
        }
    )
    first = open_and_run(root)
    assert first.status == "succeeded"
    write_files(root, {"lib/scale.py": "def factor():\n    return 100\n"})
    second = open_and_run(root, explain=True)
    assert second.step("base").status == "cached"
    assert second.step("scaled").status == "succeeded"
    assert any("code: 'module:lib/scale.py' changed" in r for r in second.step("scaled").reasons)
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        assert project.artifacts.load(second.step("scaled").outputs["output"]) == 200


def _named_project(factory, step_name: str, with_init: bool):
    files = {
        "pipelines/main.py": f"""
            from conveyor import pipeline, step

            @step
            def {step_name}(x: int = 1) -> int:
                return x

            @pipeline
            def main():
                {step_name}()
            """
    }
    if with_init:
        files["pipelines/__init__.py"] = ""
    return factory(files)


def test_two_projects_in_one_process_each_run_their_own_code(make_sqlite_project) -> None:
    a = _named_project(make_sqlite_project, "hello", with_init=True)
    b = _named_project(make_sqlite_project, "bye", with_init=False)
    assert [s.name for s in open_and_run(a).steps] == ["hello"]
    assert [s.name for s in open_and_run(b).steps] == ["bye"]
    assert [s.name for s in open_and_run(a).steps] == ["hello"]


def test_a_shadowing_package_is_refused_not_run(make_sqlite_project) -> None:
    from helpers import conveyor

    a = _named_project(make_sqlite_project, "hello", with_init=True)
    b = _named_project(make_sqlite_project, "bye", with_init=False)
    proc = conveyor("run", cwd=b, env={"PYTHONPATH": str(a)})
    assert proc.returncode == 2
    assert "shadows the project's" in proc.stderr
    assert "hello" not in proc.stderr


def test_lineage_shows_a_producer_once_with_every_input_it_feeds(make_sqlite_project) -> None:
    import json

    from helpers import conveyor

    root = make_sqlite_project({"pipelines/main.py": PIPELINE})
    open_and_run(root)
    data = json.loads(conveyor("lineage", "latest:stats", "--json", cwd=root, check=True).stdout)
    stats = data["upstream"]
    assert stats["step"] == "stats"
    assert [(u["step"], sorted(u["via"])) for u in stats["upstream"]] == [
        ("split", ["head", "tail"])
    ]
    assert stats["upstream"][0]["upstream"][0]["params"] == {"n": 20, "seed": 0}
