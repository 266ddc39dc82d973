"""Behavioural checks catch models that break invariance, direction or simple cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from conveyor.checks.behaviour import (
    Case,
    check_direction,
    check_invariance,
    check_minimum_functionality,
    parse_behaviour,
    run_behaviour,
)
from conveyor.core.checks import Severity
from conveyor.errors import ConfigError, UsageError


class Scorer:
    """A deterministic binary classifier: sigmoid of a weighted sum, plus ``bump`` per gender."""

    classes_ = np.array([0, 1])

    def __init__(self, bump: float = 0.0, curve: bool = False) -> None:
        self.bump = bump
        self.curve = curve

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        z = X["income"] - X["debt"] + self.bump * (X["gender"] == "f")
        if self.curve:  # income helps up to 1, then hurts
            z = z - 2 * np.clip(X["income"] - 1, 0, None) ** 2
        p = 1 / (1 + np.exp(-z.to_numpy(dtype=float)))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def applicants(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "income": rng.normal(size=n),
            "debt": rng.normal(size=n),
            "gender": rng.choice(["f", "m"], n),
        },
        index=pd.RangeIndex(1000, 1000 + n),
    )


# --- invariance ---------------------------------------------------------------------------


def test_a_model_that_ignores_the_column_is_invariant() -> None:
    result = check_invariance(Scorer(), applicants(), "gender", epsilon=1e-9)
    assert result.passed and result.name == "invariance:gender"
    assert result.metrics["max_change"] == 0.0 and result.metrics["violations"] == 0.0
    assert "within 1e-09" in result.message


def test_a_model_that_uses_the_column_fails_with_its_worst_rows() -> None:
    X = applicants()
    result = check_invariance(Scorer(bump=1.0), X, "gender", epsilon=0.05, examples=3)
    assert not result.passed
    assert result.metrics["max_change"] > 0.2
    changed = X["gender"] != X["gender"].to_numpy()[np.random.default_rng(0).permutation(300)]
    assert 0 < result.metrics["violations"] <= changed.sum()
    worst = result.details["worst_rows"]
    assert len(worst) == 3 and worst[0]["change"] == result.metrics["max_change"]
    assert worst[0]["row"] >= 1000  # the DataFrame's own index
    assert {worst[0]["value_before"], worst[0]["value_after"]} == {"f", "m"}
    assert "rows by more than 0.05" in result.message


def test_replacing_with_given_values_reports_the_worst_replacement() -> None:
    result = check_invariance(Scorer(bump=0.5), applicants(), "gender", values=["f", "m"])
    assert not result.passed
    perturbations = {row["perturbation"] for row in result.details["worst_rows"]}
    assert perturbations <= {"'gender' set to 'f'", "'gender' set to 'm'"}


def test_a_transform_perturbation() -> None:
    result = check_invariance(
        Scorer(), applicants(), "debt", transform=lambda s: s + 0.001, epsilon=0.001
    )
    assert result.passed and 0 < result.metrics["max_change"] <= 0.001


def test_a_perturbation_that_changes_nothing_is_not_passed() -> None:
    X = applicants().assign(gender="f")
    result = check_invariance(Scorer(bump=5.0), X, "gender")
    assert not result.passed and result.severity == Severity.WARNING
    assert "changed no value: nothing was checked" in result.message


def test_invariance_of_a_multiclass_model_uses_the_largest_class_change() -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = np.digitize(X.a + 0.5 * X.b, [-0.5, 0.5])
    model = LogisticRegression().fit(X, y)
    assert check_invariance(model, X, "b", epsilon=1.0).passed
    assert not check_invariance(model, X, "a", epsilon=0.05).passed


# --- direction ----------------------------------------------------------------------------


def test_a_monotone_model_passes_the_directional_check() -> None:
    result = check_direction(Scorer(), applicants(), "income", delta=0.5, expect="non_decreasing")
    assert result.passed and result.metrics["violations"] == 0.0
    assert result.message == "raising 'income' by 0.5 never lowers the score (300 rows)"
    debt = check_direction(Scorer(), applicants(), "debt", delta=-1, expect="non_decreasing")
    assert debt.passed and debt.message.startswith("lowering 'debt' by 1 never lowers")
    income = check_direction(Scorer(), applicants(), "income", delta=-1, expect="non_decreasing")
    assert not income.passed
    assert income.message.startswith("lowering 'income' by 1 lowers the score on 300 of 300 rows")


def test_a_model_that_turns_back_is_caught_with_examples() -> None:
    X = applicants()
    result = check_direction(
        Scorer(curve=True), X, "income", delta=0.5, expect="non_decreasing", examples=4
    )

    def curve(x: pd.Series) -> pd.Series:
        return x - 2 * np.clip(x - 1, 0, None) ** 2

    expected = (curve(X.income + 0.5) < curve(X.income)).sum()
    assert not result.passed
    assert expected > 0 and result.metrics["violations"] == expected
    examples = result.details["examples"]
    assert len(examples) == 4
    assert all(e["score_after"] < e["score_before"] for e in examples)
    assert all(e["value"] > 0.5 for e in examples)
    assert result.message.startswith("raising 'income' by 0.5 lowers the score on ")


def test_a_regressor_expected_to_fall() -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=100), "z": rng.normal(size=100)})
    model = LinearRegression().fit(X, 3 * X.x - X.z)
    assert check_direction(model, X, "z", delta=1.0, expect="non_increasing").passed
    assert not check_direction(model, X, "x", delta=1.0, expect="non_increasing").passed


def test_rows_with_the_column_missing_are_counted_not_checked() -> None:
    X = applicants()
    X.loc[X.index[:10], "income"] = np.nan
    result = check_direction(Scorer(), X, "income", delta=1.0, expect="non_decreasing")
    assert result.passed and result.metrics["rows"] == 290.0
    assert "10 rows with 'income' missing not checked" in result.message
    X["income"] = np.nan
    empty = check_direction(Scorer(), X, "income", delta=1.0, expect="non_decreasing")
    assert not empty.passed and "nothing was checked" in empty.message


# --- minimum functionality ----------------------------------------------------------------

ROW = {"income": 3.0, "debt": -3.0, "gender": "m"}


def test_cases_with_labels_and_score_ranges() -> None:
    cases = [
        Case(name="rich", inputs=ROW, label=1, min_score=0.9),
        Case(name="indebted", inputs={**ROW, "income": -3.0, "debt": 3.0}, max_score=0.1),
    ]
    result = check_minimum_functionality(Scorer(), cases)
    assert result.passed and result.message == "all 2 cases pass"


def test_failing_cases_are_listed_with_what_was_expected() -> None:
    cases = [
        Case(name="rich", inputs=ROW, label=0, max_score=0.5),
        Case(name="middling", inputs={**ROW, "income": 0.0, "debt": 0.0}, min_score=0.9),
        Case(name="fine", inputs=ROW, label=1),
    ]
    result = check_minimum_functionality(Scorer(), cases)
    assert not result.passed and result.metrics["failures"] == 2.0
    assert result.details["failures"] == [
        "'rich': expected label 0, got 1 and expected a score in [-inf, 0.5], got 0.9975",
        "'middling': expected a score in [0.9, inf], got 0.5",
    ]


def test_cases_that_expect_nothing_or_lack_inputs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="case 'vague' expects nothing"):
        check_minimum_functionality(Scorer(), [Case(name="vague", inputs=ROW)])
    with pytest.raises(UsageError, match="no minimum-functionality cases"):
        check_minimum_functionality(Scorer(), [])
    model = LogisticRegression().fit(applicants()[["income", "debt"]], np.arange(300) % 2)
    with pytest.raises(UsageError, match=r"case 'short' lacks model inputs \['debt'\]"):
        check_minimum_functionality(model, [Case(name="short", inputs={"income": 1}, label=1)])


# --- models that misbehave, and bad arguments ---------------------------------------------


class Raises:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if (X["gender"] == "x").any():
            raise ValueError("unknown category 'x'")
        return np.full((len(X), 2), 0.5)


class ReturnsNaN:
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["income"] > 1, np.nan, X["income"])


def test_a_model_that_fails_on_the_perturbed_rows_is_a_failed_check() -> None:
    result = check_invariance(Raises(), applicants(), "gender", values=["x"])
    assert not result.passed
    assert "on the perturbed rows: Raises.predict_proba() failed on 300 rows" in result.message
    assert "unknown category 'x'" in result.message


def test_a_model_returning_nan_is_a_failed_check() -> None:
    result = check_direction(ReturnsNaN(), applicants(), "debt", delta=1, expect="non_decreasing")
    assert not result.passed
    assert "returned NaN or infinite scores for" in result.message
    cases = [Case(name="one", inputs=ROW, min_score=0)]
    assert not check_minimum_functionality(ReturnsNaN(), cases).passed


def test_bad_arguments_are_usage_errors() -> None:
    X = applicants()
    with pytest.raises(UsageError, match="the DataFrame is empty"):
        check_invariance(Scorer(), X.iloc[:0], "gender")
    with pytest.raises(UsageError, match="column 'gendr' is not in the rows") as info:
        check_invariance(Scorer(), X, "gendr")
    assert info.value.hint == "did you mean 'gender'?"
    with pytest.raises(UsageError, match="not numeric"):
        check_direction(Scorer(), X, "gender", delta=1, expect="non_decreasing")
    with pytest.raises(UsageError, match="delta must be a non-zero number"):
        check_direction(Scorer(), X, "income", delta=0, expect="non_decreasing")
    with pytest.raises(UsageError, match="values or transform, not both"):
        check_invariance(Scorer(), X, "gender", values=["f"], transform=lambda s: s)
    with pytest.raises(UsageError, match="must be a pandas DataFrame"):
        check_invariance(Scorer(), X.to_numpy(), "gender")  # type: ignore[arg-type]


def test_a_directional_check_on_class_probabilities_is_refused() -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=90)})
    model = LogisticRegression().fit(X, np.arange(90) % 3)
    with pytest.raises(UsageError, match="needs one score per row"):
        check_direction(model, X, "a", delta=1.0, expect="non_decreasing")


def test_a_single_row_cannot_be_shuffled_so_nothing_is_passed() -> None:
    result = check_invariance(Scorer(bump=1.0), applicants(1), "gender")
    assert not result.passed and "nothing was checked" in result.message
    one = check_direction(Scorer(), applicants(1), "income", delta=1, expect="non_decreasing")
    assert one.passed and one.metrics["rows"] == 1.0


class ShortAnswer:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.full((len(X) - 1, 2), 0.5)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X) - 1)


def test_a_model_answering_for_other_rows_is_a_failed_check() -> None:
    result = check_invariance(ShortAnswer(), applicants(), "gender")
    assert not result.passed and "returned shape (299,) for 300 original rows" in result.message
    cases = [Case(name="one", inputs=ROW, label=0), Case(name="two", inputs=ROW, label=0)]
    found = check_minimum_functionality(ShortAnswer(), cases)
    assert not found.passed and "returned shape (1,) for 2 cases" in found.message


# --- configuration ------------------------------------------------------------------------


def test_behaviour_config_runs_every_check() -> None:
    spec = parse_behaviour(
        {
            "invariance": [{"column": "gender", "epsilon": 0.05}],
            "direction": [{"column": "income", "delta": 0.5, "expect": "non_decreasing"}],
            "cases": [{"name": "rich", "inputs": ROW, "label": 1}],
        }
    )
    results = run_behaviour(Scorer(bump=1.0), applicants(), spec)
    assert [r.name for r in results] == [
        "invariance:gender",
        "direction:income",
        "minimum_functionality",
    ]
    assert [r.passed for r in results] == [False, True, True]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"invariants": []}, "unknown key 'invariants'"),
        ({"invariance": {"column": "x"}}, "invariance must be a list of mappings"),
        ({"invariance": [{"epsilon": 0.1}]}, r"invariance\[0\]: column missing"),
        ({"invariance": [{"column": "x", "epsilon": "0.1"}]}, "epsilon must be a number"),
        ({"invariance": [{"column": "x", "epsiln": 0.1}]}, "unknown key 'epsiln'"),
        (
            {"direction": [{"column": "x", "delta": 1, "expect": "up"}]},
            "expect must be non_decreasing or non_increasing",
        ),
        ({"cases": [{"name": "a", "inputs": [1, 2]}]}, "inputs must be a mapping"),
    ],
)
def test_invalid_behaviour_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_behaviour(raw)


def test_unknown_behaviour_keys_are_suggested() -> None:
    with pytest.raises(ConfigError) as info:
        parse_behaviour({"invariance": [{"column": "x", "epsiln": 0.1}]})
    assert info.value.hint == "did you mean 'epsilon'?"
