"""Evaluation: metrics agree with scikit-learn, intervals cover, bad inputs say what is wrong."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

from conveyor.checks.bootstrap import (
    auc_stat,
    average_precision_stat,
    paired_bootstrap,
    resample_counts,
    resample_indices,
    resampled_values,
)
from conveyor.checks.evaluation import (
    Evaluation,
    evaluate_classifier,
    evaluate_model,
    evaluate_regressor,
)
from conveyor.errors import EXIT_USAGE, UsageError


def binary_data(n: int, seed: int, *, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.6)))
    return y, (np.round(score, 2) if ties else score)


def sklearn_binary(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (p >= threshold).astype(int)
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, p),
        "pr_auc": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, y_proba=p),
        "brier": skm.brier_score_loss(y, p),
    }


# --- metrics against scikit-learn ---------------------------------------------------------


@pytest.mark.parametrize(("seed", "threshold", "ties"), [(0, 0.5, True), (1, 0.3, False)])
def test_binary_metrics_match_sklearn(seed: int, threshold: float, ties: bool) -> None:
    y, p = binary_data(1500, seed, ties=ties)
    e = evaluate_classifier(y, p, threshold=threshold, bootstrap=0)
    expected = sklearn_binary(y, p, threshold)
    assert e.metrics == pytest.approx(expected, abs=1e-12)
    assert e.undefined == {}
    pred = (p >= threshold).astype(int)
    assert [list(r) for r in e.confusion_matrix] == skm.confusion_matrix(y, pred).tolist()


def test_multiclass_metrics_are_macro_averages_matching_sklearn() -> None:
    rng = np.random.default_rng(3)
    names = np.array(["cat", "dog", "eel"])
    y = names[rng.integers(0, 3, 900)]
    logits = rng.normal(size=(900, 3)) + 1.5 * (y[:, None] == names)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    e = evaluate_classifier(y, p, bootstrap=0)
    pred = names[p.argmax(axis=1)]
    onehot = (y[:, None] == names).astype(int)
    assert e.task == "multiclass"
    assert e.classes == ("cat", "dog", "eel")
    assert e.metrics == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, average="macro"),
            "recall": skm.recall_score(y, pred, average="macro"),
            "f1": skm.f1_score(y, pred, average="macro"),
            "roc_auc": skm.roc_auc_score(y, p, multi_class="ovr"),
            "pr_auc": skm.average_precision_score(onehot, p, average="macro"),
            "log_loss": skm.log_loss(y, y_proba=p),
            "brier": skm.brier_score_loss(y, p),
        },
        abs=1e-12,
    )
    assert e.calibration is None
    assert np.array(e.confusion_matrix).tolist() == skm.confusion_matrix(y, pred).tolist()


def test_regression_metrics_match_sklearn_and_mape_leaves_out_zero_targets() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, 800)
    y[:7] = 0.0
    pred = y + rng.normal(0, 1, 800)
    e = evaluate_regressor(y, pred, bootstrap=0)
    nz = y != 0
    assert e.metrics == pytest.approx(
        {
            "mae": skm.mean_absolute_error(y, pred),
            "rmse": skm.root_mean_squared_error(y, pred),
            "r2": skm.r2_score(y, pred),
            "mape": skm.mean_absolute_percentage_error(y[nz], pred[nz]),
        },
        abs=1e-12,
    )
    assert "mape leaves out 7 of 800 rows where y_true is 0" in e.notes
    assert e.confusion_matrix == () and e.calibration is None


def test_calibration_bins_hold_every_row_and_match_their_rows() -> None:
    y, p = binary_data(1000, 5, ties=False)
    p[:3] = [0.0, 1.0, 0.5]
    cal = evaluate_classifier(y, p, bootstrap=0, calibration_bins=10).calibration
    assert cal is not None
    assert sum(b.count for b in cal.bins) == 1000
    gaps = 0.0
    for i, b in enumerate(cal.bins):
        rows = np.clip((p * 10).astype(int), 0, 9) == i
        assert b.count == rows.sum()
        assert b.mean_predicted == pytest.approx(p[rows].mean())
        assert b.observed_rate == pytest.approx(y[rows].mean())
        assert b.lower <= b.mean_predicted <= b.upper
        gaps += abs(p[rows].sum() - y[rows].sum())
    assert cal.ece == pytest.approx(gaps / 1000)


def test_an_empty_calibration_bin_has_no_rates_not_a_nan() -> None:
    cal = evaluate_classifier([0, 1, 1], [0.05, 0.95, 0.9], bootstrap=0).calibration
    assert cal is not None
    assert cal.bins[5].count == 0
    assert cal.bins[5].mean_predicted is None and cal.bins[5].observed_rate is None


# --- slices -------------------------------------------------------------------------------


def test_slices_report_each_value_with_its_own_metrics() -> None:
    y, p = binary_data(600, 6)
    region = np.where(np.arange(600) < 580, np.where(np.arange(600) % 2, "north", "south"), "isle")
    region = region.astype(object)
    region[:10] = None
    frame = pd.DataFrame({"region": region, "tier": np.arange(600) % 3})
    e = evaluate_classifier(y, p, slices=frame, bootstrap=0, min_slice_size=30)
    found = {(s.column, s.value): s for s in e.slices}
    assert set(found) == {
        ("region", "isle"),
        ("region", "north"),
        ("region", "south"),
        ("region", None),
        ("tier", 0),
        ("tier", 1),
        ("tier", 2),
    }
    assert sum(s.n for s in e.slices if s.column == "region") == 600
    north = (region == "north") & pd.notna(region)
    s = found[("region", "north")]
    assert s.n == north.sum() and not s.small
    assert s.metrics == pytest.approx(sklearn_binary(y[north], p[north], 0.5), abs=1e-12)
    assert found[("region", "isle")].small and found[("region", None)].small


def test_a_single_class_slice_reports_none_with_a_reason_never_a_number() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    p = np.array([0.1, 0.2, 0.7, 0.8, 0.6, 0.3, 0.9, 0.4])
    frame = pd.DataFrame({"group": ["a", "a", "a", "b", "b", "b", "b", "b"]})
    e = evaluate_classifier(y, p, slices=frame, bootstrap=0)
    a = next(s for s in e.slices if s.value == "a")
    assert a.metrics["roc_auc"] is None and a.metrics["pr_auc"] is None
    assert a.metrics["recall"] is None
    assert "no rows of class 1" in a.undefined["roc_auc"]
    assert a.metrics["precision"] == 0.0  # one row predicted positive, wrongly
    assert a.metrics["accuracy"] == pytest.approx(2 / 3)


def test_slices_of_another_length_are_refused() -> None:
    y, p = binary_data(50, 7)
    with pytest.raises(UsageError, match="slices has 49 rows but the evaluation has 50"):
        evaluate_classifier(y, p, slices=pd.DataFrame({"g": ["x"] * 49}), bootstrap=0)


# --- the vectorised bootstrap -------------------------------------------------------------


def test_vectorised_auc_and_ap_equal_sklearn_on_the_same_resamples() -> None:
    y, p = binary_data(400, 8)  # rounded scores: many ties
    stats = [auc_stat(y == 1, p), average_precision_stat(y == 1, p)]
    values = resampled_values(stats, 400, resamples=30, seed=11)
    for i, rows in enumerate(resample_indices(400, 30, 11)):
        assert values[0, i] == pytest.approx(skm.roc_auc_score(y[rows], p[rows]), abs=1e-12)
        assert values[1, i] == pytest.approx(
            skm.average_precision_score(y[rows], p[rows]), abs=1e-12
        )


def test_resample_counts_are_the_counts_of_the_resample_indices_in_order() -> None:
    chunks = list(resample_counts(7, 5, seed=2))
    counts = np.vstack(chunks)
    assert counts.shape == (5, 7)
    for row, rows in zip(counts, resample_indices(7, 5, 2), strict=True):
        assert row.tolist() == np.bincount(rows, minlength=7).tolist()


def test_a_resample_without_positives_is_undefined_not_a_number() -> None:
    stat = auc_stat(np.array([True, False, False]), np.array([0.9, 0.1, 0.2]))
    counts = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    values = stat(counts)
    assert np.isnan(values[0]) and values[1] == 1.0


def test_interval_covers_the_true_auc_in_about_95_percent_of_samples() -> None:
    rng = np.random.default_rng(12)
    shift = 1.0
    true_auc = norm.cdf(shift / np.sqrt(2))
    covered = 0
    for _ in range(120):
        y = rng.integers(0, 2, 300)
        score = norm.cdf(rng.normal(size=300) + shift * y - shift / 2)
        iv = evaluate_classifier(y, score, bootstrap=300, seed=int(rng.integers(1 << 30)))
        interval = iv.intervals["roc_auc"]
        covered += interval.low <= true_auc <= interval.high
    assert 0.86 <= covered / 120 <= 1.0


def test_intervals_are_reproducible_by_seed_and_contain_the_estimate() -> None:
    y, p = binary_data(500, 13)
    a = evaluate_classifier(y, p, bootstrap=200, seed=1)
    b = evaluate_classifier(y, p, bootstrap=200, seed=1)
    c = evaluate_classifier(y, p, bootstrap=200, seed=2)
    assert a.intervals == b.intervals != c.intervals
    assert set(a.intervals) == set(a.metrics)
    for name, iv in a.intervals.items():
        value = a.metrics[name]
        assert value is not None and iv.low <= value <= iv.high
        assert iv.resamples == 200 and iv.confidence == 0.95


def test_paired_bootstrap_difference_is_challenger_minus_champion() -> None:
    y, p = binary_data(300, 14, ties=False)
    q = np.clip(p + np.random.default_rng(1).normal(0, 0.2, 300), 0, 1)
    d = paired_bootstrap(auc_stat(y == 1, q), auc_stat(y == 1, p), 300, resamples=50, seed=3)
    assert d.baseline == pytest.approx(skm.roc_auc_score(y, q))
    assert d.candidate == pytest.approx(skm.roc_auc_score(y, p))
    assert d.difference == pytest.approx(d.candidate - d.baseline)
    diffs = [
        skm.roc_auc_score(y[r], p[r]) - skm.roc_auc_score(y[r], q[r])
        for r in resample_indices(300, 50, 3)
    ]
    assert d.interval is not None
    assert d.interval.low == pytest.approx(np.quantile(diffs, 0.025), abs=1e-12)
    assert d.interval.high == pytest.approx(np.quantile(diffs, 0.975), abs=1e-12)


def test_a_metric_undefined_on_many_resamples_gets_no_interval_and_a_note() -> None:
    y = np.zeros(40, dtype=int)
    y[0] = 1
    p = np.linspace(0.01, 0.99, 40)
    e = evaluate_classifier(y, p, bootstrap=200)
    assert e.metrics["roc_auc"] is not None
    assert "roc_auc" not in e.intervals
    assert any(n.startswith("no interval for roc_auc: undefined on") for n in e.notes)


# --- the value ----------------------------------------------------------------------------


def test_json_round_trip_is_exact_and_strict_json() -> None:
    y, p = binary_data(200, 15)
    frame = pd.DataFrame({"g": np.where(np.arange(200) < 5, "tiny", "big")})
    e = evaluate_classifier(y, p, slices=frame, bootstrap=50)
    text = e.to_json()
    raw = json.loads(text)
    assert raw["schema"] == "conveyor.evaluation/1"
    assert Evaluation.from_json(text) == e
    assert Evaluation.from_dict(e.to_dict()) == e
    undefined = evaluate_classifier([1, 1], [0.2, 0.9], bootstrap=10)
    assert json.loads(undefined.to_json())["metrics"]["roc_auc"] is None
    assert Evaluation.from_json(undefined.to_json()) == undefined


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "something/else"}', "not a Conveyor evaluation"),
        ("[1, 2]", "not a Conveyor evaluation"),
        ('{"schema": "conveyor.evaluation/1", "task": "binary"}', "damaged evaluation: KeyError"),
        ("{not json", "an evaluation must be JSON"),
    ],
)
def test_from_json_refuses_other_values(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Evaluation.from_json(text)


def test_markdown_and_text_show_values_intervals_and_reasons() -> None:
    y = np.array([1, 1, 1, 1])
    e = evaluate_classifier(y, [0.9, 0.8, 0.7, 0.2], bootstrap=20)
    md = e.to_markdown()
    assert "| roc_auc | n/a | no rows of class 0 in y_true |" in md
    assert "| accuracy | 0.7500 | [" in md
    assert "Confusion matrix" in md and "Calibration" in md
    text = e.to_text()
    assert "roc_auc" in text and "no rows of class 0 in y_true" in text


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "score", "message"),
    [
        ([], [], "y_true is empty"),
        ([0, 1, 1], [0.1, 0.9], r"y_score has shape \(2,\) but y_true has 3 rows"),
        ([0, 1], [0.1, np.nan], "NaN or infinite values in 1 rows"),
        ([0, 1], [0.1, np.inf], "NaN or infinite values in 1 rows"),
        ([0, 1], [0.1, 1.7], r"probabilities in \[0, 1\]"),
        ([0, None], [0.1, 0.2], "y_true has 1 missing values"),
        (["no", "yes"], [0.1, 0.2], "which class are the scores for"),
        ([0, 1, 2], [[0.5, 0.5, 0.1]] * 3, "must sum to 1"),
        ([0, 1, 1], [[0.2, 0.3, 0.5]] * 3, "2 distinct labels but the scores have 3 columns"),
        ([0, 1], ["a", "b"], "y_score must be numeric"),
    ],
)
def test_bad_classifier_inputs_are_usage_errors(y: Any, score: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        evaluate_classifier(y, score)
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.0}, "threshold must be between 0 and 1"),
        ({"confidence": 1.5}, "confidence in"),
        ({"bootstrap": -1}, "bootstrap must be >= 0"),
        ({"calibration_bins": 0}, "calibration_bins >= 1"),
        ({"classes": ["a", "b"]}, r"labels \[0, 1\] that are not in classes"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        evaluate_classifier([0, 1], [0.2, 0.8], **kwargs)


def test_bad_regression_inputs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="y_true is empty"):
        evaluate_regressor([], [])
    with pytest.raises(UsageError, match="NaN or infinite"):
        evaluate_regressor([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(UsageError, match="y_true has 1 missing"):
        evaluate_regressor([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(UsageError, match=r"shape \(3,\) but y_true has 2 rows"):
        evaluate_regressor([1.0, 2.0], [1.0, 2.0, 3.0])


def test_a_single_row_evaluates_with_reasons_for_what_it_cannot_say() -> None:
    e = evaluate_classifier([1], [0.8], bootstrap=100)
    assert e.metrics["accuracy"] == 1.0 and e.metrics["recall"] == 1.0
    assert e.metrics["roc_auc"] is None and "no rows of class 0" in e.undefined["roc_auc"]
    assert e.intervals["accuracy"].low == e.intervals["accuracy"].high == 1.0
    r = evaluate_regressor([3.0], [2.5], bootstrap=100)
    assert r.metrics["mae"] == 0.5 and r.metrics["r2"] is None
    assert "constant" in r.undefined["r2"]


def test_a_single_class_has_no_auc_and_no_interval_for_it() -> None:
    e = evaluate_classifier([0, 0, 0, 0], [0.1, 0.6, 0.2, 0.3], bootstrap=50)
    for name in ("roc_auc", "pr_auc", "recall"):
        assert e.metrics[name] is None and name not in e.intervals
    assert e.metrics["precision"] == 0.0 and e.metrics["f1"] == 0.0  # one false positive
    assert e.metrics["accuracy"] == 0.75


def test_mape_of_all_zero_targets_is_undefined() -> None:
    e = evaluate_regressor([0.0, 0.0, 0.0], [0.1, -0.1, 0.0], bootstrap=20)
    assert e.metrics["mape"] is None and "every y_true is 0" in e.undefined["mape"]
    assert "mape" not in e.intervals


# --- models -------------------------------------------------------------------------------


def credit_frame(n: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(20)
    X = pd.DataFrame(
        {
            "income": rng.normal(size=n),
            "debt": rng.normal(size=n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    y = pd.Series(np.where(X.income - X.debt + rng.normal(size=n) > 0, "good", "bad"))
    return X, y


def test_evaluate_model_uses_the_model_classes_and_slices_by_column_name() -> None:
    X, y = credit_frame()
    model = LogisticRegression().fit(X[["income", "debt"]], y)
    e = evaluate_model(model, X, y, slices=["region"], bootstrap=0)
    p = model.predict_proba(X[["income", "debt"]])[:, 1]
    assert e.classes == ("bad", "good")
    assert e.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "good", p))
    assert {s.value for s in e.slices} == {"north", "south"}


def test_evaluate_model_regressor_by_predict() -> None:
    X, _ = credit_frame()
    target = 2 * X.income + 1
    e = evaluate_model(
        LinearRegression().fit(X[["income"]], target), X, target, predict="predict", bootstrap=0
    )
    assert e.task == "regression" and e.metrics["r2"] == pytest.approx(1.0)


class Broken:
    classes_ = np.array([0, 1])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise ValueError("expected 4 features, got 2")


def test_a_model_that_cannot_score_the_rows_is_a_usage_error() -> None:
    X, y = credit_frame(20)
    with pytest.raises(UsageError, match="Broken.predict_proba\\(\\) failed on 20 rows"):
        evaluate_model(Broken(), X, y == "good")
    with pytest.raises(UsageError, match="has no predict_proba\\(\\) method"):
        evaluate_model(LinearRegression().fit(X[["income"]], X.debt), X, y)
    model = LogisticRegression().fit(X[["income", "debt"]], y)
    with pytest.raises(UsageError, match="columns the rows lack: \\['debt'\\]"):
        evaluate_model(model, X.drop(columns="debt"), y)
    with pytest.raises(UsageError, match="slice column 'regoin'") as info:
        evaluate_model(model, X, y, slices=["regoin"])
    assert info.value.hint == "did you mean 'region'?"


def test_all_tied_scores_give_chance_auc_and_prevalence_ap() -> None:
    y = np.array([0, 1, 1, 0, 0])
    e = evaluate_classifier(y, np.full(5, 0.4), bootstrap=0)
    assert e.metrics["roc_auc"] == 0.5 == skm.roc_auc_score(y, np.full(5, 0.4))
    assert e.metrics["pr_auc"] == pytest.approx(0.4)
    assert e.metrics["precision"] is None
    assert e.undefined["precision"] == "no row is predicted as class 1"


def test_named_columns_need_a_dataframe() -> None:
    X, y = credit_frame(30)
    model = LogisticRegression().fit(X[["income", "debt"]], y)
    with pytest.raises(UsageError, match="trained on named columns but the rows are a ndarray"):
        evaluate_model(model, X[["income", "debt"]].to_numpy(), y)
