"""``@pipeline``: a function that calls steps. Tracing it yields the DAG: the data flow."""

from __future__ import annotations

import contextvars
import functools
import inspect
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.location import caller_site, where
from conveyor.core.step import (
    OutputSpec,
    ParamSpec,
    StepDef,
    check_name,
    check_unique,
    resolved_hints,
    signature_params,
)
from conveyor.errors import DefinitionError

_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("tracer", default=None)


@dataclass(frozen=True, slots=True)
class OutputRef:
    """A reference to one output of one invocation in a traced pipeline."""

    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"


class StepOutput:
    """What calling a step inside a pipeline returns: a handle to pass to other steps."""

    __slots__ = ("_ref",)

    def __init__(self, ref: OutputRef) -> None:
        object.__setattr__(self, "_ref", ref)

    @property
    def ref(self) -> OutputRef:
        ref: OutputRef = object.__getattribute__(self, "_ref")
        return ref

    def __getattr__(self, name: str) -> Any:
        raise DefinitionError(
            f"pipeline code used '.{name}' on the output '{self.ref}' of a step; inside a "
            "@pipeline, step outputs are handles, not values",
            hint="do that work inside a @step and pass the output to it",
        )

    def __bool__(self) -> bool:
        raise DefinitionError(
            f"pipeline code tested the truth of '{self.ref}', a step output handle",
            hint="branch on params (plain values) in pipeline code, not on step outputs",
        )

    def __iter__(self) -> Iterator[Any]:
        raise DefinitionError(
            f"pipeline code unpacked '{self.ref}', a single output",
            hint="to return several outputs, annotate the step '-> tuple[A, B]'",
        )

    def __repr__(self) -> str:
        return f"<output {self.ref}>"


class StepOutputs(tuple[StepOutput, ...]):
    """The handles of a step with several outputs: unpack them or use them by name."""

    _names: tuple[str, ...]

    def __new__(cls, handles: Sequence[StepOutput], names: Sequence[str]) -> StepOutputs:
        obj = super().__new__(cls, handles)
        obj._names = tuple(names)
        return obj

    def __getattr__(self, name: str) -> StepOutput:
        try:
            return self[self._names.index(name)]
        except ValueError:
            raise AttributeError(
                f"step has no output '{name}'; it has {list(self._names)}"
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """One call of a step in a pipeline."""

    name: str
    step: StepDef
    inputs: dict[str, OutputRef]  # argument name -> producing output
    literals: dict[str, Any]  # arguments bound to plain values in pipeline code
    call_site: str
    outs: tuple[str, ...] = ()  # files a cmd step writes

    @property
    def outputs(self) -> tuple[OutputSpec, ...]:
        return self.step.outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineGraph:
    """A traced pipeline: invocations in execution order, with their upstream names."""

    name: str
    location: str
    invocations: tuple[Invocation, ...]
    upstream: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, name: str) -> Invocation:
        for inv in self.invocations:
            if inv.name == name:
                return inv
        raise KeyError(name)

    def downstream(self, name: str) -> set[str]:
        """Every invocation that depends on ``name``, directly or not."""
        found: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for inv, ups in self.upstream.items():
                if current in ups and inv not in found:
                    found.add(inv)
                    frontier.append(inv)
        return found


class Tracer:
    """Records step calls while a pipeline function runs."""

    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.invocations: list[Invocation] = []
        self._names: dict[str, int] = {}

    def _unique_name(self, base: str) -> str:
        count = self._names.get(base, 0) + 1
        self._names[base] = count
        return base if count == 1 else f"{base}_{count}"

    def invoke(self, sd: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        site = caller_site(3)
        names = [p.name for p in sd.params]
        if len(args) > len(names):
            raise DefinitionError(
                f"step '{sd.name}' takes {len(names)} arguments but {len(args)} were given "
                f"at {site}"
            )
        bound: dict[str, Any] = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                from conveyor.errors import did_you_mean

                raise DefinitionError(
                    f"step '{sd.name}' has no argument '{key}' (called at {site})",
                    hint=did_you_mean(key, names) or f"its arguments are {names}",
                )
            if key in bound:
                raise DefinitionError(f"argument '{key}' of step '{sd.name}' given twice at {site}")
            bound[key] = value
        inputs: dict[str, OutputRef] = {}
        literals: dict[str, Any] = {}
        for key, value in bound.items():
            if isinstance(value, StepOutputs):
                raise DefinitionError(
                    f"argument '{key}' of step '{sd.name}' at {site} got all the outputs of a "
                    f"step with several outputs",
                    hint="unpack them first, e.g. 'train, test = split(df)'",
                )
            if isinstance(value, StepOutput):
                inputs[key] = value.ref
            else:
                literals[key] = value
        name = self._unique_name(sd.name)
        outs: tuple[str, ...] = ()
        if sd.is_cmd:
            outs = tuple(o.name for o in sd.outputs)
        self.invocations.append(
            Invocation(
                name=name, step=sd, inputs=inputs, literals=literals, call_site=site, outs=outs
            )
        )
        handles = [StepOutput(OutputRef(name, o.name)) for o in sd.outputs]
        if sd.output_kind == "single" or (sd.output_kind == "files" and len(handles) == 1):
            return handles[0]
        if not handles:
            return None
        return StepOutputs(handles, [o.name for o in sd.outputs])


def current_tracer() -> Tracer | None:
    return _TRACER.get()


class Pipeline:
    """A decorated pipeline function."""

    def __init__(self, func: Callable[..., Any], name: str | None = None) -> None:
        self.func = func
        self.name = name or func.__name__
        self.location = where(func)
        check_name(self.name, f"pipeline function '{func.__qualname__}' at {self.location}")
        hints = resolved_hints(func, self.location)
        self.params: tuple[ParamSpec, ...] = signature_params(
            func, hints, self.location, kind="pipeline"
        )
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise DefinitionError(
            f"pipeline '{self.name}' cannot be called like a function",
            hint=f"run it with 'conveyor run {self.name}' or conveyor.run_pipeline(...)",
        )

    def trace(self, params: Mapping[str, Any]) -> PipelineGraph:
        """Run the pipeline function with ``params`` and return the graph of its step calls."""
        tracer = Tracer(self.name)
        token = _TRACER.set(tracer)
        try:
            self.func(**params)
        finally:
            _TRACER.reset(token)
        return build_graph(self.name, self.location, tracer.invocations)

    def __repr__(self) -> str:
        return f"<pipeline {self.name} at {self.location}>"


def pipeline(func: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Declare a pipeline: a function whose step calls make up the DAG."""
    if func is not None:
        return Pipeline(func, name)
    return lambda f: Pipeline(f, name)


def cmd_step(
    name: str,
    cmd: Sequence[str],
    *,
    deps: Sequence[str] = (),
    outs: Sequence[str] = (),
    params: Mapping[str, Any] | Sequence[str] = (),
    cache: bool = True,
) -> Any:
    """Add a command step to the pipeline being traced.

    ``cmd`` is an argv list, run without a shell. ``{params.NAME}`` inside an element is
    replaced by that param's value. ``deps`` are files the command reads (their digests are
    part of the cache key); ``outs`` are files or directories it must write, stored as artifacts.
    """
    sd = make_cmd_def(
        name, cmd, deps=deps, outs=outs, params=params, cache=cache, location=caller_site(2)
    )
    tracer = current_tracer()
    if tracer is None:
        raise DefinitionError(
            f"cmd_step '{name}' was called outside a @pipeline function",
            hint="call cmd_step(...) inside the body of a @pipeline",
        )
    return tracer.invoke(sd, (), {})


def make_cmd_def(
    name: str,
    cmd: Sequence[str] | str,
    *,
    deps: Sequence[str],
    outs: Sequence[str],
    params: Mapping[str, Any] | Sequence[str],
    cache: bool,
    location: str,
) -> StepDef:
    import shlex

    check_name(name, f"cmd step at {location}")
    argv = tuple(shlex.split(cmd)) if isinstance(cmd, str) else tuple(str(a) for a in cmd)
    if not argv:
        raise DefinitionError(f"cmd step '{name}' at {location} has an empty command")
    for path in (*deps, *outs):
        check_relative_path(path, f"cmd step '{name}' at {location}")
    check_unique(list(outs), f"outs of cmd step '{name}' at {location}")
    pmap = (
        dict(params)
        if isinstance(params, Mapping)
        else {p: inspect.Parameter.empty for p in params}
    )
    # A cmd step's params are typed by their defaults, as a function's are by annotations.
    specs = tuple(
        ParamSpec(
            name=k, annotation=type(v) if isinstance(v, (bool, int, float, str)) else Any, default=v
        )
        for k, v in pmap.items()
    )
    import re

    for arg in argv:
        for ref in re.findall(r"\{params\.([A-Za-z_][A-Za-z0-9_]*)\}", arg):
            if ref not in pmap:
                raise DefinitionError(
                    f"cmd step '{name}' at {location} uses {{params.{ref}}} but does not "
                    "declare that param",
                    hint=f"add '{ref}' to the step's params",
                )
    return StepDef(
        name=name,
        func=None,
        params=specs,
        outputs=tuple(OutputSpec(name=o) for o in outs),
        output_kind="files",
        location=location,
        deps=tuple(deps),
        cmd=argv,
        cache=cache,
    )


def check_relative_path(path: str, what: str) -> None:
    norm = posixpath.normpath(path.replace("\\", "/"))
    if path.startswith(("/", "~")) or norm == ".." or norm.startswith("../") or ":" in path:
        raise DefinitionError(
            f"path '{path}' of {what} leaves the project",
            hint="declare files relative to the project directory, without '..'",
        )


def build_graph(name: str, location: str, invocations: list[Invocation]) -> PipelineGraph:
    """Order invocations topologically; data edges and file edges (cmd deps on outs) count."""
    if not invocations:
        raise DefinitionError(
            f"pipeline '{name}' at {location} calls no step",
            hint="call at least one @step function inside the pipeline",
        )
    producers: dict[str, str] = {}
    for inv in invocations:
        for out in inv.outs:
            key = posixpath.normpath(out)
            if key in producers:
                raise DefinitionError(
                    f"output '{out}' is declared by both '{producers[key]}' and '{inv.name}' "
                    f"in pipeline '{name}' at {location}",
                    hint="each file may be written by one step only",
                )
            producers[key] = inv.name
    upstream: dict[str, tuple[str, ...]] = {}
    for inv in invocations:
        ups = {ref.step for ref in inv.inputs.values()}
        for dep in inv.step.deps:
            producer = producers.get(posixpath.normpath(dep))
            if producer is not None and producer != inv.name:
                ups.add(producer)
            elif producer == inv.name:
                raise DefinitionError(
                    f"cmd step '{inv.name}' both reads and writes '{dep}' (pipeline '{name}' "
                    f"at {location})",
                    hint="write the result to a new path",
                )
        upstream[inv.name] = tuple(sorted(ups))
    order = toposort([inv.name for inv in invocations], upstream, name, location)
    by_name = {inv.name: inv for inv in invocations}
    return PipelineGraph(
        name=name,
        location=location,
        invocations=tuple(by_name[n] for n in order),
        upstream=upstream,
    )


def toposort(
    names: list[str], upstream: Mapping[str, Sequence[str]], pipeline_name: str, location: str
) -> list[str]:
    """Kahn's algorithm keeping the call order among ready steps; a cycle is named in full."""
    remaining = {n: set(upstream.get(n, ())) for n in names}
    order: list[str] = []
    while remaining:
        ready = [n for n in names if n in remaining and not remaining[n]]
        if not ready:
            cycle = find_cycle(remaining)
            raise DefinitionError(
                f"pipeline '{pipeline_name}' at {location} has a cycle: {' -> '.join(cycle)}",
                hint="a step cannot read a file that it, or a step after it, writes",
            )
        for n in ready:
            order.append(n)
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    start = sorted(graph)[0]
    path = [start]
    seen = {start}
    node = start
    while True:
        nxt = sorted(d for d in graph[node] if d in graph)[0]
        if nxt in seen:
            cycle = [*path[path.index(nxt) :], nxt]
            return list(reversed(cycle))
        path.append(nxt)
        seen.add(nxt)
        node = nxt
