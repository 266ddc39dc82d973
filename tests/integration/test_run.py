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


def test_changing_a_param_reruns_only_affected_steps(make_project) -> None:
    root: Path = make_project({"pipelines/main.py": PIPELINE})
    open_and_run(root)
    again = open_and_run(root, params={"n": "30"}, explain=True)
    assert [s.status for s in again.steps] == ["succeeded"] * 3
    assert any("'n' changed (20 -> 30)" in r for r in again.step("make").reasons)
