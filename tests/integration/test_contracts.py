"""Artifact contracts: each output is checked right after its step runs, before it is stored."""

from __future__ import annotations

import json

import pytest

from conveyor.core.step import step
from conveyor.errors import DefinitionError
from helpers import conveyor, open_and_run

PIPELINE = """
import numpy as np
import pandas as pd
from conveyor import pipeline, step


@step(contracts={"output": {"columns": ["age", "income"], "min_rows": 3}})
def table(rows: int = 5, drop_income: bool = False) -> pd.DataFrame:
    df = pd.DataFrame({"age": range(rows), "income": [1.0] * rows})
    return df.drop(columns=["income"]) if drop_income else df


@step(contracts={"output": {"shape": [None, 2], "dtype": "float64"}})
def matrix(df: pd.DataFrame, as_int: bool = False) -> np.ndarray:
    values = df.to_numpy()
    return values.astype(int) if as_int else values.astype(float)


@step(contracts={"output": {"keys": ["roc_auc", "accuracy"]}})
def metrics(m: np.ndarray, forget: bool = False) -> dict:
    out = {"accuracy": 1.0, "roc_auc": 0.5}
    if forget:
        out.pop("roc_auc")
    return out


@pipeline
def main():
    metrics(matrix(table()))
"""


def test_outputs_that_keep_their_contracts_pass_and_are_recorded(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE})
    outcome = open_and_run(root)
    assert outcome.status == "succeeded"
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    contract_checks = [c for c in shown["checks"] if c["kind"] == "artifact"]
    assert [(c["step"], c["passed"]) for c in contract_checks] == [
        ("table", True),
        ("matrix", True),
        ("metrics", True),
    ]


@pytest.mark.parametrize(
    ("param", "step_name", "expected"),
    [
        ("table.drop_income=true", "table", "missing columns ['income']"),
        ("table.rows=2", "table", "2 rows, fewer than 3"),
        ("matrix.as_int=true", "matrix", "dtype int64, expected float64"),
        ("metrics.forget=true", "metrics", "missing keys ['roc_auc']"),
    ],
)
def test_a_broken_contract_fails_the_step_and_stores_nothing(
    make_sqlite_project, param: str, step_name: str, expected: str
) -> None:
    root = make_sqlite_project({"pipelines/main.py": PIPELINE})
    proc = conveyor("run", "-p", param, cwd=root)
    assert proc.returncode == 1, proc.stderr
    assert f"step '{step_name}' broke its artifact contract" in proc.stderr
    assert expected in proc.stderr
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    steps = {s["name"]: s for s in shown["steps"]}
    assert steps[step_name]["status"] == "failed"
    assert steps[step_name]["outputs"] == {}
    failed = [c for c in shown["checks"] if not c["passed"]]
    assert [c["step"] for c in failed] == [step_name]
    assert expected in failed[0]["message"]


def test_contract_errors_are_found_at_definition() -> None:
    def f() -> int:
        return 1

    with pytest.raises(DefinitionError, match="contract for unknown output 'outptu'") as info:
        step(contracts={"outptu": {"keys": ["a"]}})(f)
    assert info.value.hint == "did you mean 'output'?"
    with pytest.raises(DefinitionError, match="unknown contract rule 'colums'"):
        step(contracts={"output": {"colums": ["a"]}})(f)
    with pytest.raises(DefinitionError, match="mixes rules"):
        step(contracts={"output": {"columns": ["a"], "dtype": "int64"}})(f)
    with pytest.raises(DefinitionError, match="leaves the project"):
        step(contracts={"output": {"schema": "../elsewhere.yaml"}})(f)
