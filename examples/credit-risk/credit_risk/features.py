"""Feature logic: pure functions from raw applications to a numeric model matrix.

The flow is ``spec = fit_spec(train)`` once, then ``transform(frame, spec)`` for every frame
(train, test, a serving batch). The spec is a plain JSON-serialisable dict, so it can be stored
as an artifact next to the model and read back without this module's classes:

* numeric columns are imputed with the train medians; a ``<col>__missing`` flag is added for
  every numeric column that had missing values in train;
* derived columns are computed after imputation (see :func:`add_derived`);
* categorical columns are one-hot encoded with the levels seen in train, as ``<col>__<level>``;
  a missing value is the level ``missing``, and a level not seen in train encodes as all zeros.

The output always has exactly the columns of ``spec["columns"]``, in that order, as float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit_risk.schema import CATEGORICAL, NUMERIC, TARGET

SPEC_VERSION = 1
MISSING_LEVEL = "missing"
DERIVED = (
    "loan_to_income",
    "log_income",
    "monthly_payment",
    "payment_to_income",
    "total_debt_to_income",
)

FeatureSpec = dict[str, Any]


def monthly_payment(principal: Any, annual_rate_pct: Any, term_months: Any) -> np.ndarray:
    """The instalment of a fully amortising loan: ``P * r / (1 - (1 + r) ** -n)``, r monthly.

    A zero rate gives ``P / n``. Inputs broadcast; missing inputs give NaN.
    """
    p = np.asarray(principal, dtype=float)
    r = np.asarray(annual_rate_pct, dtype=float) / 1200.0
    n = np.asarray(term_months, dtype=float)
    safe_r = np.where(r == 0.0, 1.0, r)
    amortised = p * safe_r / (1.0 - (1.0 + safe_r) ** -n)
    return np.where(r == 0.0, p / n, amortised)


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with the derived columns of ``DERIVED`` appended.

    * ``loan_to_income = loan_amount / annual_income``
    * ``log_income = ln(1 + annual_income)``
    * ``monthly_payment``: see :func:`monthly_payment`
    * ``payment_to_income = 12 * monthly_payment / annual_income``
    * ``total_debt_to_income = debt_to_income + payment_to_income``

    Incomes below 1 count as 1 in the ratios (a zero income gives a large ratio, not a
    division by zero) and negative incomes as 0 in the log. Missing inputs give NaN.
    """
    out = df.copy()
    income = out["annual_income"].to_numpy(dtype=float)
    ratio_income = np.maximum(income, 1.0)
    loan = out["loan_amount"].to_numpy(dtype=float)
    payment = monthly_payment(loan, out["interest_rate"], out["loan_term_months"])
    out["loan_to_income"] = loan / ratio_income
    out["log_income"] = np.log1p(np.maximum(income, 0.0))
    out["monthly_payment"] = payment
    out["payment_to_income"] = 12.0 * payment / ratio_income
    out["total_debt_to_income"] = (
        out["debt_to_income"].to_numpy(dtype=float) + out["payment_to_income"].to_numpy()
    )
    return out


def impute(df: pd.DataFrame, medians: dict[str, float]) -> pd.DataFrame:
    """A copy of ``df`` with missing values of each column in ``medians`` set to its median."""
    out = df.copy()
    for column, median in medians.items():
        values = out[column].to_numpy(dtype=float)
        out[column] = np.where(np.isnan(values), median, values)
    return out


def fit_spec(train: pd.DataFrame) -> FeatureSpec:
    """Learn the medians, missing flags and category levels from the training frame."""
    check_columns(train)
    medians: dict[str, float] = {}
    for column in NUMERIC:
        values = train[column].to_numpy(dtype=float)
        medians[column] = float(np.nanmedian(values)) if (~np.isnan(values)).any() else 0.0
    flagged = [c for c in NUMERIC if train[c].isna().any()]
    categories = {c: sorted(set(_levels(train[c]))) for c in CATEGORICAL}
    columns = [
        *NUMERIC,
        *DERIVED,
        *(f"{c}__missing" for c in flagged),
        *(f"{c}__{level}" for c in CATEGORICAL for level in categories[c]),
    ]
    return {
        "version": SPEC_VERSION,
        "numeric": list(NUMERIC),
        "medians": medians,
        "missing_flags": flagged,
        "categories": categories,
        "columns": columns,
    }


def transform(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model matrix of ``df`` under ``spec``: float64, columns ``spec["columns"]`` in order.

    The index of ``df`` is kept; columns of ``df`` that the spec does not use are ignored.
    """
    check_columns(df)
    parts: dict[str, np.ndarray] = {}
    for column in spec["missing_flags"]:
        parts[f"{column}__missing"] = df[column].isna().to_numpy(dtype=float)
    derived = add_derived(impute(df, spec["medians"]))
    for column in (*spec["numeric"], *DERIVED):
        parts[column] = derived[column].to_numpy(dtype=float)
    for column, levels in spec["categories"].items():
        values = _levels(df[column])
        for level in levels:
            parts[f"{column}__{level}"] = (values == level).astype(float)
    return pd.DataFrame({c: parts[c] for c in spec["columns"]}, index=df.index)


def split_xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and the integer label of a frame that carries the ``default`` column."""
    return frame.drop(columns=[TARGET]), frame[TARGET].to_numpy(dtype=np.int64)


def check_columns(df: pd.DataFrame) -> None:
    missing = [c for c in (*NUMERIC, *CATEGORICAL) if c not in df.columns]
    if missing:
        raise ValueError(
            f"the frame lacks the application columns {missing}; it has {list(df.columns)}"
        )


def _levels(column: pd.Series) -> np.ndarray:
    """The values of a categorical column as strings, with missing values as ``missing``."""
    values = column.to_numpy(dtype=object)
    return np.array([MISSING_LEVEL if pd.isna(v) else str(v) for v in values], dtype=object)
