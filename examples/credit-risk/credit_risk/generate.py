"""A seedable synthetic generator of loan applications with a known default mechanism.

Each row is one application: who applies (age, employment, income, home ownership, region),
what they ask for (amount, term, purpose, the rate offered) and their credit file (score,
open accounts, delinquencies, debt-to-income). The label ``default`` is drawn from the noisy
logistic model in :func:`default_logit`, computed on the complete features *before* a few
percent of values are blanked out, as they would be in an application form.

``drift`` in [0, 1] moves the population the way a downturn would: lower incomes, lower credit
scores, higher rates and debt loads, more contract work and unemployment, more renters, more
debt consolidation and small-business loans, and a larger share of applicants from the south.
The random draws do not depend on ``drift``, so two batches with the same seed differ only by
the shift itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from credit_risk.schema import TARGET

EMPLOYMENT_TYPES = ("salaried", "self_employed", "contract", "retired", "unemployed")
HOME_OWNERSHIP = ("rent", "mortgage", "own", "other")
LOAN_PURPOSES = (
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "education",
)
REGIONS = ("north", "south", "east", "west", "central")
LOAN_TERMS = (12, 24, 36, 48, 60)

# Category mixes at drift=0 and drift=1; batches in between interpolate linearly.
_MIX: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "employment_type": ((0.62, 0.14, 0.10, 0.09, 0.05), (0.45, 0.14, 0.20, 0.09, 0.12)),
    "home_ownership": ((0.36, 0.40, 0.20, 0.04), (0.52, 0.30, 0.14, 0.04)),
    "loan_purpose": (
        (0.30, 0.20, 0.15, 0.14, 0.07, 0.06, 0.08),
        (0.38, 0.20, 0.08, 0.10, 0.08, 0.11, 0.05),
    ),
    "region": ((0.20, 0.20, 0.20, 0.20, 0.20), (0.15, 0.35, 0.15, 0.15, 0.20)),
    "loan_term_months": ((0.10, 0.20, 0.35, 0.15, 0.20), (0.05, 0.15, 0.30, 0.15, 0.35)),
}

# Share of values blanked out per column, as on real application forms.
MISSING_RATES = {
    "annual_income": 0.03,
    "employment_years": 0.05,
    "credit_score": 0.02,
    "num_open_accounts": 0.03,
    "debt_to_income": 0.04,
    "home_ownership": 0.03,
    "employment_type": 0.02,
}

_EMPLOYMENT_EFFECT = {
    "salaried": 0.0,
    "self_employed": 0.3,
    "contract": 0.25,
    "retired": 0.1,
    "unemployed": 0.9,
}
_HOME_EFFECT = {"rent": 0.25, "mortgage": 0.0, "own": -0.25, "other": 0.15}
_PURPOSE_EFFECT = {
    "debt_consolidation": 0.2,
    "credit_card": 0.1,
    "home_improvement": -0.15,
    "car": -0.2,
    "medical": 0.3,
    "small_business": 0.6,
    "education": 0.0,
}
_INCOME_FACTOR = {
    "salaried": 1.0,
    "self_employed": 1.1,
    "contract": 0.85,
    "retired": 0.6,
    "unemployed": 0.35,
}


def default_logit(df: pd.DataFrame) -> np.ndarray:
    """The log-odds of default for complete rows, before noise.

    ::

        logit = -2.5
                - 0.018 * (credit_score - 680)
                + 3.0   * (debt_to_income - 0.30)
                + 0.5   * num_delinquencies
                + 2.0   * (loan_amount / annual_income - 0.25)
                + 0.08  * (interest_rate - 13)
                - 0.5   * ln(annual_income / 50_000)
                - 0.03  * (min(employment_years, 20) - 5)
                + 0.02  * (num_open_accounts - 6)
                + 0.004 * (loan_term_months - 36)
                + employment effect  (salaried 0, self_employed +0.3, contract +0.25,
                                      retired +0.1, unemployed +0.9)
                + home effect        (rent +0.25, mortgage 0, own -0.25, other +0.15)
                + purpose effect     (debt_consolidation +0.2, credit_card +0.1,
                                      home_improvement -0.15, car -0.2, medical +0.3,
                                      small_business +0.6, education 0)

    Age and region have no direct effect. The generator adds N(0, 0.5) noise to this value
    and draws ``default ~ Bernoulli(sigmoid(logit + noise))``.
    """
    emp_years = np.minimum(df["employment_years"].to_numpy(dtype=float), 20.0)
    income = df["annual_income"].to_numpy(dtype=float)
    loan = df["loan_amount"].to_numpy(dtype=float)
    return (
        -2.5
        - 0.018 * (df["credit_score"].to_numpy(dtype=float) - 680.0)
        + 3.0 * (df["debt_to_income"].to_numpy(dtype=float) - 0.30)
        + 0.5 * df["num_delinquencies"].to_numpy(dtype=float)
        + 2.0 * (loan / income - 0.25)
        + 0.08 * (df["interest_rate"].to_numpy(dtype=float) - 13.0)
        - 0.5 * np.log(income / 50_000.0)
        - 0.03 * (emp_years - 5.0)
        + 0.02 * (df["num_open_accounts"].to_numpy(dtype=float) - 6.0)
        + 0.004 * (df["loan_term_months"].to_numpy(dtype=float) - 36.0)
        + _effect(df["employment_type"], _EMPLOYMENT_EFFECT)
        + _effect(df["home_ownership"], _HOME_EFFECT)
        + _effect(df["loan_purpose"], _PURPOSE_EFFECT)
    )


def _effect(column: pd.Series, effects: dict[str, float]) -> np.ndarray:
    return np.array([effects[v] for v in column.to_numpy(dtype=object)], dtype=float)


def _mix(name: str, drift: float) -> np.ndarray:
    start, end = (np.asarray(p, dtype=float) for p in _MIX[name])
    probs = (1.0 - drift) * start + drift * end
    return probs / probs.sum()


def _choice(rng: np.random.Generator, levels: tuple, name: str, drift: float, n: int) -> np.ndarray:
    # Inverse-CDF sampling from one uniform per row, so drift changes the mix, not the draws.
    cdf = np.cumsum(_mix(name, drift))
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    return np.asarray(levels)[np.minimum(idx, len(levels) - 1)]


def generate_applications(n_rows: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """``n_rows`` loan applications with a ``default`` label; deterministic in its arguments.

    Columns: age, annual_income, employment_type, employment_years, home_ownership, region,
    loan_amount, loan_term_months, loan_purpose, interest_rate, credit_score,
    num_open_accounts, num_delinquencies, debt_to_income, default. Columns listed in
    ``MISSING_RATES`` have about that share of missing values.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift}")
    rng = np.random.default_rng(seed)
    n = n_rows

    age = np.clip(np.round(rng.normal(42.0, 12.0, n)), 21, 75).astype(np.int64)
    employment_type = _choice(rng, EMPLOYMENT_TYPES, "employment_type", drift, n)
    employment_type = np.where(
        age >= 62, np.where(rng.random(n) < 0.6, "retired", employment_type), employment_type
    )
    employment_years = np.minimum(rng.gamma(2.0, 3.5, n), age - 18.0)
    employment_years = np.where(employment_type == "unemployed", 0.0, employment_years)
    employment_years = np.round(employment_years, 1)

    income_factor = np.array([_INCOME_FACTOR[e] for e in employment_type])
    log_income = (
        np.log(52_000.0)
        + 0.012 * (np.minimum(age, 55) - 40)
        + 0.015 * np.minimum(employment_years, 20)
        + np.log(income_factor)
        + np.log(1.0 - 0.25 * drift)
        + rng.normal(0.0, 0.45, n)
    )
    annual_income = np.round(np.clip(np.exp(log_income), 8_000.0, 500_000.0), -2)

    home_ownership = _choice(rng, HOME_OWNERSHIP, "home_ownership", drift, n)
    region = _choice(rng, REGIONS, "region", drift, n)
    loan_purpose = _choice(rng, LOAN_PURPOSES, "loan_purpose", drift, n)
    loan_term_months = _choice(rng, LOAN_TERMS, "loan_term_months", drift, n).astype(np.int64)
    loan_amount = annual_income * np.exp(rng.normal(np.log(0.22), 0.5, n))
    loan_amount = np.round(np.clip(loan_amount, 1_000.0, 50_000.0) / 50.0) * 50.0

    credit_score = np.round(np.clip(rng.normal(690.0 - 35.0 * drift, 60.0, n), 300, 850))
    delinquency_rate = 0.25 * np.exp((650.0 - credit_score) / 70.0)
    num_delinquencies = rng.poisson(delinquency_rate).astype(np.int64)
    num_open_accounts = rng.poisson(6.0, n).astype(np.int64)
    debt_to_income = np.round(np.clip(rng.beta(2.2, 5.0, n) + 0.08 * drift, 0.0, 0.95), 3)
    interest_rate = np.round(
        np.clip(
            5.0
            + 0.045 * (850.0 - credit_score)
            + 0.04 * (loan_term_months - 36)
            + 2.0 * drift
            + rng.normal(0.0, 1.2, n),
            3.0,
            35.0,
        ),
        2,
    )

    df = pd.DataFrame(
        {
            "age": age,
            "annual_income": annual_income,
            "employment_type": pd.Series(employment_type, dtype="str"),
            "employment_years": employment_years,
            "home_ownership": pd.Series(home_ownership, dtype="str"),
            "region": pd.Series(region, dtype="str"),
            "loan_amount": loan_amount,
            "loan_term_months": loan_term_months,
            "loan_purpose": pd.Series(loan_purpose, dtype="str"),
            "interest_rate": interest_rate,
            "credit_score": credit_score,
            "num_open_accounts": num_open_accounts.astype(float),
            "num_delinquencies": num_delinquencies,
            "debt_to_income": debt_to_income,
        }
    )
    logit = default_logit(df) + rng.normal(0.0, 0.5, n)
    df[TARGET] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    for column, rate in MISSING_RATES.items():
        mask = rng.random(n) < rate
        df.loc[mask, column] = np.nan
    return df
