"""Reference profiles: column kinds, JSON round trips, and drift from a profile vs raw data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conveyor.checks.drift import DriftOptions, drift
from conveyor.checks.profile import (
    CategoricalColumn,
    NumericColumn,
    Profile,
    UnsupportedColumn,
    profile,
)
from conveyor.errors import UsageError


def reference(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "nice", "lille"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    return pd.DataFrame(
        {
            "income": rng.lognormal(3.0 + shift, 0.5, n),
            "score": rng.normal(shift, 1.0, n),
            "city": city,
            "children": rng.integers(0, 4, n),
        }
    )


def round_trip(p: Profile) -> Profile:
    return Profile.from_json(json.loads(json.dumps(p.to_json(), allow_nan=False)))


def test_column_kinds_follow_the_dtype() -> None:
    data = pd.DataFrame(
        {
            "f": [0.5, 1.5] * 10,
            "wide_int": np.arange(20),
            "narrow_int": [1, 2] * 10,
            "flag": [True, False] * 10,
            "text": ["a", "b"] * 10,
            "cat": pd.Categorical(["x", "y"] * 10),
            "objects_of_ints": pd.Series(list(range(20)), dtype=object),
            "mixed": pd.Series([1, "a"] * 10, dtype=object),
            "at": pd.date_range("2024-01-01", periods=20),
        }
    )

    columns = profile(data).columns

    kinds = {name: str(column.kind) for name, column in columns.items()}
    assert kinds == {
        "f": "numeric",
        "wide_int": "numeric",
        "narrow_int": "categorical",
        "flag": "categorical",
        "text": "categorical",
        "cat": "categorical",
        "objects_of_ints": "numeric",
        "mixed": "categorical",
        "at": "unsupported",
    }
    mixed = columns["mixed"]
    assert isinstance(mixed, CategoricalColumn) and mixed.mixed
    assert isinstance(columns["at"], UnsupportedColumn)


@pytest.mark.parametrize(("levels", "kind"), [(10, "categorical"), (11, "numeric")])
def test_integers_with_at_most_ten_values_are_categorical(levels: int, kind: str) -> None:
    data = pd.DataFrame({"n": np.arange(100) % levels})

    assert profile(data).columns["n"].kind == kind


def test_numeric_summary_leaves_out_nan_and_infinity() -> None:
    data = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.inf, -np.inf, 4.0, None]})

    column = profile(data).columns["x"]

    assert isinstance(column, NumericColumn)
    assert (column.count, column.ignored, column.min, column.max) == (3, 4, 1.0, 4.0)
    assert column.std == pytest.approx(np.std([1.0, 2.0, 4.0]))
    assert column.values.tolist() == [1.0, 2.0, 4.0] and column.exact


def test_large_numeric_columns_keep_quantiles_and_exact_bins() -> None:
    data = reference(50_000, seed=1)

    column = profile(data, quantiles=500).columns["score"]

    assert isinstance(column, NumericColumn) and not column.exact
    assert column.values.size == 500 and np.all(np.diff(column.values) >= 0)
    ranks = np.searchsorted(np.sort(data["score"]), column.values, side="right")
    assert np.abs(ranks - (np.arange(500) + 0.5) * 100).max() <= 1  # the midpoint quantiles
    assert column.bin_counts.tolist() == [5000] * 10
    assert column.hist_counts.sum() == 50_000 and column.count == 50_000


def test_profiles_round_trip_through_json() -> None:
    data = reference(5000, seed=1).assign(
        at=pd.date_range("2024-01-01", periods=5000, freq="min"), gone=np.nan
    )
    original = profile(data, quantiles=100, max_categories=3)

    loaded = round_trip(original)

    assert loaded.to_json() == original.to_json()
    assert loaded.rows == 5000 and list(loaded.columns) == list(data.columns)
    current = reference(3000, seed=2, shift=0.2)
    assert drift(loaded, current).to_json() == drift(original, current).to_json()


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.2, 1.0])
def test_drift_from_a_profile_agrees_with_drift_from_raw_data(shift: float) -> None:
    data = reference(200_000, seed=1)
    current = reference(150_000, seed=2, shift=shift)
    options = DriftOptions(methods={"score": "psi", "children": "psi"})

    raw = {f.column: f for f in drift(data, current, options).features}
    stored = {f.column: f for f in drift(round_trip(profile(data)), current, options).features}

    for name in ["income", "score", "city", "children"]:
        assert stored[name].method == raw[name].method
        assert stored[name].drifted == raw[name].drifted, name
    assert stored["income"].approximate and not raw["income"].approximate
    assert stored["income"].statistic == pytest.approx(raw["income"].statistic, abs=0.005)
    for exact in ["score", "city", "children"]:  # bins and counts are stored exactly
        assert stored[exact].statistic == pytest.approx(raw[exact].statistic, rel=1e-12)


def test_ks_from_a_large_profile_is_close_to_ks_on_raw_data() -> None:
    data, current = reference(100_000, seed=1), reference(5000, seed=2, shift=0.03)
    options = DriftOptions(numeric_method="ks")

    raw = drift(data, current, options).features[1]
    stored = drift(profile(data), current, options).features[1]

    assert stored.statistic == pytest.approx(raw.statistic, abs=1 / 1000)
    assert stored.p_value == pytest.approx(raw.p_value, rel=0.2)


def test_small_profiles_keep_every_value_so_tests_are_exact() -> None:
    data, current = reference(800, seed=1), reference(900, seed=2, shift=0.1)

    raw = drift(data, current).to_json()
    stored = drift(round_trip(profile(data)), current).to_json()

    assert stored == raw
    assert [f["method"] for f in stored["features"]] == ["ks", "ks", "chisquare", "chisquare"]


def test_a_truncated_category_list_compares_the_rest_as_other() -> None:
    data = pd.DataFrame({"c": list("aaaabbbccd") * 200})
    current = pd.DataFrame({"c": list("aaaabbbcce") * 200})

    stored = profile(data, max_categories=2)
    feature = drift(stored, current).features[0]

    column = stored.columns["c"]
    assert isinstance(column, CategoricalColumn)
    assert (column.labels.tolist(), column.other, column.n_unique) == (["a", "b"], 600, 4)
    assert feature.approximate and feature.statistic == 0.0  # d -> e hides in "other"
    assert drift(data, current).features[0].drifted  # the raw data sees the new category


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "something else"}, "not a Conveyor profile"),
        ({"format": "conveyor.profile", "version": 99}, "version 99 is not supported"),
        ({"format": "conveyor.profile", "version": 1, "rows": 3}, "damaged profile"),
        (
            {
                "format": "conveyor.profile",
                "version": 1,
                "rows": 3,
                "columns": [{"name": "x", "kind": "numeric", "count": 3}],
            },
            "damaged profile: KeyError",
        ),
    ],
)
def test_a_damaged_profile_is_a_usage_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        Profile.from_json(data)
    assert "re-create it" in (caught.value.hint or "")


def test_profile_refuses_empty_data_and_silly_limits() -> None:
    with pytest.raises(UsageError, match="the reference data is empty"):
        profile(pd.DataFrame({"x": []}))
    with pytest.raises(UsageError, match="quantiles=1"):
        profile(pd.DataFrame({"x": [1.0]}), quantiles=1)
