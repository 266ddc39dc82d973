"""Params: default < conveyor.yaml < -p, typed by annotation, and every key must apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pytest

from conveyor import cmd_step, pipeline, step
from conveyor.core.params import ParamSources, known_keys, pipeline_params, step_params
from conveyor.core.pipeline import Pipeline
from conveyor.errors import ConfigError, DefinitionError, UsageError


@step
def load(rows: int = 100) -> list[int]:
    return list(range(rows))


@step
def train(
    data: list[int],
    n: int = 10,
    lr: float = 0.1,
    balanced: bool = False,
    label: str = "y",
    layers: list[int] | None = None,
    mode: Literal["fast", "exact"] = "fast",
    extra: Any = None,
) -> dict[str, Any]:
    return {}


@pipeline
def training(rows: int = 100) -> None:
    train(load(rows=rows))


Resolved = tuple[dict[str, Any], dict[str, dict[str, Any]]]


def resolve(
    pipe: Pipeline,
    config: Mapping[str, Any] | None = None,
    cli: Mapping[str, str] | None = None,
) -> Resolved:
    """What `conveyor run` does with params: pipeline args, trace, step args, check keys."""
    sources = ParamSources(config or {}, cli or {})
    values = pipeline_params(pipe, sources)
    graph = pipe.trace(values)
    per_step = step_params(graph, sources)
    sources.check_all_used(known_keys(pipe, graph), include_config=True)
    return values, per_step


def test_defaults_apply_without_overrides() -> None:
    values, per_step = resolve(training)
    assert values == {"rows": 100}
    assert per_step["load"] == {"rows": 100}
    assert per_step["train"] == {
        "n": 10,
        "lr": 0.1,
        "balanced": False,
        "label": "y",
        "layers": None,
        "mode": "fast",
        "extra": None,
    }


def test_config_overrides_default_and_cli_overrides_config() -> None:
    _, per_step = resolve(training, config={"n": 20, "lr": 0.5})
    assert (per_step["train"]["n"], per_step["train"]["lr"]) == (20, 0.5)
    _, per_step = resolve(training, config={"n": 20, "lr": 0.5}, cli={"n": "30"})
    assert (per_step["train"]["n"], per_step["train"]["lr"]) == (30, 0.5)


def test_pipeline_param_from_config_and_cli_flows_into_steps() -> None:
    values, per_step = resolve(training, config={"rows": 5})
    assert values == {"rows": 5}
    assert per_step["load"] == {"rows": 5}
    values, per_step = resolve(training, config={"rows": 5}, cli={"rows": "7"})
    assert values == {"rows": 7}
    assert per_step["load"] == {"rows": 7}


def test_cli_strings_are_typed_by_annotation() -> None:
    cli = {
        "n": "3",
        "lr": "0.25",
        "balanced": "true",
        "label": "123",
        "layers": "[64, 32]",
        "mode": "exact",
        "extra": '{"k": [1, 2]}',
    }
    _, per_step = resolve(training, cli=cli)
    assert per_step["train"] == {
        "n": 3,
        "lr": 0.25,
        "balanced": True,
        "label": "123",
        "layers": [64, 32],
        "mode": "exact",
        "extra": {"k": [1, 2]},
    }
    assert type(per_step["train"]["lr"]) is float


def test_untyped_cli_value_that_is_not_json_stays_a_string() -> None:
    _, per_step = resolve(training, cli={"extra": "hello world"})
    assert per_step["train"]["extra"] == "hello world"


def test_config_values_are_coerced_too() -> None:
    _, per_step = resolve(training, config={"n": "12", "lr": 1})
    assert per_step["train"]["n"] == 12
    assert per_step["train"]["lr"] == 1.0


@pytest.mark.parametrize(
    ("key", "value"),
    [("n", "abc"), ("n", "3.5"), ("balanced", "maybe"), ("mode", "medium"), ("layers", "[a]")],
)
def test_bad_cli_value_names_param_and_source(key: str, value: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve(training, cli={key: value})
    assert info.value.message.startswith(f"-p {key}: param '{key}'")
    assert repr(value) in info.value.message


def test_bad_pipeline_param_value_names_source() -> None:
    with pytest.raises(UsageError, match=r"^-p rows: param 'rows' must be int"):
        resolve(training, cli={"rows": "many"})


def test_bad_config_value_names_source() -> None:
    with pytest.raises(UsageError, match=r"conveyor.yaml params.n: param 'n' must be int"):
        resolve(training, config={"n": "abc"})


def test_unknown_cli_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="'nn' is not a param") as info:
        resolve(training, cli={"nn": "3"})
    assert info.value.hint == "did you mean 'n'?"


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="conveyor.yaml params: 'learning_rat'"):
        resolve(training, config={"learning_rat": 0.1})


def test_unknown_config_key_is_allowed_when_not_checked() -> None:
    sources = ParamSources({"meant_for_another_pipeline": 1}, {})
    graph = training.trace(pipeline_params(training, sources))
    step_params(graph, sources)
    sources.check_all_used(known_keys(training, graph), include_config=False)


def test_qualified_key_targets_one_invocation() -> None:
    @pipeline
    def two_models() -> None:
        data = load()
        train(data)
        train(data)

    _, per_step = resolve(two_models, cli={"train_2.n": "50"})
    assert per_step["train"]["n"] == 10
    assert per_step["train_2"]["n"] == 50
    _, per_step = resolve(two_models, config={"n": 7, "train_2.n": 8})
    assert (per_step["train"]["n"], per_step["train_2"]["n"]) == (7, 8)


def test_overriding_a_literal_from_pipeline_code_is_refused() -> None:
    @pipeline
    def fixed() -> None:
        train(load(), n=3)

    with pytest.raises(UsageError, match="'train.n' is set in pipeline code") as info:
        resolve(fixed, cli={"train.n": "4"})
    assert info.value.hint is not None
    assert "argument of the @pipeline" in info.value.hint
    with pytest.raises(UsageError, match="'train.n' is set in pipeline code"):
        resolve(fixed, config={"train.n": 4})
    with pytest.raises(ConfigError, match="'n' is not a param"):
        resolve(fixed, cli={"n": "4"})
    _, per_step = resolve(fixed)
    assert per_step["train"]["n"] == 3


def test_required_pipeline_param_missing() -> None:
    @pipeline
    def needs(rows: int) -> None:
        load(rows)

    with pytest.raises(UsageError, match="pipeline 'needs' needs param 'rows'") as info:
        resolve(needs)
    assert info.value.hint is not None
    assert "-p rows=VALUE" in info.value.hint
    values, _ = resolve(needs, cli={"rows": "4"})
    assert values == {"rows": 4}


def test_required_step_param_missing() -> None:
    @step
    def scale(data: list[int], factor: float) -> list[float]:
        return [x * factor for x in data]

    @pipeline
    def p() -> None:
        scale(load())

    with pytest.raises(DefinitionError, match="step 'scale' needs a value for 'factor'") as info:
        resolve(p)
    assert info.value.hint is not None
    assert "scale.factor" in info.value.hint
    _, per_step = resolve(p, cli={"factor": "2"})
    assert per_step["scale"] == {"factor": 2.0}


def test_literal_that_is_not_json_is_refused() -> None:
    @pipeline
    def p() -> None:
        train(load(), extra=object())

    with pytest.raises(DefinitionError, match="param 'extra'.*cannot be recorded"):
        resolve(p)


def test_cmd_step_params_are_typed_by_their_defaults() -> None:
    @pipeline
    def p() -> None:
        cmd_step(
            "train",
            cmd=["train", "--trees={params.trees}", "--rate={params.rate}"],
            outs=["model.bin"],
            params={"trees": 10, "rate": 0.5, "tag": "x", "opts": None},
        )

    _, per_step = resolve(p, cli={"trees": "20", "train.rate": "1", "tag": "7", "opts": "[1]"})
    assert per_step["train"] == {"trees": 20, "rate": 1.0, "tag": "7", "opts": [1]}
    assert type(per_step["train"]["rate"]) is float
    with pytest.raises(UsageError, match="-p trees: param 'trees' must be int"):
        resolve(p, cli={"trees": "many"})
