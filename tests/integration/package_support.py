"""Support for the package tests and the tests built on a packaged model: a project whose
pipeline has run with its model registered (``make_registered``), that model packaged and
opened (``make_packaged``), and a forger's ``redigest`` of a package directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from helpers import open_and_run, write_files

PIPELINE = """
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from conveyor import pipeline, step
from conveyor.steps import evaluate_model, validate_model


@step(outputs=("train", "test"))
def data(n: int = 800) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    k = rng.integers(0, 5, size=n)
    y = (a + 0.2 * k + 0.3 * rng.normal(size=n) > 0.4).astype(int)
    df = pd.DataFrame({"a": a, "b": b, "k": k, "region": np.where(b > 0, "n", "s"), "label": y})
    return df.iloc[: n // 2].reset_index(drop=True), df.iloc[n // 2 :].reset_index(drop=True)


@step
def train(train: pd.DataFrame) -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    return model.fit(train[["a", "b", "k"]], train["label"])


@pipeline
def main():
    tr, te = data()
    model = train(tr)
    evaluate_model(model, te, bootstrap=50)
    validate_model(model, te)
"""

CONFIG = """
name: pk
pipelines:
  main: pipelines/main.py:main
checks:
  model:
    label: label
    thresholds: {roc_auc: ">= 0.7"}
"""

TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def make_registered(root: Path, pipeline: str = PIPELINE) -> tuple[Path, Any]:
    """A project at ``root`` whose pipeline has run, with its model registered as ``pk:1``."""
    from conveyor.engine.project import open_project
    from conveyor.registry.versions import register_model

    write_files(root, {"conveyor.yaml": CONFIG, "pipelines/main.py": pipeline})
    outcome = open_and_run(root)
    assert outcome.status == "succeeded", [s.error for s in outcome.steps]
    with open_project(root, environ={}) as project:
        mv = register_model(project.metadata, name="pk", run_ref=outcome.run_id, step="train")
    return root, mv


def make_packaged(root: Path) -> tuple[Path, Any, Path]:
    """``make_registered``, packaged and opened: (project root, version, package directory)."""
    from conveyor.engine.project import open_project
    from conveyor.registry.package import build_package, open_package

    root, mv = make_registered(root)
    with open_project(root, environ={}) as project:
        info = build_package(project, mv)
        directory = open_package(project, info.version, root.parent / f"{root.name}-package")
    return root, info.version, directory


def redigest(directory: Path) -> None:
    """Make conveyor.json list the current digests of the package's files, as a forger would."""
    path = directory / "conveyor.json"
    manifest = json.loads(path.read_text())
    for rel in manifest["files"]:
        manifest["files"][rel] = hashlib.sha256((directory / rel).read_bytes()).hexdigest()
    manifest["model"]["digest"] = manifest["files"][manifest["model"]["path"]]
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
