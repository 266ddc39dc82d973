"""The feature logic: derived columns, imputation, the fitted spec and the transform."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from credit_risk.features import (
    DERIVED,
    MISSING_LEVEL,
    add_derived,
    fit_spec,
    impute,
    monthly_payment,
    split_xy,
    transform,
)
from credit_risk.generate import generate_applications
from credit_risk.schema import CATEGORICAL, NUMERIC, TARGET


def applications(*rows: dict[str, object]) -> pd.DataFrame:
    """Hand-made applications: each row overrides a plain, complete applicant."""
    base: dict[str, object] = {
        "age": 40,
        "annual_income": 60_000.0,
        "employment_type": "salaried",
        "employment_years": 5.0,
        "home_ownership": "rent",
        "region": "north",
        "loan_amount": 12_000.0,
        "loan_term_months": 12,
        "loan_purpose": "car",
        "interest_rate": 12.0,
        "credit_score": 700.0,
        "num_open_accounts": 5.0,
        "num_delinquencies": 0,
        "debt_to_income": 0.2,
        TARGET: 0,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def test_monthly_payment_matches_the_annuity_formula() -> None:
    # 12,000 over 12 months at 1 % a month: 12000 * 0.01 / (1 - 1.01 ** -12)
    assert monthly_payment(12_000.0, 12.0, 12) == pytest.approx(1066.1854, abs=1e-4)
    assert monthly_payment(10_000.0, 6.0, 36) == pytest.approx(304.2194, abs=1e-4)


def test_monthly_payment_at_zero_rate_is_principal_over_term() -> None:
    assert monthly_payment(1_200.0, 0.0, 12) == pytest.approx(100.0)


def test_monthly_payment_broadcasts_and_propagates_missing() -> None:
    out = monthly_payment([12_000.0, np.nan], [12.0, 12.0], [12, 12])
    assert out[0] == pytest.approx(1066.1854, abs=1e-4)
    assert np.isnan(out[1])


def test_derived_features_on_hand_made_rows() -> None:
    df = applications({}, {"annual_income": 24_000.0, "loan_amount": 6_000.0})
    out = add_derived(df)
    assert list(out.columns) == [*df.columns, *DERIVED]
    assert out["loan_to_income"].tolist() == pytest.approx([0.2, 0.25])
    assert out["log_income"].tolist() == pytest.approx([math.log(60_001), math.log(24_001)])
    payment = out["monthly_payment"].to_numpy()
    assert payment[0] == pytest.approx(1066.1854, abs=1e-4)
    assert payment[1] == pytest.approx(1066.1854 / 2, abs=1e-4)
    assert out["payment_to_income"].tolist() == pytest.approx(
        [12 * payment[0] / 60_000, 12 * payment[1] / 24_000]
    )
    assert out["total_debt_to_income"].tolist() == pytest.approx(
        [0.2 + 12 * payment[0] / 60_000, 0.2 + 12 * payment[1] / 24_000]
    )


def test_derived_features_leave_the_input_alone() -> None:
    df = applications({})
    add_derived(df)
    assert not set(DERIVED) & set(df.columns)


def test_zero_income_gives_a_large_ratio_not_an_error() -> None:
    out = add_derived(applications({"annual_income": 0.0, "loan_amount": 5_000.0}))
    assert out["loan_to_income"].iloc[0] == pytest.approx(5_000.0)
    assert out["log_income"].iloc[0] == 0.0


def test_missing_income_gives_missing_ratios() -> None:
    out = add_derived(applications({"annual_income": np.nan}))
    assert out[["loan_to_income", "log_income", "payment_to_income"]].isna().all(axis=None)
    assert not np.isnan(out["monthly_payment"].iloc[0])


def test_impute_fills_only_missing_values() -> None:
    df = applications({"credit_score": np.nan}, {"credit_score": 640.0})
    out = impute(df, {"credit_score": 700.0})
    assert out["credit_score"].tolist() == [700.0, 640.0]
    assert np.isnan(df["credit_score"].iloc[0])


def test_spec_learns_medians_flags_and_levels() -> None:
    train = applications(
        {"annual_income": 30_000.0, "home_ownership": "own"},
        {"annual_income": 50_000.0, "home_ownership": None},
        {"annual_income": np.nan, "home_ownership": "rent"},
        {"annual_income": 90_000.0, "home_ownership": "rent"},
    )
    spec = fit_spec(train)
    assert spec["medians"]["annual_income"] == 50_000.0
    assert spec["medians"]["credit_score"] == 700.0
    assert spec["missing_flags"] == ["annual_income"]
    assert spec["categories"]["home_ownership"] == sorted(["own", "rent", MISSING_LEVEL])
    assert spec["categories"]["region"] == ["north"]
    assert spec["columns"] == [
        *NUMERIC,
        *DERIVED,
        "annual_income__missing",
        "employment_type__salaried",
        f"home_ownership__{MISSING_LEVEL}",
        "home_ownership__own",
        "home_ownership__rent",
        "loan_purpose__car",
        "region__north",
    ]


def test_spec_is_json_and_survives_a_round_trip() -> None:
    train = generate_applications(2_000, seed=4)
    spec = fit_spec(train)
    restored = json.loads(json.dumps(spec, allow_nan=False))
    assert restored == spec
    pd.testing.assert_frame_equal(transform(train, restored), transform(train, spec))


def test_transform_imputes_with_the_train_median_and_flags_it() -> None:
    train = applications({"credit_score": 600.0}, {"credit_score": 700.0}, {"credit_score": np.nan})
    spec = fit_spec(train)
    test = applications({"credit_score": np.nan}, {"credit_score": 800.0})
    out = transform(test, spec)
    assert out["credit_score"].tolist() == [650.0, 800.0]
    assert out["credit_score__missing"].tolist() == [1.0, 0.0]


def test_transform_one_hot_encodes_with_the_fitted_levels() -> None:
    train = applications({"region": "east"}, {"region": "west"}, {"region": "north"})
    spec = fit_spec(train)
    out = transform(applications({"region": "west"}, {"region": "east"}), spec)
    region = out[["region__east", "region__north", "region__west"]]
    assert region.to_numpy().tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_unseen_and_unfitted_missing_categories_encode_as_all_zeros() -> None:
    spec = fit_spec(applications({"region": "east"}, {"region": "west"}))
    out = transform(
        applications({"region": "atlantis"}, {"region": None}, {"region": "east"}), spec
    )
    region = out[["region__east", "region__west"]].to_numpy()
    assert region.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert list(out.columns) == spec["columns"]


def test_transform_output_is_complete_float_in_spec_order() -> None:
    train = generate_applications(3_000, seed=8)
    spec = fit_spec(train)
    out = transform(train, spec)
    assert list(out.columns) == spec["columns"]
    assert (out.dtypes == np.float64).all()
    assert not out.isna().any(axis=None)
    assert out.index.equals(train.index)
    assert TARGET not in out.columns


def test_column_order_is_stable_across_input_order_and_batches() -> None:
    train = generate_applications(2_000, seed=8)
    spec = fit_spec(train)
    shuffled = train[list(reversed(train.columns))]
    pd.testing.assert_frame_equal(transform(shuffled, spec), transform(train, spec))
    drifted = generate_applications(500, seed=9, drift=1.0)
    assert list(transform(drifted, spec).columns) == spec["columns"]
    assert fit_spec(shuffled)["columns"] == spec["columns"]


def test_transform_names_missing_columns() -> None:
    spec = fit_spec(applications({}))
    with pytest.raises(ValueError, match="region"):
        transform(applications({}).drop(columns=["region"]), spec)


def test_split_xy_separates_the_label() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], TARGET: [0, 1]})
    x, y = split_xy(frame)
    assert list(x.columns) == ["a"]
    assert y.tolist() == [0, 1]
    assert y.dtype == np.int64


def test_schema_has_no_overlap() -> None:
    assert not set(NUMERIC) & set(CATEGORICAL)
    assert TARGET not in (*NUMERIC, *CATEGORICAL)
