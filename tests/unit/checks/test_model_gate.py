"""The model gate: thresholds, champion/challenger by paired bootstrap, per-slice regression."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor.checks.model_gate import (
    ChampionRule,
    GateConfig,
    Threshold,
    parse_champion,
    parse_threshold,
    validate_model,
    validate_scores,
)
from conveyor.core.checks import Severity
from conveyor.errors import EXIT_USAGE, ConfigError, UsageError

N = 2000


def labels(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, n)


def scores(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """Probabilities whose ROC AUC grows with ``signal``."""
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(rng.normal(size=y.size) + signal * (y - 0.5))))


def config(**raw: Any) -> GateConfig:
    return GateConfig.from_mapping(raw)


def by_name(outcome: Any) -> dict[str, Any]:
    return {r.name: r for r in outcome.results}


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "op", "value"),
    [
        (">= 0.85", ">=", 0.85),
        (">0.8", ">", 0.8),
        ("<= .5", "<=", 0.5),
        ("< 1e-1", "<", 0.1),
        ("== 1", "==", 1.0),
        ("  >=  -0.5 ", ">=", -0.5),
    ],
)
def test_threshold_expressions_parse(expression: str, op: str, value: float) -> None:
    t = parse_threshold("roc_auc", expression)
    assert (t.metric, t.op, t.value) == ("roc_auc", op, value)


@pytest.mark.parametrize("expression", [">> 0.8", "0.85", 0.85, ">= abc", "", "=> 0.8", None])
def test_a_malformed_threshold_is_a_config_error_with_the_expected_form(expression: Any) -> None:
    with pytest.raises(ConfigError, match="checks.model.thresholds.roc_auc: cannot read") as info:
        config(thresholds={"roc_auc": expression})
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.hint is not None and '">= 0.85"' in info.value.hint


def test_a_threshold_on_an_unknown_metric_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'roc_acu'") as info:
        config(thresholds={"roc_acu": ">= 0.8"})
    assert info.value.hint == "did you mean 'roc_auc'?"
    with pytest.raises(ConfigError, match="unknown metric 'speed'") as info:
        config(thresholds={"speed": ">= 0.8"})
    assert info.value.hint is not None and "known metrics: accuracy" in info.value.hint


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"thresholds": {}, "champoin": {}}, "unknown key 'champoin'"),
        ({"champion": {"max_drop": 0.01}}, "'metric' is missing"),
        ({"champion": {"metric": "roc_auc"}}, "exactly one of max_drop and min_gain"),
        (
            {"champion": {"metric": "roc_auc", "max_drop": 0.01, "min_gain": 0.01}},
            "exactly one of",
        ),
        ({"champion": {"metric": "roc_auc", "max_drop": -0.01}}, "max_drop must be >= 0"),
        ({"champion": {"metric": "roc_auc", "max_drop": "x"}}, "max_drop must be a number"),
        ({"champion": {"metric": "roc_auc", "max_drop": 0, "confidence": 1.2}}, "confidence"),
        ({"champion": {"metric": "roc_auc", "max_drop": 0, "resamples": 10}}, "resamples"),
        ({"champion": {"metric": "auc", "max_drop": 0}}, "unknown metric 'auc'"),
        ({"champion": {"metric": "roc_auc", "max_dorp": 0}}, "unknown key 'max_dorp'"),
        ({"slices": "region"}, "slices must be a list"),
        ({"thresholds": [">= 0.8"]}, "thresholds must be a mapping"),
    ],
)
def test_invalid_gate_config_names_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(**raw)


def test_unknown_key_errors_suggest_the_right_key() -> None:
    with pytest.raises(ConfigError) as info:
        config(champion={"metric": "roc_auc", "max_dorp": 0.01})
    assert info.value.hint == "did you mean 'max_drop'?"


def test_a_full_config_parses_into_values() -> None:
    cfg = config(
        thresholds={"roc_auc": ">= 0.8", "log_loss": "<= 0.5"},
        champion={"metric": "roc_auc", "max_drop": 0.005, "slice_max_drop": 0.02},
        slices=["region"],
    )
    assert cfg.thresholds == (
        Threshold(metric="roc_auc", op=">=", value=0.8),
        Threshold(metric="log_loss", op="<=", value=0.5),
    )
    assert cfg.champion == ChampionRule(metric="roc_auc", max_drop=0.005, slice_max_drop=0.02)
    assert cfg.slices == ("region",)
    assert parse_champion({"metric": "log_loss", "min_gain": 0.01}).min_gain == 0.01


# --- thresholds ---------------------------------------------------------------------------


def test_thresholds_pass_and_fail_with_readable_reasons() -> None:
    y = labels()
    p = scores(y, 2.0, 1)
    outcome = validate_scores(
        y, p, config(thresholds={"roc_auc": ">= 0.99", "accuracy": "> 0.5", "brier": "<= 0.01"})
    )
    results = by_name(outcome)
    assert not outcome.blessed
    auc = results["threshold:roc_auc"]
    assert not auc.passed and auc.severity == Severity.ERROR
    assert auc.message == f"roc_auc {auc.metrics['roc_auc']:.4g} < 0.99 (threshold)"
    assert results["threshold:accuracy"].passed
    assert results["threshold:accuracy"].message.endswith("> 0.5 (threshold)")
    assert results["threshold:brier"].message.endswith("> 0.01 (threshold)")
    assert outcome.reasons == [auc.message, results["threshold:brier"].message]


def test_a_threshold_on_an_uncomputable_metric_fails_and_says_it_was_not_checked() -> None:
    y = np.zeros(50, dtype=int)
    outcome = validate_scores(y, np.full(50, 0.2), config(thresholds={"roc_auc": ">= 0.8"}))
    result = by_name(outcome)["threshold:roc_auc"]
    assert not result.passed and not outcome.blessed
    assert "could not be computed: no rows of class 1 in y_true" in result.message
    assert "not checked" in result.message


def test_a_threshold_on_a_metric_of_another_task_is_a_config_error() -> None:
    y = labels(100)
    with pytest.raises(ConfigError, match="mae is not a metric of a binary model"):
        validate_scores(y, scores(y, 1.0, 0), config(thresholds={"mae": "<= 1"}))


def test_a_gate_with_nothing_to_check_is_refused() -> None:
    y = labels(100)
    with pytest.raises(ConfigError, match="the gate would check nothing"):
        validate_scores(y, scores(y, 1.0, 0), config())


# --- champion / challenger ----------------------------------------------------------------

NOT_WORSE = {"metric": "roc_auc", "max_drop": 0.005, "resamples": 300}
BETTER = {"metric": "roc_auc", "min_gain": 0.01, "resamples": 300}


def test_a_clearly_better_challenger_is_blessed_by_both_rules() -> None:
    y = labels()
    champion, challenger = scores(y, 1.0, 1), scores(y, 2.5, 2)
    for rule in (NOT_WORSE, BETTER):
        outcome = validate_scores(y, challenger, config(champion=rule), champion=champion)
        result = by_name(outcome)["champion:roc_auc"]
        assert outcome.blessed and result.passed and outcome.reasons == []
        assert result.metrics["low"] > 0.05
        assert result.metrics["difference"] == pytest.approx(
            result.metrics["challenger"] - result.metrics["champion"]
        )
    assert "better by at least 0.01 at 95%" in result.message


def test_a_clearly_worse_challenger_is_not_blessed() -> None:
    y = labels()
    champion, challenger = scores(y, 2.5, 1), scores(y, 1.0, 2)
    outcome = validate_scores(y, challenger, config(champion=NOT_WORSE), champion=champion)
    result = by_name(outcome)["champion:roc_auc"]
    assert not outcome.blessed and not result.passed
    assert result.metrics["high"] < -0.005
    assert result.message.startswith("challenger roc_auc -0.")
    assert "vs champion: worse by more than 0.005 at 95%" in result.message
    assert outcome.reasons == [result.message]


def test_the_same_model_is_not_worse_but_not_better() -> None:
    y = labels()
    p = scores(y, 1.5, 1)
    kept = by_name(validate_scores(y, p, config(champion=NOT_WORSE), champion=p))
    assert kept["champion:roc_auc"].passed
    assert kept["champion:roc_auc"].metrics["low"] == 0.0
    gained = by_name(validate_scores(y, p, config(champion=BETTER), champion=p))
    assert not gained["champion:roc_auc"].passed
    assert "not shown better by at least 0.01" in gained["champion:roc_auc"].message


def test_a_noisy_comparison_is_not_promoted() -> None:
    y = labels(150)
    champion, challenger = scores(y, 1.0, 1), scores(y, 1.0, 2)
    result = by_name(validate_scores(y, challenger, config(champion=NOT_WORSE), champion=champion))
    assert not result["champion:roc_auc"].passed
    assert "could be worse by more than 0.005" in result["champion:roc_auc"].message


def test_lower_is_better_metrics_are_mirrored() -> None:
    y = labels()
    good, bad = scores(y, 2.5, 1), scores(y, 1.0, 2)
    rule = {"metric": "log_loss", "max_drop": 0.01, "resamples": 300}
    better = by_name(validate_scores(y, good, config(champion=rule), champion=bad))
    worse = by_name(validate_scores(y, bad, config(champion=rule), champion=good))
    assert better["champion:log_loss"].passed
    assert better["champion:log_loss"].metrics["difference"] < 0
    assert not worse["champion:log_loss"].passed
    assert "(lower is better)" in worse["champion:log_loss"].message


def test_without_a_champion_the_comparison_is_skipped_not_passed() -> None:
    y = labels()
    outcome = validate_scores(
        y, scores(y, 2.0, 1), config(thresholds={"roc_auc": ">= 0.6"}, champion=NOT_WORSE)
    )
    skipped = by_name(outcome)["champion:roc_auc"]
    assert not skipped.passed and skipped.severity == Severity.INFO
    assert outcome.blessed
    assert outcome.reasons == [f"info: {skipped.message}"]


@pytest.mark.parametrize(
    ("champion", "message"),
    [
        (np.full(N - 1, 0.5), "its scores are unusable: y_score has shape"),
        (np.full(N, np.nan), "its scores are unusable: y_score has NaN"),
    ],
)
def test_unusable_champion_scores_fail_the_check(champion: np.ndarray, message: str) -> None:
    y = labels()
    outcome = validate_scores(y, scores(y, 2.0, 1), config(champion=NOT_WORSE), champion=champion)
    result = by_name(outcome)["champion:roc_auc"]
    assert not result.passed and not outcome.blessed
    assert message in result.message


def test_an_undefined_metric_is_not_compared() -> None:
    y = np.ones(100, dtype=int)
    outcome = validate_scores(y, np.full(100, 0.7), config(champion=NOT_WORSE), champion=y * 0.5)
    result = by_name(outcome)["champion:roc_auc"]
    assert not result.passed
    assert "roc_auc of the challenger cannot be computed: no rows of class 0" in result.message


def test_the_outcome_is_json() -> None:
    y = labels()
    outcome = validate_scores(
        y, scores(y, 2.0, 1), config(champion=NOT_WORSE), champion=scores(y, 1.0, 2)
    )
    raw = json.loads(json.dumps(outcome.to_dict()))
    assert raw["blessed"] is True
    assert raw["results"][0]["severity"] == "error"
    assert raw["results"][0]["details"]["rule"] == "max_drop"


# --- slices -------------------------------------------------------------------------------


def sliced(n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """A challenger as good as the champion except much worse on region 'south'."""
    y = labels(n, 5)
    region = np.where(np.arange(n) % 3 == 0, "south", "north")
    region[:40] = "isle"
    champion = scores(y, 2.0, 1)
    challenger = np.where(region == "south", scores(y, 0.3, 2), champion)
    return y, champion, challenger, pd.DataFrame({"region": region})


def test_a_slice_that_regressed_fails_and_is_named() -> None:
    y, champion, challenger, frame = sliced()
    rule = {"metric": "roc_auc", "max_drop": 0.5, "slice_max_drop": 0.02, "resamples": 200}
    outcome = validate_scores(y, challenger, config(champion=rule), champion=champion, slices=frame)
    result = by_name(outcome)["champion_slices:region"]
    assert by_name(outcome)["champion:roc_auc"].passed
    assert not result.passed and not outcome.blessed
    assert result.message.startswith("region=south: challenger roc_auc -0.")
    assert "worse by more than 0.02 at 95%" in result.message
    checked = {c["value"]: c["passed"] for c in result.details["checked"]}
    assert checked == {"north": True, "south": False}
    assert result.details["skipped"] == [
        {"value": "isle", "n": 40, "reason": "fewer than 100 rows"}
    ]


def test_when_no_slice_is_big_enough_it_warns_without_blocking() -> None:
    y, champion, _, frame = sliced(240)
    rule = {"metric": "roc_auc", "max_drop": 0.5, "slice_max_drop": 0.02, "min_slice_rows": 500}
    outcome = validate_scores(y, champion, config(champion=rule), champion=champion, slices=frame)
    result = by_name(outcome)["champion_slices:region"]
    assert not result.passed and result.severity == Severity.WARNING
    assert outcome.blessed
    assert outcome.reasons == [f"warning: {result.message}"]


# --- models -------------------------------------------------------------------------------


def frame(n: int = 1500) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(9)
    X = pd.DataFrame(
        {
            "income": rng.normal(size=n),
            "debt": rng.normal(size=n),
            "age": rng.normal(size=n),
            "region": rng.choice(["north", "south"], n),
        }
    )
    y = (X.income - X.debt + 0.3 * rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


GATE = {
    "thresholds": {"roc_auc": ">= 0.8"},
    "champion": {"metric": "roc_auc", "max_drop": 0.005, "resamples": 200},
}


def test_models_are_compared_each_on_its_own_feature_columns() -> None:
    X, y = frame()
    champion = LogisticRegression().fit(X[["income"]], y)
    challenger = LogisticRegression().fit(X[["income", "debt"]], y)
    outcome = validate_model(challenger, X, y, config(**GATE, slices=["region"]), champion=champion)
    assert outcome.blessed, outcome.reasons
    worse = validate_model(champion, X, y, config(**GATE), champion=challenger)
    assert not worse.blessed
    assert any("worse by more than 0.005" in r for r in worse.reasons)


class Failing:
    classes_ = np.array([0, 1])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise ValueError(f"X has {X.shape[1]} features, but the model expects 7")


class NoProba:
    classes_ = np.array([0, 1])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(X))


def test_a_champion_with_another_signature_fails_the_check_with_the_reason() -> None:
    X, y = frame()
    challenger = LogisticRegression().fit(X[["income", "debt"]], y)
    renamed = LogisticRegression().fit(X[["income"]].rename(columns={"income": "salary"}), y)
    other_classes = LogisticRegression().fit(X[["income"]], np.where(y == 1, "yes", "no"))
    cases = [
        (renamed, "was trained on columns the rows lack: ['salary']"),
        (Failing(), "Failing.predict_proba() failed on 1500 rows: ValueError: X has 4 features"),
        (NoProba(), "NoProba has no predict_proba() method"),
        (other_classes, "its classes ['no', 'yes'] differ from the challenger's [0, 1]"),
    ]
    for champion, message in cases:
        outcome = validate_model(challenger, X, y, config(**GATE), champion=champion)
        result = by_name(outcome)["champion:roc_auc"]
        assert not result.passed and not outcome.blessed
        assert result.message.startswith("champion could not be compared: ")
        assert message in result.message
        assert by_name(outcome)["threshold:roc_auc"].passed


def test_a_config_slice_column_missing_from_the_data_is_a_config_error() -> None:
    X, y = frame(200)
    model = LogisticRegression().fit(X[["income"]], y)
    with pytest.raises(ConfigError, match="'regoin' is not a column") as info:
        validate_model(model, X, y, config(**GATE, slices=["regoin"]), champion=model)
    assert info.value.hint == "did you mean 'region'?"


# --- other tasks and bad inputs -----------------------------------------------------------


def test_a_regressor_gate_reads_rmse_as_lower_is_better() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=1500)
    close, far = y + rng.normal(0, 0.3, 1500), y + rng.normal(0, 0.6, 1500)
    cfg = config(
        thresholds={"r2": ">= 0.5"}, champion={"metric": "rmse", "max_drop": 0.01, "resamples": 200}
    )
    better = validate_scores(y, close, cfg, champion=far, regression=True)
    worse = validate_scores(y, far, cfg, champion=close, regression=True)
    assert better.blessed and not worse.blessed
    assert "challenger rmse +0." in worse.reasons[-1] and "(lower is better)" in worse.reasons[-1]


def test_a_multiclass_gate_compares_macro_roc_auc() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 1500)

    def proba(signal: float) -> np.ndarray:
        logits = rng.normal(size=(1500, 3)) + signal * (y[:, None] == np.arange(3))
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    cfg = config(champion=NOT_WORSE)
    assert validate_scores(y, proba(2.0), cfg, champion=proba(0.5)).blessed
    assert not validate_scores(y, proba(0.5), cfg, champion=proba(2.0)).blessed


@pytest.mark.parametrize(
    ("y", "challenger", "message"),
    [
        ([], [], "y_true is empty"),
        ([0, 1, 1], [0.2, 0.7], r"shape \(2,\) but y_true has 3 rows"),
        ([0, 1], [0.2, np.nan], "NaN or infinite"),
    ],
)
def test_unusable_challenger_scores_are_usage_errors(y: Any, challenger: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_scores(y, challenger, config(thresholds={"roc_auc": ">= 0.5"}))


def test_a_single_row_is_gated_on_what_it_can_say_only() -> None:
    outcome = validate_scores(
        [1], [0.9], config(thresholds={"accuracy": ">= 0.5", "roc_auc": ">= 0.5"})
    )
    results = by_name(outcome)
    assert results["threshold:accuracy"].passed
    assert not results["threshold:roc_auc"].passed and not outcome.blessed


def test_behavioural_checks_in_the_config_run_on_the_challenger() -> None:
    X, y = frame()
    model = LogisticRegression().fit(X[["income", "debt"]], y)
    behaviour = {
        "invariance": [{"column": "age", "epsilon": 1e-9}],
        "direction": [{"column": "debt", "delta": 1.0, "expect": "non_decreasing"}],
    }
    outcome = validate_model(model, X, y, config(behaviour=behaviour))
    results = by_name(outcome)
    assert results["invariance:age"].passed
    assert not results["direction:debt"].passed and not outcome.blessed
    from_scores = validate_scores(
        y, model.predict_proba(X[["income", "debt"]])[:, 1], config(**GATE, behaviour=behaviour)
    )
    note = by_name(from_scores)["behaviour"]
    assert not note.passed and note.severity == Severity.INFO
    assert "need the model: not run from scores" in note.message


def test_the_step_keys_of_checks_model_are_accepted_and_empty_blocks_mean_none() -> None:
    cfg = config(
        label="default",
        policy="warning",
        thresholds={"roc_auc": ">= 0.5"},
        champion={},
        behaviour={},
        slices=[],
    )
    assert cfg.champion is None and cfg.behaviour is None
