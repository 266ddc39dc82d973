"""Drift between a reference and a current table: methods, verdicts, reports and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from conveyor.checks.drift import DriftOptions, DriftReport, FeatureDrift, drift
from conveyor.core.checks import Severity
from conveyor.errors import UsageError


def frame(n: int, *, seed: int, shift: float = 0.0, mix: tuple[float, ...] = (0.5, 0.3, 0.2)):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50 + shift * 10, 10, n),
            "age": rng.gamma(4.0, 10.0, n),
            "city": rng.choice(["paris", "lyon", "nice"], size=n, p=list(mix)),
        }
    )


def by_column(report: DriftReport) -> dict[str, FeatureDrift]:
    return {f.column: f for f in report.features}


@pytest.mark.parametrize("rows", [500, 20_000])
def test_two_samples_of_one_distribution_do_not_drift(rows: int) -> None:
    report = drift(frame(rows, seed=1), frame(rows, seed=2))

    assert [f.verdict for f in report.features] == ["no drift"] * 3
    assert not report.drifted and report.share == 0.0 and report.checked == 3
    assert all(r.passed for r in report.check_results())


@pytest.mark.parametrize("rows", [500, 20_000])
def test_a_shifted_number_and_a_new_category_mix_drift(rows: int) -> None:
    current = frame(rows, seed=2, shift=1.0, mix=(0.2, 0.3, 0.5))

    features = by_column(drift(frame(rows, seed=1), current))

    assert features["income"].drifted and features["city"].drifted
    assert not features["age"].drifted


def test_the_method_switches_above_1000_reference_values() -> None:
    current = frame(3000, seed=2)
    small = by_column(drift(frame(1000, seed=1), current))
    large = by_column(drift(frame(1001, seed=1), current))

    assert (small["income"].method, small["city"].method) == ("ks", "chisquare")
    assert (small["income"].threshold, small["income"].p_value is not None) == (0.05, True)
    assert (large["income"].method, large["city"].method) == ("wasserstein", "jensenshannon")
    assert (large["income"].threshold, large["income"].p_value) == (0.1, None)


def test_the_1000_counts_values_not_rows() -> None:
    reference = frame(1001, seed=1)
    reference.loc[0, "income"] = np.nan

    features = by_column(drift(reference, frame(2000, seed=2)))

    assert features["income"].method == "ks"
    assert (features["income"].ref_size, features["income"].ref_ignored) == (1000, 1)


def test_few_distinct_values_are_compared_as_counts() -> None:
    rng = np.random.default_rng(3)
    small = pd.DataFrame({"rating": rng.integers(1, 5, 800) * 1.0, "flag": rng.integers(0, 2, 800)})
    large = pd.concat([small] * 3, ignore_index=True)

    assert [f.method for f in drift(small, small).features] == ["chisquare", "z"]
    assert [f.method for f in drift(large, large).features] == ["jensenshannon"] * 2
    assert drift(large, large).features[1].kind == "categorical"  # int with <= 10 values


@pytest.mark.parametrize(
    ("values", "small", "large"), [(5, "chisquare", "jensenshannon"), (6, "ks", "wasserstein")]
)
def test_five_distinct_values_in_both_tables_together_are_few(
    values: int, small: str, large: str
) -> None:
    reference = pd.DataFrame({"x": np.arange(2000.0) % (values - 1)})
    current = pd.DataFrame({"x": np.arange(2000.0) % values})  # one value the reference lacks

    assert drift(reference.iloc[:1000], current).features[0].method == small
    assert drift(reference, current).features[0].method == large


def test_ks_matches_scipy() -> None:
    reference, current = frame(300, seed=1), frame(400, seed=2, shift=0.3)

    feature = by_column(drift(reference, current))["income"]

    expected = stats.ks_2samp(reference["income"], current["income"])
    assert feature.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chisquare_matches_scipy_goodness_of_fit_to_the_reference_shares() -> None:
    reference, current = frame(600, seed=1), frame(900, seed=2, mix=(0.4, 0.3, 0.3))
    ref_counts = reference["city"].value_counts()
    cur_counts = current["city"].value_counts().reindex(ref_counts.index)

    feature = by_column(drift(reference, current))["city"]

    expected = stats.chisquare(cur_counts, ref_counts * len(current) / len(reference))
    assert feature.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_z_test_squared_is_the_uncorrected_2x2_chi_square() -> None:
    reference = pd.DataFrame({"flag": [True] * 300 + [False] * 500})
    current = pd.DataFrame({"flag": [True] * 380 + [False] * 420})

    feature = drift(reference, current).features[0]

    table = [[300, 500], [380, 420]]
    expected = stats.chi2_contingency(table, correction=False)
    assert feature.method == "z"
    assert feature.statistic**2 == pytest.approx(expected.statistic, rel=1e-9)
    assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert feature.drifted


def test_wasserstein_is_scipy_normed_by_the_reference_std() -> None:
    reference, current = frame(5000, seed=1), frame(7000, seed=2, shift=0.2)

    feature = by_column(drift(reference, current))["income"]

    distance = stats.wasserstein_distance(reference["income"], current["income"])
    assert feature.statistic == pytest.approx(distance / np.std(reference["income"]), rel=1e-9)


def test_jensenshannon_matches_scipy_with_natural_log() -> None:
    reference, current = frame(5000, seed=1), frame(6000, seed=2, mix=(0.3, 0.3, 0.4))
    keys = ["paris", "lyon", "nice"]
    p = reference["city"].value_counts().reindex(keys).to_numpy()
    q = current["city"].value_counts().reindex(keys).to_numpy()

    feature = by_column(drift(reference, current))["city"]

    assert feature.statistic == pytest.approx(jensenshannon(p / p.sum(), q / q.sum()), rel=1e-9)


def test_a_category_the_reference_never_had_is_drift_for_chi_square() -> None:
    reference = pd.DataFrame({"city": ["paris", "lyon", "nice"] * 100})
    current = pd.DataFrame({"city": ["paris", "lyon", "nice"] * 100 + ["rome"]})

    feature = drift(reference, current).features[0]

    assert (feature.method, feature.p_value, feature.drifted) == ("chisquare", 0.0, True)
    assert json.loads(json.dumps(feature.to_json(), allow_nan=False))["statistic"] == "inf"


def test_psi_uses_ten_reference_quantile_bins() -> None:
    reference, current = frame(5000, seed=1), frame(4000, seed=2, shift=0.15)
    options = DriftOptions(numeric_method="psi", categorical_method="psi")

    features = by_column(drift(reference, current, options))

    edges = np.quantile(reference["income"], np.arange(1, 10) / 10, method="inverted_cdf")
    bins = [-np.inf, *edges, np.inf]
    p = pd.cut(reference["income"], bins).value_counts(sort=False).to_numpy() / 5000
    q = pd.cut(current["income"], bins).value_counts(sort=False).to_numpy() / 4000
    assert features["income"].method == "psi" and features["city"].method == "psi"
    assert features["income"].statistic == pytest.approx(np.sum((p - q) * np.log(p / q)))
    assert features["income"].threshold == 0.1


def test_psi_gives_an_empty_bin_a_small_share_instead_of_infinity() -> None:
    reference = pd.DataFrame({"city": ["paris"] * 50 + ["lyon"] * 50})
    current = pd.DataFrame({"city": ["paris"] * 100})

    feature = drift(reference, current, DriftOptions(methods={"city": "psi"})).features[0]

    expected = (0.5 - 1e-4) * np.log(0.5 / 1e-4) + (0.5 - 1.0) * np.log(0.5 / 1.0)
    assert feature.statistic == pytest.approx(expected)
    assert feature.drifted


def test_per_column_methods_and_thresholds_win() -> None:
    options = DriftOptions(
        methods={"income": "psi", "city": "jensenshannon"},
        thresholds={"age": 0.5, "city": 0.9},
        threshold=0.2,
    )
    current = frame(800, seed=2, shift=1.0, mix=(0.2, 0.3, 0.5))

    features = by_column(drift(frame(800, seed=1), current, options))

    assert (features["income"].method, features["income"].threshold) == ("psi", 0.2)
    assert (features["age"].method, features["age"].threshold) == ("ks", 0.5)
    assert (features["city"].method, features["city"].threshold) == ("jensenshannon", 0.9)
    assert not features["city"].drifted  # a distance below 0.9


def test_the_dataset_drifts_when_the_share_reaches_drift_share() -> None:
    reference = frame(800, seed=1).assign(score=np.arange(800.0))
    current = frame(800, seed=2, shift=1.0, mix=(0.2, 0.3, 0.5)).assign(score=np.arange(800.0))

    half = drift(reference, current)
    stricter = drift(reference, current, DriftOptions(drift_share=0.6))

    assert (half.drifted_count, half.checked, half.share) == (2, 4, 0.5)
    assert half.drifted and not stricter.drifted
    dataset = half.check_results()[-1]
    assert (dataset.name, dataset.kind, dataset.passed, dataset.severity) == (
        "drift",
        "data",
        False,
        Severity.ERROR,
    )
    assert dataset.metrics["share"] == 0.5


def test_columns_may_come_in_another_order_and_extra_columns_are_listed() -> None:
    reference = frame(500, seed=1)
    current = frame(500, seed=1)[["city", "age", "income"]].assign(extra=1)

    report = drift(reference, current)

    assert [f.column for f in report.features] == ["income", "age", "city"]
    assert [f.statistic for f in report.features] == [0.0, 0.0, 0.0]  # identical data
    assert report.new_columns == ("extra",)


def test_a_column_missing_from_current_is_reported_not_passed() -> None:
    report = drift(frame(500, seed=1), frame(500, seed=2).drop(columns="age"))

    age = by_column(report)["age"]
    result = next(r for r in report.check_results() if r.name == "drift:age")
    assert (age.checked, age.note) == (False, "missing from the current data")
    assert not result.passed and "missing from the current data" in result.message
    assert report.checked == 2 and "1 not checked" in report.summary()


def test_all_null_columns_are_not_checked_and_not_passed() -> None:
    reference = frame(500, seed=1).assign(empty=np.nan, text=None)
    current = frame(500, seed=2).assign(empty=1.0, text="x")
    current["income"] = np.nan

    report = drift(reference, current)
    features = by_column(report)

    assert features["income"].note == "no values in the current data (500 null, NaN or inf)"
    assert features["empty"].note.startswith("no values in the reference")
    assert not features["text"].checked
    failed = {r.name for r in report.check_results() if not r.passed}
    assert failed == {"drift:income", "drift:empty", "drift:text"}


def test_nan_and_infinity_are_left_out_and_counted() -> None:
    reference = frame(500, seed=1)
    current = frame(500, seed=1)
    current.loc[:9, "income"] = np.inf
    current.loc[10:19, "income"] = np.nan
    current.loc[:4, "city"] = None

    features = by_column(drift(reference, current))

    assert (features["income"].cur_size, features["income"].cur_ignored) == (480, 20)
    assert (features["city"].cur_size, features["city"].cur_ignored) == (495, 5)
    expected = stats.ks_2samp(reference["income"], current["income"].iloc[20:])
    assert features["income"].p_value == pytest.approx(expected.pvalue)


def test_nothing_checkable_is_reported_and_fails_the_dataset_check() -> None:
    reference = pd.DataFrame({"a": [np.nan, np.nan], "b": [1.0, 2.0]})

    report = drift(reference, pd.DataFrame({"a": [1.0, 2.0]}))

    assert report.checked == 0 and not report.drifted
    assert report.summary() == "no feature could be checked (2 not checked)"
    assert not report.check_results()[-1].passed


def test_a_single_row_is_compared() -> None:
    report = drift(pd.DataFrame({"x": [1.0], "c": ["a"]}), pd.DataFrame({"x": [5.0], "c": ["a"]}))

    assert [f.method for f in report.features] == ["z", "z"]
    assert report.features[1].p_value == 1.0 and not report.features[1].drifted


def test_constant_columns_do_not_warn_or_divide_by_zero() -> None:
    reference = pd.DataFrame({"x": np.full(2000, 3.0), "y": np.arange(2000.0)})
    current = pd.DataFrame({"x": np.full(1500, 3.0), "y": np.full(1500, 7.0)})

    features = by_column(drift(reference, current))

    assert (features["x"].method, features["x"].statistic) == ("jensenshannon", 0.0)
    assert features["y"].method == "wasserstein" and features["y"].drifted


def test_mixed_types_are_compared_by_text_and_say_so() -> None:
    reference = pd.DataFrame({"code": pd.Series([1, "a", 2.5] * 100, dtype=object)})
    current = pd.DataFrame({"code": pd.Series(["1", "a", "2.5"] * 100, dtype=object)})

    feature = drift(reference, current).features[0]

    assert feature.kind == "categorical" and not feature.drifted
    assert "mixed types" in feature.note


def test_a_type_change_is_not_checked_and_says_how_to_fix_it() -> None:
    reference = pd.DataFrame({"x": np.linspace(0, 1, 100)})
    current = pd.DataFrame({"x": ["low", "high"] * 50})

    feature = drift(reference, current).features[0]

    assert not feature.checked
    assert feature.note.startswith("numeric in the reference but str here")


def test_integer_categories_match_floats_with_the_same_value() -> None:
    reference = pd.DataFrame({"grade": [1, 2, 3] * 100})
    current = pd.DataFrame({"grade": [1.0, 2.0, 3.0, np.nan] * 75})

    feature = drift(reference, current).features[0]

    assert feature.kind == "categorical" and feature.statistic == 0.0


def test_a_million_distinct_categories_are_compared() -> None:
    labels = np.char.add("id", np.arange(1_000_000).astype(str))
    reference = pd.DataFrame({"id": labels})
    current = pd.DataFrame({"id": labels[500_000:]})

    feature = drift(reference, current).features[0]

    assert feature.method == "jensenshannon" and feature.drifted
    assert feature.statistic == pytest.approx(jensenshannon([1, 1], [0, 2]))
    assert feature.histogram is not None and len(feature.histogram.labels) == 20


def test_datetime_columns_are_reported_as_unsupported() -> None:
    reference = pd.DataFrame({"at": pd.date_range("2024-01-01", periods=10), "x": range(10)})

    feature = drift(reference, reference, DriftOptions(exclude=("x",))).features[0]

    assert feature.kind == "unsupported" and not feature.checked
    assert "exclude the column" in feature.note


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (pd.DataFrame({"a": []}), pd.DataFrame({"a": [1.0]}), "the reference data is empty"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame(), "the current data is empty"),
        ([1, 2], pd.DataFrame({"a": [1.0]}), "the reference data is a list"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), pd.DataFrame({"a": [1]}), "more than one"),
    ],
)
def test_unusable_tables_are_usage_errors(reference: object, current: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        drift(reference, current)  # type: ignore[arg-type]


def test_an_unknown_method_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match="unknown method 'wasserstien'") as caught:
        DriftOptions(methods={"income": "wasserstien"})
    assert caught.value.hint == "did you mean 'wasserstein'?"
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DriftOptions(methods={"incme": "psi"}), "column 'incme'"),
        (DriftOptions(methods={"city": "ks"}), "the column is categorical"),
        (DriftOptions(thresholds={"income": 5}), "is not a p-value"),
        (DriftOptions(columns=("age",), exclude=("age",)), "no column left"),
    ],
)
def test_options_that_do_not_fit_the_data_are_usage_errors(
    options: DriftOptions, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        drift(frame(300, seed=1), frame(300, seed=2), options)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drift_share": 0},
        {"threshold": -1},
        {"thresholds": {"a": float("nan")}},
        {"categorical_method": "ks"},
    ],
)
def test_impossible_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        DriftOptions(**kwargs)  # type: ignore[arg-type]


def test_histograms_hold_reference_and_current_counts() -> None:
    reference, current = frame(2000, seed=1), frame(1000, seed=2, shift=3.0)

    features = by_column(drift(reference, current))

    numeric = features["income"].histogram
    assert numeric is not None and len(numeric.edges) == len(numeric.reference) + 1 == 21
    assert sum(numeric.reference) == 2000
    assert sum(numeric.current) + numeric.current_other == 1000 and numeric.current_other > 0
    category = features["city"].histogram
    assert category is not None and set(category.labels) == {"paris", "lyon", "nice"}
    assert sum(category.current) == 1000


def test_reports_render_one_line_per_feature_and_valid_json() -> None:
    reference = frame(800, seed=1)
    current = frame(800, seed=2, shift=1.0).drop(columns="age")

    report = drift(reference, current)

    lines = report.to_text().splitlines()
    assert len(lines) == 1 + 3 + 1
    assert lines[1].split()[:3] == ["income", "numeric", "ks"] and lines[1].endswith("drift")
    assert "not checked: missing from the current data" in lines[2]
    assert "| income | numeric | ks |" in report.to_markdown()
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["features"][0]["verdict"] == "drift" and data["checked"] == 2
    names = [r.name for r in report.check_results()]
    assert names == ["drift:income", "drift:age", "drift:city", "drift"]
    assert all(r.kind == "data" for r in report.check_results())


def test_one_worker_gives_the_same_report_as_a_thread_per_cpu() -> None:
    reference, current = frame(3000, seed=1), frame(2000, seed=2, shift=0.5)

    assert drift(reference, current, workers=1).to_json() == drift(reference, current).to_json()
