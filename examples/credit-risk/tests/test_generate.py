"""The synthetic application generator: shape, determinism, missing values, label, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit_risk.generate import (
    EMPLOYMENT_TYPES,
    HOME_OWNERSHIP,
    LOAN_PURPOSES,
    LOAN_TERMS,
    MISSING_RATES,
    REGIONS,
    default_logit,
    generate_applications,
)
from credit_risk.schema import CATEGORICAL, NUMERIC, TARGET


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_applications(20_000, seed=11)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate_applications(20_000, seed=11, drift=1.0)


def test_same_arguments_give_the_same_frame() -> None:
    first = generate_applications(500, seed=3, drift=0.4)
    second = generate_applications(500, seed=3, drift=0.4)
    pd.testing.assert_frame_equal(first, second)


def test_another_seed_gives_another_frame() -> None:
    first = generate_applications(500, seed=3)
    second = generate_applications(500, seed=4)
    assert not first["annual_income"].equals(second["annual_income"])
    assert not first[TARGET].equals(second[TARGET])


def test_drift_zero_is_the_default() -> None:
    pd.testing.assert_frame_equal(
        generate_applications(300, seed=5), generate_applications(300, seed=5, drift=0.0)
    )


def test_columns_are_the_schema(reference: pd.DataFrame) -> None:
    features = [c for c in reference.columns if c != TARGET]
    assert len(features) >= 12
    assert set(features) == set(NUMERIC) | set(CATEGORICAL)
    assert len(reference) == 20_000


def test_categorical_columns_use_their_levels(reference: pd.DataFrame) -> None:
    levels = {
        "employment_type": EMPLOYMENT_TYPES,
        "home_ownership": HOME_OWNERSHIP,
        "loan_purpose": LOAN_PURPOSES,
        "region": REGIONS,
    }
    for column, allowed in levels.items():
        seen = set(reference[column].dropna())
        assert seen == set(allowed), column
    assert set(reference["loan_term_months"]) == set(LOAN_TERMS)


def test_numeric_ranges_are_realistic(reference: pd.DataFrame) -> None:
    bounds = {
        "age": (21, 75),
        "annual_income": (8_000, 500_000),
        "loan_amount": (1_000, 50_000),
        "interest_rate": (3.0, 35.0),
        "credit_score": (300, 850),
        "debt_to_income": (0.0, 0.95),
        "employment_years": (0.0, 57.0),
        "num_open_accounts": (0, 40),
        "num_delinquencies": (0, 30),
    }
    for column, (low, high) in bounds.items():
        values = reference[column].dropna()
        assert values.min() >= low, column
        assert values.max() <= high, column
    assert 35_000 < reference["annual_income"].median() < 75_000
    assert 640 < reference["credit_score"].mean() < 740
    known = reference.dropna(subset=["employment_years"])
    assert (known["employment_years"] <= known["age"] - 18).all()


def test_some_values_are_missing_in_the_listed_columns(reference: pd.DataFrame) -> None:
    share = reference.isna().mean()
    assert len(MISSING_RATES) >= 4
    for column, rate in MISSING_RATES.items():
        assert rate / 2 < share[column] < rate * 2, column
    for column in set(reference.columns) - set(MISSING_RATES):
        assert share[column] == 0.0, column


def test_default_rate_is_sane(reference: pd.DataFrame) -> None:
    assert set(reference[TARGET].unique()) == {0, 1}
    assert 0.08 < reference[TARGET].mean() < 0.30


def test_labels_follow_the_documented_logit() -> None:
    complete = generate_applications(20_000, seed=2).dropna()
    logit = default_logit(complete)
    low, high = np.quantile(logit, [0.2, 0.8])
    low_rate = complete.loc[logit <= low, TARGET].mean()
    high_rate = complete.loc[logit >= high, TARGET].mean()
    assert high_rate > 3 * low_rate


def test_drift_shifts_the_distribution(reference: pd.DataFrame, drifted: pd.DataFrame) -> None:
    assert drifted["annual_income"].median() < 0.85 * reference["annual_income"].median()
    assert drifted["interest_rate"].mean() > reference["interest_rate"].mean() + 2.0
    assert drifted["credit_score"].mean() < reference["credit_score"].mean() - 20
    assert drifted["debt_to_income"].mean() > reference["debt_to_income"].mean() + 0.05
    for column, level in [("employment_type", "unemployed"), ("home_ownership", "rent")]:
        before = (reference[column] == level).mean()
        after = (drifted[column] == level).mean()
        assert after > before + 0.05, column
    assert drifted[TARGET].mean() > reference[TARGET].mean() + 0.1


def test_drift_is_gradual() -> None:
    medians = [
        generate_applications(5_000, seed=1, drift=d)["annual_income"].median()
        for d in (0.0, 0.5, 1.0)
    ]
    assert medians[0] > medians[1] > medians[2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0, "seed": 1}, "n_rows"),
        ({"n_rows": 10, "seed": 1, "drift": 1.5}, "drift"),
        ({"n_rows": 10, "seed": 1, "drift": -0.1}, "drift"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_applications(**kwargs)


def _applicant(**changes: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "age": 40,
        "annual_income": 50_000.0,
        "employment_type": "salaried",
        "employment_years": 5.0,
        "home_ownership": "mortgage",
        "region": "north",
        "loan_amount": 12_500.0,
        "loan_term_months": 36,
        "loan_purpose": "education",
        "interest_rate": 13.0,
        "credit_score": 680.0,
        "num_open_accounts": 6.0,
        "num_delinquencies": 0,
        "debt_to_income": 0.30,
    }
    row.update(changes)
    return pd.DataFrame([row])


def _logit(**changes: object) -> float:
    return float(default_logit(_applicant(**changes))[0])


def test_reference_applicant_has_the_intercept() -> None:
    assert _logit() == pytest.approx(-2.5)


@pytest.mark.parametrize(
    ("column", "low", "high", "sign"),
    [
        ("credit_score", 600.0, 760.0, -1),
        ("debt_to_income", 0.1, 0.6, +1),
        ("num_delinquencies", 0, 3, +1),
        ("loan_amount", 5_000.0, 30_000.0, +1),
        ("interest_rate", 8.0, 20.0, +1),
        ("annual_income", 30_000.0, 120_000.0, -1),
        ("employment_years", 1.0, 15.0, -1),
        ("loan_term_months", 12, 60, +1),
    ],
)
def test_direction_of_numeric_effects(column: str, low: object, high: object, sign: int) -> None:
    assert sign * (_logit(**{column: high}) - _logit(**{column: low})) > 0


@pytest.mark.parametrize(
    ("column", "riskier", "safer"),
    [
        ("employment_type", "unemployed", "salaried"),
        ("employment_type", "self_employed", "salaried"),
        ("home_ownership", "rent", "own"),
        ("loan_purpose", "small_business", "car"),
    ],
)
def test_direction_of_categorical_effects(column: str, riskier: str, safer: str) -> None:
    assert _logit(**{column: riskier}) > _logit(**{column: safer})


def test_age_and_region_have_no_direct_effect() -> None:
    assert _logit(age=25) == _logit(age=70)
    assert _logit(region="south") == _logit(region="west")
