"""Tracing @pipeline functions: the DAG is the data flow; mistakes give helpful errors."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from conveyor import cmd_step, pipeline, step
from conveyor.core.pipeline import OutputRef, PipelineGraph
from conveyor.errors import DefinitionError


class Split(NamedTuple):
    train: list[int]
    test: list[int]


@step
def load(rows: int = 10) -> list[int]:
    return list(range(rows))


@step
def split(data: list[int]) -> Split:
    return Split(data[:5], data[5:])


@step(outputs=("left", "right"))
def halves(data: list[int]) -> tuple[list[int], list[int]]:
    return data[:1], data[1:]


@step
def fit(train: list[int], alpha: float = 0.1) -> dict[str, float]:
    return {"alpha": alpha}


@step
def report(model: dict[str, float], data: list[int]) -> None:
    return None


def names(graph: PipelineGraph) -> list[str]:
    return [inv.name for inv in graph.invocations]


def test_data_flow_becomes_the_graph() -> None:
    @pipeline
    def training(rows: int = 100) -> None:
        data = load(rows=rows)
        parts = split(data)
        model = fit(parts.train)
        report(model, parts.test)

    graph = training.trace({"rows": 7})
    assert names(graph) == ["load", "split", "fit", "report"]
    assert graph.upstream == {
        "load": (),
        "split": ("load",),
        "fit": ("split",),
        "report": ("fit", "split"),
    }
    assert graph.get("load").literals == {"rows": 7}
    assert graph.get("fit").inputs == {"train": OutputRef("split", "train")}
    assert graph.get("report").inputs == {
        "model": OutputRef("fit", "output"),
        "data": OutputRef("split", "test"),
    }
    assert graph.downstream("split") == {"fit", "report"}
    assert graph.downstream("report") == set()


def test_tuple_outputs_unpack_and_namedtuple_unpacks() -> None:
    @pipeline
    def p() -> None:
        left, right = halves(load())
        _train, test = split(right)
        fit(left)
        fit(test)

    graph = p.trace({})
    assert graph.get("fit").inputs == {"train": OutputRef("halves", "left")}
    assert graph.get("fit_2").inputs == {"train": OutputRef("split", "test")}
    assert graph.get("split").inputs == {"data": OutputRef("halves", "right")}


def test_named_access_to_tuple_outputs() -> None:
    @pipeline
    def p() -> None:
        outs = halves(load())
        fit(outs.right)

    assert p.trace({}).get("fit").inputs == {"train": OutputRef("halves", "right")}


def test_unknown_output_name_lists_the_outputs() -> None:
    @pipeline
    def p() -> None:
        outs = split(load())
        fit(outs.valid)

    with pytest.raises(AttributeError, match=r"no output 'valid'.*\['train', 'test'\]"):
        p.trace({})


def test_repeated_step_gets_unique_names() -> None:
    @pipeline
    def p() -> None:
        data = load()
        fit(data, alpha=0.1)
        fit(data, alpha=0.2)
        fit(data, alpha=0.3)

    graph = p.trace({})
    assert names(graph) == ["load", "fit", "fit_2", "fit_3"]
    assert graph.get("fit_3").literals == {"alpha": 0.3}


def test_invocations_record_their_call_site() -> None:
    @pipeline
    def p() -> None:
        load()

    graph = p.trace({})
    assert graph.get("load").call_site.startswith(f"{__file__}:")


def test_graph_is_in_dependency_order() -> None:
    @step
    def combine(a: list[int], b: list[int]) -> list[int]:
        return a + b

    @pipeline
    def p() -> None:
        a = load()
        b = load()
        c = combine(a, b)
        fit(c)

    graph = p.trace({})
    order = names(graph)
    for inv, ups in graph.upstream.items():
        assert all(order.index(up) < order.index(inv) for up in ups)


def test_cmd_steps_are_ordered_by_files() -> None:
    @pipeline
    def p() -> None:
        cmd_step("train", cmd=["python", "train.py"], deps=["data/clean.csv"], outs=["model.bin"])
        cmd_step("prep", cmd=["python", "prep.py"], deps=["data/raw.csv"], outs=["data/clean.csv"])

    graph = p.trace({})
    assert names(graph) == ["prep", "train"]
    assert graph.upstream["train"] == ("prep",)
    assert graph.get("prep").outs == ("data/clean.csv",)


def test_cmd_step_outputs_are_handles_for_python_steps() -> None:
    @step
    def summarize(path: str, other: str) -> int:
        return 0

    @pipeline
    def p() -> None:
        one = cmd_step("prep", cmd=["prep"], outs=["data/clean.csv"])
        _first, second = cmd_step("split", cmd=["split"], outs=["train.csv", "test.csv"])
        summarize(one, second)
        cmd_step("notify", cmd=["notify"])

    graph = p.trace({})
    assert graph.get("summarize").inputs == {
        "path": OutputRef("prep", "data/clean.csv"),
        "other": OutputRef("split", "test.csv"),
    }
    assert graph.upstream["summarize"] == ("prep", "split")
    assert graph.get("notify").outs == ()


def test_cycle_of_cmd_steps_is_named() -> None:
    @pipeline
    def p() -> None:
        cmd_step("a", cmd=["x"], deps=["b.txt"], outs=["a.txt"])
        cmd_step("b", cmd=["x"], deps=["a.txt"], outs=["b.txt"])

    with pytest.raises(DefinitionError, match="has a cycle") as info:
        p.trace({})
    assert "a -> b -> a" in info.value.message or "b -> a -> b" in info.value.message
    assert "'p'" in info.value.message


def test_cmd_step_reading_its_own_output_is_refused() -> None:
    @pipeline
    def p() -> None:
        cmd_step("a", cmd=["x"], deps=["a.txt"], outs=["a.txt"])

    with pytest.raises(DefinitionError, match="both reads and writes 'a.txt'"):
        p.trace({})


def test_two_steps_writing_the_same_path_are_refused() -> None:
    @pipeline
    def p() -> None:
        cmd_step("a", cmd=["x"], outs=["data/out.csv"])
        cmd_step("b", cmd=["y"], outs=["data/./out.csv"])

    with pytest.raises(DefinitionError, match="declared by both 'a' and 'b'"):
        p.trace({})


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../x", "~/x", "C:/x"])
def test_paths_leaving_the_project_are_refused(path: str) -> None:
    @pipeline
    def outs() -> None:
        cmd_step("a", cmd=["x"], outs=[path])

    @pipeline
    def deps() -> None:
        cmd_step("a", cmd=["x"], deps=[path], outs=["ok.txt"])

    for p in (outs, deps):
        with pytest.raises(DefinitionError, match="leaves the project"):
            p.trace({})


def test_cmd_step_param_reference_must_be_declared() -> None:
    @pipeline
    def p() -> None:
        cmd_step("a", cmd=["train", "--n={params.n_trees}"], outs=["m.bin"])

    with pytest.raises(DefinitionError, match=r"\{params.n_trees\}"):
        p.trace({})


def test_cmd_step_outside_a_pipeline_is_refused() -> None:
    with pytest.raises(DefinitionError, match="outside a @pipeline"):
        cmd_step("a", cmd=["x"], outs=["a.txt"])


def test_attribute_of_a_handle_is_explained() -> None:
    @pipeline
    def p() -> None:
        data = load()
        data.shape  # noqa: B018

    with pytest.raises(DefinitionError, match=r"'\.shape' on the output 'load.output'") as info:
        p.trace({})
    assert info.value.hint is not None
    assert "@step" in info.value.hint


def test_truth_of_a_handle_is_explained() -> None:
    @pipeline
    def p() -> None:
        data = load()
        if data:
            fit(data)

    with pytest.raises(DefinitionError, match="truth of 'load.output'") as info:
        p.trace({})
    assert info.value.hint is not None
    assert "params" in info.value.hint


def test_unpacking_a_single_output_is_explained() -> None:
    @pipeline
    def p() -> None:
        _a, _b = load()

    with pytest.raises(DefinitionError, match="unpacked 'load.output'"):
        p.trace({})


def test_passing_all_outputs_of_a_multi_output_step_is_explained() -> None:
    @pipeline
    def p() -> None:
        fit(split(load()))

    with pytest.raises(DefinitionError, match="several outputs") as info:
        p.trace({})
    assert info.value.hint is not None
    assert "unpack" in info.value.hint


def test_unknown_keyword_argument_suggests_the_right_one() -> None:
    @pipeline
    def p() -> None:
        fit(load(), alhpa=0.5)

    with pytest.raises(DefinitionError, match="no argument 'alhpa'") as info:
        p.trace({})
    assert info.value.hint == "did you mean 'alpha'?"
    assert f"{__file__}:" in info.value.message


def test_too_many_positional_arguments() -> None:
    @pipeline
    def p() -> None:
        load(1, 2)

    with pytest.raises(DefinitionError, match="takes 1 arguments but 2 were given"):
        p.trace({})


def test_argument_given_twice() -> None:
    @pipeline
    def p() -> None:
        load(1, rows=2)

    with pytest.raises(DefinitionError, match="'rows' of step 'load' given twice"):
        p.trace({})


def test_pipeline_calling_no_step_is_refused() -> None:
    @pipeline
    def empty(rows: int = 1) -> None:
        return None

    with pytest.raises(DefinitionError, match="'empty'.*calls no step"):
        empty.trace({})


def test_pipeline_cannot_be_called_directly() -> None:
    @pipeline
    def p() -> None:
        load()

    with pytest.raises(DefinitionError, match="cannot be called like a function") as info:
        p()
    assert info.value.hint is not None
    assert "conveyor run p" in info.value.hint


def test_pipeline_arguments_must_be_annotated() -> None:
    def p(rows=1) -> None:  # type: ignore[no-untyped-def]
        load(rows)

    with pytest.raises(DefinitionError, match="argument 'rows' of pipeline function"):
        pipeline(p)


def test_pipeline_name_and_params() -> None:
    @pipeline(name="train-v2")
    def p(rows: int, alpha: float = 0.5) -> None:
        load(rows)

    assert p.name == "train-v2"
    assert [(s.name, s.required) for s in p.params] == [("rows", True), ("alpha", False)]


def test_tracing_does_not_run_step_bodies() -> None:
    calls: list[int] = []

    @step
    def record(n: int = 1) -> int:
        calls.append(n)
        return n

    @pipeline
    def p() -> None:
        record(5)

    p.trace({})
    assert calls == []
    assert record(3) == 3
    assert calls == [3]
