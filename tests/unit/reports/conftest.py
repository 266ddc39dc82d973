"""Reports built from the real checks' JSON values, with no database: what the built-in steps
would store, parsed as the collector parses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from conveyor.checks.drift import drift
from conveyor.checks.evaluation import evaluate_classifier
from conveyor.checks.model_gate import GateConfig, validate_scores
from conveyor.checks.schema import infer_schema
from conveyor.checks.validation import validate
from conveyor.reports.sections import (
    CheckRow,
    EvaluationSection,
    RunHeader,
    RunReport,
    StepRow,
    drift_from_dict,
    gate_from_dict,
    validation_from_dict,
)

EVIL = "<script>alert(1)</script>"


def header(**changes: object) -> RunHeader:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values: dict[str, object] = {
        "id": "20260102-030405-abcdef",
        "pipeline": "training",
        "status": "succeeded",
        "started_at": started,
        "ended_at": started + timedelta(seconds=83),
        "git_commit": "0123456789abcdef0123",
        "git_dirty": True,
        "params": {"n_estimators": 200, "note": EVIL},
    }
    values.update(changes)
    return RunHeader(**values)  # type: ignore[arg-type]


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 400
    reference = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "age": rng.normal(40, 8, n),
            EVIL: rng.choice(["<b>north</b>", "south"], n),
        }
    )
    current = reference.assign(income=reference["income"] + 15.0)
    current.loc[:150, EVIL] = "<b>north</b>"
    return reference, current


@pytest.fixture(scope="session")
def full_report() -> RunReport:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    score = 1 / (1 + np.exp(-(rng.normal(size=600) + 2.5 * (y - 0.5))))
    region = pd.DataFrame({"region": np.where(rng.random(600) > 0.5, "north", "south")})
    evaluation = evaluate_classifier(y, score, slices=region, bootstrap=200)
    gate = validate_scores(
        y, score, GateConfig.from_mapping({"thresholds": {"roc_auc": ">= 0.99"}})
    )
    reference, current = _frames()
    drifted = drift(reference, current, workers=1).to_json()
    validation = validate(current.assign(extra=1), infer_schema(reference)).to_dict()
    return RunReport(
        run=header(),
        steps=(
            StepRow(name="load", status="succeeded", duration_s=0.5, outputs={"output": "ab" * 32}),
            StepRow(
                name="train",
                status="failed",
                duration_s=1.25,
                error=f"Traceback\nValueError: {EVIL}",
            ),
            StepRow(name="evaluate", status="skipped", duration_s=None),
        ),
        metrics={"roc_auc": evaluation.metrics["roc_auc"], "odd": float("nan"), "none": None},
        checks=(
            CheckRow(
                step="validate_data", name="schema:age", kind="data", passed=True, severity="error"
            ),
            CheckRow(
                step="validate_data",
                name=f"schema:{EVIL}",
                kind="data",
                passed=False,
                severity="error",
                message=f"unseen value {EVIL}",
            ),
            CheckRow(
                step="check_drift",
                name="drift:income",
                kind="data",
                passed=False,
                severity="warning",
                message="drift",
            ),
        ),
        evaluations=(EvaluationSection(step="evaluate_model", evaluation=evaluation),),
        gates=(gate_from_dict(gate.to_dict(), "validate_model"),),
        validations=(validation_from_dict(validation, "validate_data"),),
        drifts=(drift_from_dict(drifted, "check_drift"),),
        notes=(f"output 'x' of step 'y' was left out: {EVIL}",),
    )


@pytest.fixture
def bare_report() -> RunReport:
    """A run with nothing but its header (no steps yet, no checks, no artifacts)."""
    return RunReport(run=header(status="running", ended_at=None, params={}, git_commit=None))
