"""The columns of a loan application, as the generator writes them and the features read them."""

from __future__ import annotations

TARGET = "default"

NUMERIC = (
    "age",
    "annual_income",
    "employment_years",
    "loan_amount",
    "loan_term_months",
    "interest_rate",
    "credit_score",
    "num_open_accounts",
    "num_delinquencies",
    "debt_to_income",
)

CATEGORICAL = ("employment_type", "home_ownership", "loan_purpose", "region")
