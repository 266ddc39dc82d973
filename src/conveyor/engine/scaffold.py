"""``conveyor init``: a small, working project to start from."""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.config import CONFIG_NAME
from conveyor.errors import UsageError

CONFIG = """\
name: {name}
pipelines:
  training: pipelines/training.py:training
params:
  n_rows: 2000
  seed: 0
stores:
  metadata: sqlite:///.conveyor/conveyor.db     # postgresql://... for a team
  artifacts: .conveyor/artifacts                # s3://bucket/prefix for a team
executor: local
access:                       # roles: viewer < developer < approver < admin
  users: {{}}                   # e.g. alice: [developer], bob: [approver]
  default_role: developer
environments:                 # promoted in this order; see docs/delivery.md
  - name: test
    promote: auto             # deployed as soon as its gates pass
    gates: [infra, load]
    load: {{concurrency: 4, duration: 5s, slo: {{max_p99_ms: 100, max_error_rate: 0.001}}}}
    target: {{kind: local, port: 28601}}
  - name: staging
    promote: approval         # waits for an approver
    approvers: [role:approver]
    gates: [shadow]           # replays what test answered against the candidate
    target: {{kind: local, port: 28602}}
  - name: production
    promote: manual           # an approver who is not the requester
    approvers: [role:approver]
    rollout: {{strategy: canary, steps: [10, 50, 100], min_requests: 200}}
    target: {{kind: local, port: 28603}}
"""

PIPELINE = '''\
"""The training pipeline: make data, split it, train a model and evaluate it."""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from conveyor import log_metrics, pipeline, step

FEATURES = ["x1", "x2", "x3"]


@step
def make_data(n_rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n_rows, 3)), columns=FEATURES)
    logit = 1.5 * df["x1"] - 1.0 * df["x2"] + rng.normal(scale=0.5, size=n_rows)
    df["label"] = (logit > 0).astype(int)
    return df


@step(outputs=("train", "test"))
def split(data: pd.DataFrame, test_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(data) * (1 - test_fraction))
    return data.iloc[:cut], data.iloc[cut:]


@step
def train(train: pd.DataFrame, c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c).fit(train[FEATURES], train["label"])


@step
def evaluate(model: LogisticRegression, test: pd.DataFrame) -> dict:
    scores = model.predict_proba(test[FEATURES])[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(test["label"], scores > 0.5)),
        "roc_auc": float(roc_auc_score(test["label"], scores)),
    }
    log_metrics(metrics)
    return metrics


@pipeline
def training(n_rows: int = 1000, seed: int = 0):
    data = make_data(n_rows=n_rows, seed=seed)
    train_set, test_set = split(data)
    model = train(train_set)
    evaluate(model, test_set)
'''

TEST = '''\
"""Unit tests of the feature logic: steps are plain functions outside a pipeline."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.training import make_data, split  # noqa: E402


def test_make_data_is_seeded():
    assert make_data(n_rows=50, seed=1).equals(make_data(n_rows=50, seed=1))


def test_split_keeps_every_row():
    data = make_data(n_rows=100, seed=0)
    train, test = split(data, test_fraction=0.2)
    assert len(train) == 80 and len(test) == 20
'''

GITIGNORE = ".conveyor/\n__pycache__/\n"

README = """\
# {name}

A Conveyor project. Run the pipeline with `conveyor run`; run it again and every step is
cached. `conveyor runs list`, `conveyor runs show latest` and `conveyor lineage latest:train`
show what happened.
"""


def init_project(directory: Path, name: str | None = None) -> list[Path]:
    """Write a working project into ``directory``; refuses to overwrite anything."""
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "-", directory.resolve().name).strip("-.") or "ml"
    files = {
        CONFIG_NAME: CONFIG.format(name=name),
        "pipelines/__init__.py": "",
        "pipelines/training.py": PIPELINE,
        "tests/test_training.py": TEST,
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=name),
    }
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing:
        raise UsageError(
            f"{directory} already has {', '.join(existing)}",
            hint="choose an empty directory, or remove those files first",
        )
    written = []
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
