"""ML tests with conveyor.testing: the pipeline on a sample, data against the schema, and a
property test of the feature logic on data synthesised from that schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from conveyor.testing import assert_metric, assert_no_drift, assert_schema
from conveyor.testing.strategies import frames
from hypothesis import HealthCheck, given, settings

from credit_risk.features import fit_spec, transform
from credit_risk.generate import generate_applications

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "applications.yaml"


def test_training_on_a_sample_passes_its_gates(conveyor_run) -> None:
    run = conveyor_run(params={"n_rows": 3000})
    assert run.succeeded, [s.error for s in run.outcome.steps if s.error]
    assert_metric(run.artifact("evaluate_model"), "roc_auc", ">= 0.75")
    assert run.artifact("validate_model")["blessed"] is True


def test_generated_batches_match_the_schema() -> None:
    for seed in (1, 2, 3):
        assert_schema(generate_applications(3000, seed), SCHEMA)


def test_fresh_batches_do_not_drift_but_shifted_ones_do() -> None:
    reference = generate_applications(3000, 1)
    assert_no_drift(reference, generate_applications(3000, 2))
    try:
        assert_no_drift(reference, generate_applications(3000, 2, drift=0.8))
    except AssertionError as err:
        assert "annual_income" in str(err)
    else:
        raise AssertionError("a batch with drift=0.8 was not reported as drifted")


SPEC = fit_spec(generate_applications(2000, 0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(SCHEMA, max_rows=25))
def test_features_are_finite_for_any_valid_application(applications: pd.DataFrame) -> None:
    features = transform(applications, SPEC)
    assert list(features.columns) == SPEC["columns"]
    assert np.isfinite(features.to_numpy(dtype=float)).all()
