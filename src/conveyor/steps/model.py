"""Built-in model steps: evaluate a model, and the model validation gate."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from conveyor.core.context import load_artifact, log_metrics
from conveyor.core.gate import gate
from conveyor.core.params import ArtifactRef
from conveyor.core.step import step
from conveyor.errors import ConfigError
from conveyor.steps.builtin import builtin, check_policy

PREDICT_METHODS = ("predict", "predict_proba")
Predict = Literal["predict", "predict_proba"]


def _features_and_label(data: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.Series]:
    if label not in data.columns:
        raise ConfigError(
            f"the evaluation data has no label column '{label}'",
            hint=f"set checks.model.label to one of {list(data.columns)[:20]}",
        )
    return data.drop(columns=[label]), data[label]


def _check_common(step_name: str, params: dict[str, Any]) -> None:
    if not params.get("label"):
        raise ConfigError(
            f"{step_name}: no label column is configured",
            hint="set checks.model.label in conveyor.yaml (e.g. label: default)",
        )
    if params.get("predict") not in PREDICT_METHODS:
        raise ConfigError(
            f"{step_name}: predict must be one of {list(PREDICT_METHODS)}, "
            f"not {params.get('predict')!r}",
            hint="set model.predict",
        )


@step(name="evaluate_model")
def _evaluate_model(
    model: Any,
    data: pd.DataFrame,
    label: str = "",
    predict: Predict = "predict_proba",
    slices: list[str] | None = None,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Metrics with bootstrap intervals, per-slice metrics and calibration, as an artifact."""
    from conveyor.checks.evaluation import evaluate_model as evaluate

    features, target = _features_and_label(data, label)
    evaluation = evaluate(
        model,
        features,
        target,
        predict=predict,
        slices=slices or None,
        bootstrap=bootstrap,
    )
    log_metrics({k: v for k, v in evaluation.metrics.items() if v is not None})
    result: dict[str, Any] = evaluation.to_dict()
    return result


evaluate_model = builtin(
    _evaluate_model,
    defaults_from={
        "label": "checks.model.label",
        "predict": "model.predict",
        "slices": "checks.model.slices",
    },
    check_params=lambda params: _check_common("evaluate_model", params),
)


def _gate_config(params: dict[str, Any]) -> Any:
    from conveyor.checks.model_gate import GateConfig

    return GateConfig.from_mapping(
        {
            "thresholds": params.get("thresholds") or {},
            "champion": params.get("champion_rule") or {},
            "slices": params.get("slices") or [],
            "behaviour": params.get("behaviour") or {},
        }
    )


def _check_validate(params: dict[str, Any]) -> None:
    _check_common("validate_model", params)
    check_policy("validate_model", params["policy"])
    _gate_config(params)  # unknown metrics and malformed rules stop the run here (exit 2)


@step(name="validate_model")
def _validate_model(
    model: Any,
    data: pd.DataFrame,
    label: str = "",
    predict: Predict = "predict_proba",
    thresholds: dict[str, str] | None = None,
    champion: ArtifactRef = "",
    champion_rule: dict[str, Any] | None = None,
    slices: list[str] | None = None,
    behaviour: dict[str, Any] | None = None,
    policy: str = "blocking",
) -> dict[str, Any]:
    """Bless the model or not: thresholds, champion/challenger by paired bootstrap, slices
    and behavioural checks. Every result is recorded; a blocking failure fails the run."""
    from conveyor.checks.model_gate import validate_model as run_gate

    features, target = _features_and_label(data, label)
    config = _gate_config(
        {
            "thresholds": thresholds,
            "champion_rule": champion_rule,
            "slices": slices,
            "behaviour": behaviour,
        }
    )
    outcome = run_gate(
        model,
        features,
        target,
        config,
        champion=load_artifact(champion) if champion else None,
        predict=predict,
    )
    gate(outcome.results, name="model", policy=policy)
    result: dict[str, Any] = {"schema": "conveyor.model_gate/1", **outcome.to_dict()}
    return result


validate_model = builtin(
    _validate_model,
    defaults_from={
        "label": "checks.model.label",
        "predict": "model.predict",
        "thresholds": "checks.model.thresholds",
        "champion_rule": "checks.model.champion",
        "slices": "checks.model.slices",
        "behaviour": "checks.model.behaviour",
        "policy": "checks.model.policy",
    },
    check_params=_check_validate,
)
