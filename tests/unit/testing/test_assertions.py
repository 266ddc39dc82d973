"""conveyor.testing assertions: they pass on good data and models, and fail with numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from sklearn.linear_model import LogisticRegression

from conveyor.checks.schema import infer_schema
from conveyor.testing import (
    assert_directional,
    assert_invariant,
    assert_metric,
    assert_no_drift,
    assert_not_worse_than,
    assert_schema,
)
from conveyor.testing.strategies import frames


def frame(n: int = 400, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "income": rng.normal(50 + shift, 10, n),
            "age": rng.integers(18, 80, n),
            "region": rng.choice(["n", "s", "e"], n),
        }
    )
    df["label"] = (df["income"] + rng.normal(0, 5, n) > 50 + shift).astype(int)
    return df


def model(df: pd.DataFrame, cols: list[str] | None = None) -> LogisticRegression:
    return LogisticRegression().fit(df[cols or ["income", "age"]], df["label"])


def test_assert_schema_passes_on_its_own_data_and_names_anomalies() -> None:
    df = frame()
    schema = infer_schema(df)
    assert_schema(df, schema)
    bad = df.copy()
    bad.loc[0, "region"] = "mars"
    with pytest.raises(AssertionError, match="mars"):
        assert_schema(bad, schema)


def test_assert_no_drift_reports_the_drifted_feature() -> None:
    assert_no_drift(frame(seed=1), frame(seed=2))
    with pytest.raises(AssertionError, match="income") as info:
        assert_no_drift(frame(seed=1), frame(seed=2, shift=30), drift_share=0.3)
    assert "drift" in str(info.value)


def test_assert_metric_shows_value_and_interval() -> None:
    evaluation = {
        "metrics": {"roc_auc": 0.71},
        "intervals": {"roc_auc": {"low": 0.65, "high": 0.77, "confidence": 0.95}},
    }
    assert_metric(evaluation, "roc_auc", ">= 0.7")
    with pytest.raises(
        AssertionError,
        match=r"roc_auc = 0\.7100 \(95% interval \[0\.6500, "
        r"0\.7700\]\), expected >= 0\.8",
    ):
        assert_metric(evaluation, "roc_auc", ">= 0.8")
    with pytest.raises(AssertionError, match="no metric 'auc'"):
        assert_metric({"roc_auc": 0.9}, "auc", ">= 0.8")
    with pytest.raises(ValueError, match="cannot read condition"):
        assert_metric({"roc_auc": 0.9}, "roc_auc", "at least 0.8")


def test_behavioural_assertions_catch_a_model_that_uses_a_column() -> None:
    df = frame()
    m = model(df)
    assert_invariant(m, df[["income", "age"]], "age", epsilon=0.5)
    with pytest.raises(AssertionError, match="income"):
        assert_invariant(m, df[["income", "age"]], "income", epsilon=0.01)
    assert_directional(m, df[["income", "age"]], "income", delta=5.0, expect="non_decreasing")
    with pytest.raises(AssertionError):
        assert_directional(m, df[["income", "age"]], "income", delta=5.0, expect="non_increasing")


def test_assert_not_worse_than_uses_a_paired_bootstrap() -> None:
    train, test = frame(seed=3), frame(seed=4)
    good, weak = model(train), model(train, ["age"])
    assert_not_worse_than(
        good, weak, test[["income", "age"]], test["label"], max_drop=0.0, resamples=200
    )
    with pytest.raises(AssertionError, match="champion:roc_auc"):
        assert_not_worse_than(
            weak, good, test[["income", "age"]], test["label"], max_drop=0.01, resamples=200
        )


SCHEMA = infer_schema(frame())


@settings(max_examples=25, deadline=None)
@given(frames(SCHEMA, max_rows=20))
def test_frames_from_a_schema_always_validate(df: pd.DataFrame) -> None:
    assert list(df.columns) == SCHEMA.names
    assert_schema(df, SCHEMA)
