"""The built-in evaluate_model and validate_model steps, with a champion from an earlier run."""

from __future__ import annotations

import json

from helpers import conveyor, open_and_run

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from conveyor import pipeline, step
from conveyor.steps import evaluate_model, validate_model


@step(outputs=("train", "test"))
def data(n: int = 600, noise: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + noise * rng.normal(size=n) > 0).astype(int)
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "region": np.where(x[:, 1] > 0, "n", "s"),
                       "label": y})
    return df.iloc[: n // 2], df.iloc[n // 2 :]


@step
def train(train: pd.DataFrame, use_signal: bool = True) -> LogisticRegression:
    cols = ["a", "b"] if use_signal else ["b"]
    return LogisticRegression().fit(train[cols], train["label"])


@pipeline
def main(use_signal: bool = True):
    tr, te = data()
    model = train(tr, use_signal=use_signal)
    evaluate_model(model, te)
    validate_model(model, te)
"""

CONFIG = """
name: m
pipelines:
  main: pipelines/main.py:main
checks:
  model:
    label: label
    slices: [region]
    thresholds: {roc_auc: ">= 0.8"}
    champion: {metric: roc_auc, max_drop: 0.01, resamples: 300}
"""


def test_good_model_is_blessed_and_evaluation_is_an_artifact(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        evaluation = project.artifacts.load(outcome.step("evaluate_model").outputs["output"])
        verdict = project.artifacts.load(outcome.step("validate_model").outputs["output"])
    assert evaluation["schema"] == "conveyor.evaluation/1"
    assert evaluation["metrics"]["roc_auc"] > 0.8
    assert {s["value"] for s in evaluation["slices"]} == {"n", "s"}
    assert verdict["blessed"] is True
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    assert shown["metrics"]["roc_auc"] == evaluation["metrics"]["roc_auc"]
    names = {c["name"] for c in shown["checks"] if c["step"] == "validate_model"}
    assert "threshold:roc_auc" in names


def test_worse_challenger_than_champion_is_not_blessed(make_project) -> None:
    root = make_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    champion = open_and_run(root)
    assert champion.status == "succeeded"
    proc = conveyor(
        "run",
        "-p",
        "use_signal=false",
        "-p",
        f"champion={champion.run_id}:train",
        "-p",
        "validate_model.thresholds={}",
        cwd=root,
    )
    assert proc.returncode == 1
    assert "gate 'model' failed" in proc.stderr
    assert "champion:roc_auc" in proc.stderr
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    champ = [c for c in shown["checks"] if c["name"] == "champion:roc_auc"]
    assert champ and champ[0]["passed"] is False
    assert champ[0]["metrics"]["difference"] < -0.1


def test_threshold_on_unknown_metric_is_refused_with_a_suggestion(make_sqlite_project) -> None:
    root = make_sqlite_project(
        {"pipelines/main.py": PIPELINE},
        config=CONFIG.replace('roc_auc: ">= 0.8"', 'roc_acu: ">= 0.8"'),
    )
    proc = conveyor("run", cwd=root)
    assert proc.returncode == 2
    assert "roc_acu" in proc.stderr and "did you mean 'roc_auc'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_champion_named_by_model_version(make_sqlite_project) -> None:
    root = make_sqlite_project({"pipelines/main.py": PIPELINE}, config=CONFIG)
    champion = open_and_run(root)
    conveyor("model", "register", champion.run_id, "--name", "m", cwd=root, check=True)
    proc = conveyor(
        "run",
        "-p",
        "use_signal=false",
        "-p",
        "champion=m:1",
        "-p",
        "validate_model.thresholds={}",
        cwd=root,
    )
    assert proc.returncode == 1
    assert "champion:roc_auc" in proc.stderr
    shown = json.loads(conveyor("runs", "show", "latest", "--json", cwd=root).stdout)
    step = next(s for s in shown["steps"] if s["name"] == "validate_model")
    assert step["params"]["champion"] == champion.step("train").outputs["output"].digest
