"""``@step``: a typed function whose inputs are artifacts or params and whose results are artifacts.

A step's outputs come from its return annotation:

* ``-> T``                      one output, named ``output``
* ``-> tuple[A, B]``            two outputs, named ``output_0`` and ``output_1``, or as given by
                                ``@step(outputs=("train", "test"))``
* ``-> SomeNamedTuple``         one output per field, named after the fields
* ``-> None``                   no output (a step run for its checks or side effects)

Outside a pipeline a step is a plain function: calling it runs it, which is what unit tests
of feature logic want. Inside a pipeline, calling it records an invocation and returns handles.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from conveyor.core.contracts import Contract, parse_contracts
from conveyor.core.location import where
from conveyor.errors import DefinitionError

F = TypeVar("F", bound=Callable[..., Any])

_MISSING: Any = inspect.Parameter.empty


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One argument of a step or pipeline function."""

    name: str
    annotation: Any
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSpec:
    """One output of a step: its name and declared type (``Any`` when unknown)."""

    name: str
    annotation: Any = Any


@dataclass(frozen=True, slots=True, kw_only=True)
class StepDef:
    """What Conveyor knows about a step, independent of any pipeline it is used in."""

    name: str
    func: Callable[..., Any] | None
    params: tuple[ParamSpec, ...]
    outputs: tuple[OutputSpec, ...]
    output_kind: str  # "single" | "tuple" | "named" | "none" | "files"
    location: str
    deps: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    cache: bool = True
    salt: str | None = None
    contracts: dict[str, Contract] = field(default_factory=dict)
    # Param defaults read from the project file, e.g. {"schema": "checks.data.schema"}.
    defaults_from: dict[str, str] = field(default_factory=dict)
    # Called with the resolved params when the run is planned: raise a ConveyorError to refuse
    # bad values (exit code 2) before anything runs.
    check_params: Callable[[dict[str, Any]], None] | None = None
    # Params whose value is a project file the step reads: its digest joins the cache key.
    file_params: tuple[str, ...] = ()

    @property
    def is_cmd(self) -> bool:
        return self.cmd is not None

    def param(self, name: str) -> ParamSpec | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


class Step:
    """A decorated step function. Call it inside a ``@pipeline`` to add it to the graph."""

    def __init__(self, definition: StepDef) -> None:
        self.definition = definition
        if definition.func is not None:
            functools.update_wrapper(self, definition.func)

    @property
    def name(self) -> str:
        return self.definition.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from conveyor.core.pipeline import current_tracer

        tracer = current_tracer()
        if tracer is None:
            if self.definition.func is None:
                raise DefinitionError(
                    f"cmd step '{self.name}' can only be used inside a @pipeline function",
                    hint=f"defined at {self.definition.location}",
                )
            return self.definition.func(*args, **kwargs)
        return tracer.invoke(self.definition, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name} at {self.definition.location}>"


@overload
def step(func: F, /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    outputs: Sequence[str] | None = None,
    deps: Sequence[str] = (),
    cache: bool = True,
    salt: str | None = None,
    contracts: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[F], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: Sequence[str] | None = None,
    deps: Sequence[str] = (),
    cache: bool = True,
    salt: str | None = None,
    contracts: Mapping[str, Mapping[str, Any]] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Declare a pipeline step.

    Args:
        name: the step's name in runs and lineage (default: the function's name).
        outputs: names for the elements of a tuple return value.
        deps: project files the step reads; their digests are part of its cache key.
        cache: set False for a step that must run every time (it still records its outputs).
        salt: any string; changing it invalidates the step's cache.
        contracts: what each output must satisfy, by output name, checked right after the step
            runs (see conveyor.core.contracts), e.g. ``{"output": {"keys": ["roc_auc"]}}``.
    """

    def decorate(f: Callable[..., Any]) -> Step:
        return Step(
            make_step_def(
                f,
                name=name,
                outputs=outputs,
                deps=deps,
                cache=cache,
                salt=salt,
                contracts=contracts,
            )
        )

    if func is not None:
        return decorate(func)
    return decorate


def make_step_def(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    outputs: Sequence[str] | None = None,
    deps: Sequence[str] = (),
    cache: bool = True,
    salt: str | None = None,
    contracts: Mapping[str, Mapping[str, Any]] | None = None,
) -> StepDef:
    if isinstance(func, Step):
        raise DefinitionError(f"step '{func.name}' is decorated with @step twice")
    if not callable(func) or not hasattr(func, "__code__"):
        raise DefinitionError(f"@step needs a function, got {func!r}")
    loc = where(func)
    qual = func.__qualname__
    hints = resolved_hints(func, loc)
    params = signature_params(func, hints, loc, kind="step")
    if "return" not in hints:
        raise DefinitionError(
            f"step function '{qual}' at {loc} has no return annotation",
            hint="annotate what it returns, e.g. '-> pd.DataFrame', or '-> None' for no output",
        )
    kind, outs = output_specs(hints["return"], outputs, qual, loc)
    step_name = name or func.__name__
    check_name(step_name, f"step function '{qual}' at {loc}")
    return StepDef(
        name=step_name,
        func=func,
        params=params,
        outputs=outs,
        output_kind=kind,
        location=loc,
        deps=tuple(deps),
        cache=cache,
        salt=salt,
        contracts=parse_contracts(
            contracts, [o.name for o in outs], f"step function '{qual}' at {loc}"
        ),
    )


def resolved_hints(func: Callable[..., Any], loc: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError, AttributeError) as exc:
        raise DefinitionError(
            f"the annotations of '{func.__qualname__}' at {loc} cannot be resolved: {exc}",
            hint="import every type used in the annotations at module level",
        ) from exc


def signature_params(
    func: Callable[..., Any], hints: dict[str, Any], loc: str, *, kind: str
) -> tuple[ParamSpec, ...]:
    specs = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise DefinitionError(
                f"{kind} function '{func.__qualname__}' at {loc} takes *{p.name}",
                hint="list each input as a named, annotated argument",
            )
        if p.name not in hints:
            raise DefinitionError(
                f"argument '{p.name}' of {kind} function '{func.__qualname__}' at {loc} "
                "has no type annotation",
                hint=f"annotate it, e.g. '{p.name}: int = 10' for a param or "
                f"'{p.name}: pd.DataFrame' for an input",
            )
        specs.append(ParamSpec(name=p.name, annotation=hints[p.name], default=p.default))
    return tuple(specs)


def output_specs(
    ret: Any, names: Sequence[str] | None, qual: str, loc: str
) -> tuple[str, tuple[OutputSpec, ...]]:
    if ret is None or ret is type(None):
        if names:
            raise DefinitionError(
                f"step '{qual}' at {loc} declares outputs {list(names)} but returns None",
                hint="annotate the return type with what the step produces",
            )
        return "none", ()
    fields = getattr(ret, "_fields", None)
    if isinstance(ret, type) and issubclass(ret, tuple) and fields:
        annotations = typing.get_type_hints(ret)
        specs = tuple(OutputSpec(name=f, annotation=annotations.get(f, Any)) for f in fields)
        if names and tuple(names) != tuple(fields):
            raise DefinitionError(
                f"step '{qual}' at {loc}: outputs={list(names)} differ from the fields "
                f"{list(fields)} of {ret.__name__}",
                hint="drop outputs=..., the NamedTuple's fields already name the outputs",
            )
        return "named", specs
    if ret is tuple or typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            raise DefinitionError(
                f"step '{qual}' at {loc} returns a tuple of unknown length",
                hint="annotate each element, e.g. '-> tuple[pd.DataFrame, pd.DataFrame]'",
            )
        if names is not None and len(names) != len(args):
            raise DefinitionError(
                f"step '{qual}' at {loc} declares {len(names)} output names "
                f"{list(names)} but its return annotation has {len(args)} elements",
                hint="give one name per element of the returned tuple",
            )
        out_names = list(names) if names else [f"output_{i}" for i in range(len(args))]
        check_unique(out_names, f"outputs of step '{qual}' at {loc}")
        return "tuple", tuple(
            OutputSpec(name=n, annotation=a) for n, a in zip(out_names, args, strict=False)
        )
    if names is not None and len(names) != 1:
        raise DefinitionError(
            f"step '{qual}' at {loc} declares {len(names)} outputs {list(names)} "
            "but returns a single value",
            hint="return a tuple with one element per output name",
        )
    return "single", (OutputSpec(name=names[0] if names else "output", annotation=ret),)


def check_name(name: str, what: str) -> None:
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise DefinitionError(
            f"invalid name '{name}' for {what}",
            hint="use letters, digits, '_' and '-' only",
        )


def check_unique(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DefinitionError(f"duplicate name '{n}' in {what}")
        seen.add(n)
