"""Resolving params: defaults, then ``conveyor.yaml``, then ``-p key=value``, typed by annotation.

A key ``name`` applies to the pipeline argument of that name and to every step argument of
that name that the pipeline code leaves unbound; ``step.name`` applies to one step only.
Every key must apply to something, so a typo is an error rather than a silent no-op.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Mapping
from typing import Any

from conveyor.core.pipeline import Pipeline, PipelineGraph
from conveyor.core.step import ParamSpec
from conveyor.errors import ConfigError, DefinitionError, UsageError, did_you_mean

ARTIFACT_REF = "conveyor:artifact-ref"
ArtifactRef = typing.Annotated[str, ARTIFACT_REF]
"""A step param naming an artifact (``RUN:STEP[.OUTPUT]`` or a digest prefix). It is resolved
to the full digest when the run is planned; the step loads it with ``load_artifact``."""


def is_artifact_ref(annotation: Any) -> bool:
    return ARTIFACT_REF in getattr(annotation, "__metadata__", ())


@functools.lru_cache(maxsize=256)
def _adapter(annotation: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)


def coerce(spec: ParamSpec, value: Any, *, source: str, from_string: bool) -> Any:
    """Convert ``value`` to the param's annotated type or raise a UsageError naming ``source``."""
    ann = spec.annotation
    if ann is Any or ann is object:
        if from_string:
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    from pydantic import ValidationError

    adapter = _adapter(ann)
    try:
        if from_string:
            if ann is str:
                return value
            try:
                return adapter.validate_json(value, strict=False)
            except ValidationError:
                return adapter.validate_strings(value)
        return adapter.validate_python(value, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        type_name = getattr(ann, "__name__", str(ann))
        raise UsageError(
            f"{source}: param '{spec.name}' must be {type_name}, got {value!r} ({first})",
            hint=f"give a value of type {type_name}",
        ) from None


def check_jsonable(name: str, value: Any, where: str) -> None:
    try:
        json.dumps(value, sort_keys=True, allow_nan=True, default=_reject)
    except TypeError as exc:
        raise DefinitionError(
            f"param '{name}' ({where}) has a value of type {type(value).__name__} that cannot be "
            "recorded",
            hint="params must be JSON values (numbers, strings, booleans, lists, dicts); pass "
            "other values between steps as step outputs",
        ) from exc


def _reject(obj: Any) -> Any:
    raise TypeError(type(obj).__name__)


class ParamSources:
    """Overrides from the project file and the command line, tracking which keys were used."""

    def __init__(
        self,
        config: Mapping[str, Any],
        cli: Mapping[str, str],
        defaults: Mapping[str, tuple[str, Any]] | None = None,
    ) -> None:
        self.config = dict(config)
        self.cli = dict(cli)
        # "step.param" -> (where in conveyor.yaml, value): defaults some steps take from the
        # project file (e.g. the built-in checks from `checks:`), below explicit overrides.
        self.defaults = dict(defaults or {})
        self.used: set[str] = set()

    def lookup(self, spec: ParamSpec, keys: list[str]) -> tuple[bool, Any]:
        """The overriding value for a param known under ``keys`` (most specific first)."""
        for key in keys:
            if key in self.cli:
                self.used.add(key)
                return True, coerce(spec, self.cli[key], source=f"-p {key}", from_string=True)
        for key in keys:
            if key in self.config:
                self.used.add(key)
                return True, coerce(
                    spec, self.config[key], source=f"conveyor.yaml params.{key}", from_string=False
                )
        if keys and keys[0] in self.defaults:
            where, value = self.defaults[keys[0]]
            return True, coerce(spec, value, source=f"conveyor.yaml {where}", from_string=False)
        return False, None

    def check_all_used(
        self, known: set[str], *, include_config: bool, fixed: Mapping[str, str] | None = None
    ) -> None:
        """Reject override keys that match nothing. Project params are only checked when the
        project has one pipeline, since they may be meant for another one."""
        origins = [("-p", self.cli)]
        if include_config:
            origins.append(("conveyor.yaml params", self.config))
        for origin, keys in origins:
            for key in keys:
                if key not in self.used and key not in known and fixed and key in fixed:
                    raise UsageError(
                        f"{origin}: param '{key}' is set in pipeline code at {fixed[key]} and "
                        "cannot be overridden",
                        hint="make it an argument of the @pipeline function to override it",
                    )
                if key not in self.used and key not in known:
                    raise ConfigError(
                        f"{origin}: '{key}' is not a param of this pipeline or its steps",
                        hint=did_you_mean(key, known) or f"known params: {sorted(known)}",
                    )


def pipeline_params(pipe: Pipeline, sources: ParamSources) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in pipe.params:
        found, value = sources.lookup(spec, [spec.name])
        if not found:
            if spec.required:
                raise UsageError(
                    f"pipeline '{pipe.name}' needs param '{spec.name}' (at {pipe.location})",
                    hint=f"give it with -p {spec.name}=VALUE or under params: in conveyor.yaml",
                )
            value = spec.default
        values[spec.name] = value
    return values


def step_params(graph: PipelineGraph, sources: ParamSources) -> dict[str, dict[str, Any]]:
    """Param values of every invocation, keyed by invocation name then argument name."""
    result: dict[str, dict[str, Any]] = {}
    for inv in graph.invocations:
        values: dict[str, Any] = {}
        for spec in inv.step.params:
            if spec.name in inv.inputs:
                continue
            qualified = f"{inv.name}.{spec.name}"
            if spec.name in inv.literals:
                if qualified in sources.cli or qualified in sources.config:
                    raise UsageError(
                        f"param '{qualified}' is set in pipeline code at {inv.call_site} and "
                        "cannot be overridden",
                        hint="make it an argument of the @pipeline function to override it",
                    )
                values[spec.name] = inv.literals[spec.name]
            else:
                found, value = sources.lookup(spec, [qualified, spec.name])
                if not found:
                    if spec.required:
                        raise DefinitionError(
                            f"step '{inv.name}' needs a value for '{spec.name}' "
                            f"(called at {inv.call_site})",
                            hint=f"pass it in the pipeline, or set params: {{{qualified}: ...}}",
                        )
                    value = spec.default
                values[spec.name] = value
            check_jsonable(spec.name, values[spec.name], f"step '{inv.name}'")
        result[inv.name] = values
    return result


def known_keys(pipe: Pipeline | None, graph: PipelineGraph) -> set[str]:
    keys = {p.name for p in pipe.params} if pipe else set()
    for inv in graph.invocations:
        for spec in inv.step.params:
            if spec.name not in inv.inputs and spec.name not in inv.literals:
                keys.add(spec.name)
                keys.add(f"{inv.name}.{spec.name}")
    return keys


def fixed_keys(graph: PipelineGraph) -> dict[str, str]:
    """Step arguments bound to values in pipeline code, with where that happens."""
    fixed: dict[str, str] = {}
    for inv in graph.invocations:
        for name in inv.literals:
            fixed.setdefault(name, inv.call_site)
            fixed[f"{inv.name}.{name}"] = inv.call_site
    return fixed
