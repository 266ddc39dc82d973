"""@step: outputs from the return annotation; definition errors name the function and file:line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Tuple  # noqa: UP035

import pytest

from conveyor import step
from conveyor.errors import EXIT_USAGE, DefinitionError


class Split(NamedTuple):
    train: list[int]
    test: list[int]


def definition_error(func: Callable[..., Any], **options: Any) -> DefinitionError:
    """Decorate ``func`` and return the error, checking it points at the function."""
    with pytest.raises(DefinitionError) as info:
        if options:
            step(**options)(func)
        else:
            step(func)
    err = info.value
    assert err.exit_code == EXIT_USAGE
    assert f"'{func.__qualname__}'" in err.message
    assert f"{__file__}:{func.__code__.co_firstlineno}" in err.message
    return err


def test_single_output() -> None:
    @step
    def load(n: int = 3) -> list[int]:
        return list(range(n))

    sd = load.definition
    assert sd.name == "load"
    assert sd.output_kind == "single"
    assert [o.name for o in sd.outputs] == ["output"]
    assert [(p.name, p.annotation, p.default) for p in sd.params] == [("n", int, 3)]


def test_tuple_outputs_default_and_given_names() -> None:
    @step
    def split(data: list[int]) -> tuple[list[int], list[int]]:
        return data, data

    @step(outputs=("train", "test"))
    def named(data: list[int]) -> tuple[list[int], list[int]]:
        return data, data

    assert [o.name for o in split.definition.outputs] == ["output_0", "output_1"]
    assert [o.name for o in named.definition.outputs] == ["train", "test"]
    assert named.definition.output_kind == "tuple"


def test_namedtuple_outputs_are_its_fields() -> None:
    @step
    def split(data: list[int]) -> Split:
        return Split(data, data)

    assert split.definition.output_kind == "named"
    assert [(o.name, o.annotation) for o in split.definition.outputs] == [
        ("train", list[int]),
        ("test", list[int]),
    ]


def test_none_return_has_no_outputs() -> None:
    @step
    def check(data: list[int]) -> None:
        return None

    assert check.definition.output_kind == "none"
    assert check.definition.outputs == ()


def test_custom_name_deps_cache_and_salt() -> None:
    @step(name="prepare-data", deps=["data/raw.csv"], cache=False, salt="v2")
    def prep() -> int:
        return 1

    sd = prep.definition
    assert (sd.name, sd.deps, sd.cache, sd.salt) == ("prepare-data", ("data/raw.csv",), False, "v2")


def test_outside_a_pipeline_a_step_is_the_function() -> None:
    @step
    def add(a: int, b: int = 2) -> int:
        return a + b

    assert add(1) == 3
    assert add(a=1, b=5) == 6
    assert add.__name__ == "add"
    assert add.__doc__ is None


def test_missing_argument_annotation() -> None:
    def train(df, n: int = 3) -> int:  # type: ignore[no-untyped-def]
        return n

    err = definition_error(train)
    assert "argument 'df'" in err.message
    assert "no type annotation" in err.message


def test_missing_return_annotation() -> None:
    def train(n: int = 3):  # type: ignore[no-untyped-def]
        return n

    err = definition_error(train)
    assert "no return annotation" in err.message
    assert err.hint is not None
    assert "-> None" in err.hint


def test_var_positional_is_refused() -> None:
    def train(*frames: int) -> int:
        return 0

    err = definition_error(train)
    assert "*frames" in err.message


def test_var_keyword_is_refused() -> None:
    def train(**options: int) -> int:
        return 0

    err = definition_error(train)
    assert "options" in err.message


def test_tuple_of_unknown_length() -> None:
    def split(data: list[int]) -> tuple[list[int], ...]:
        return (data,)

    err = definition_error(split)
    assert "tuple of unknown length" in err.message


def test_typing_tuple_without_arguments_is_of_unknown_length() -> None:
    def split(data: list[int]) -> Tuple:  # type: ignore[type-arg]  # noqa: UP006
        return (data,)

    assert "unknown length" in definition_error(split).message


def test_bare_tuple_is_of_unknown_length() -> None:
    def split(data: list[int]) -> tuple:  # type: ignore[type-arg]
        return (data,)

    assert "unknown length" in definition_error(split).message


def test_output_names_count_differs_from_tuple() -> None:
    def split(data: list[int]) -> tuple[list[int], list[int]]:
        return data, data

    err = definition_error(split, outputs=("train", "test", "valid"))
    assert "3 output names" in err.message
    assert "2 elements" in err.message


def test_several_output_names_for_single_value() -> None:
    def load() -> list[int]:
        return []

    err = definition_error(load, outputs=("a", "b"))
    assert "single value" in err.message


def test_output_names_for_none_return() -> None:
    def check() -> None:
        return None

    assert "returns None" in definition_error(check, outputs=("a",)).message


def test_output_names_must_match_namedtuple_fields() -> None:
    def split(data: list[int]) -> Split:
        return Split(data, data)

    err = definition_error(split, outputs=("a", "b"))
    assert "['train', 'test']" in err.message


def test_duplicate_output_names() -> None:
    def split(data: list[int]) -> tuple[int, int]:
        return 1, 2

    assert "duplicate name 'x'" in definition_error(split, outputs=("x", "x")).message


@pytest.mark.parametrize("bad", ["my step", "a/b", "x.y", "a:b"])
def test_invalid_step_name(bad: str) -> None:
    def load() -> int:
        return 1

    err = definition_error(load, name=bad)
    assert f"invalid name '{bad}'" in err.message


def test_unresolvable_annotation() -> None:
    def load() -> NoSuchType:  # type: ignore[name-defined]  # noqa: F821
        return 1

    err = definition_error(load)
    assert "cannot be resolved" in err.message


def test_decorating_twice_is_refused() -> None:
    @step
    def load() -> int:
        return 1

    with pytest.raises(DefinitionError, match="twice"):
        step(load)
