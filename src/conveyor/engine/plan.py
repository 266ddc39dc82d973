"""Planning a run: trace the pipeline, resolve every param, refuse bad values before running."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.config import config_value
from conveyor.core import context
from conveyor.core.params import (
    ParamSources,
    fixed_keys,
    is_artifact_ref,
    known_keys,
    pipeline_params,
    step_params,
)
from conveyor.core.pipeline import Pipeline, PipelineGraph
from conveyor.core.records import ArtifactInfo
from conveyor.engine.project import CmdPipeline, Project
from conveyor.errors import NotFoundError, UsageError


@dataclass(slots=True)
class Plan:
    pipeline: Pipeline | CmdPipeline
    graph: PipelineGraph
    params: dict[str, Any]
    step_params: dict[str, dict[str, Any]]
    # Artifacts named by ArtifactRef params, by step, resolved to their records.
    refs: dict[str, dict[str, ArtifactInfo]] = field(default_factory=dict)


def plan_run(project: Project, options: Any) -> Plan:
    """Trace the pipeline with resolved params; nothing is written."""
    pipe = project.pipeline(options.pipeline)
    sources = ParamSources(project.config.params, options.params)
    values = pipeline_params(pipe, sources) if isinstance(pipe, Pipeline) else {}
    graph = pipe.trace(values)
    sources.defaults = config_defaults(project, graph)
    sparams = step_params(graph, sources)
    sources.check_all_used(
        known_keys(pipe if isinstance(pipe, Pipeline) else None, graph),
        include_config=len(project.config.pipelines) == 1,
        fixed=fixed_keys(graph),
    )
    plan = Plan(pipeline=pipe, graph=graph, params=values, step_params=sparams)
    resolve_refs(project, plan)
    for inv in graph.invocations:
        if inv.step.check_params is not None:
            # Checked as the step would see them, with the project as its root.
            token = context.enter(
                context.StepContext(step=inv.name, run_id="", root=str(project.root))
            )
            try:
                inv.step.check_params(plan.step_params[inv.name])
            finally:
                context.leave(token)
    return plan


def config_defaults(project: Project, graph: PipelineGraph) -> dict[str, tuple[str, Any]]:
    """Param defaults that steps take from the project file, keyed ``step.param``."""
    found: dict[str, tuple[str, Any]] = {}
    for inv in graph.invocations:
        for param, dotted in inv.step.defaults_from.items():
            present, value = config_value(project.config, dotted)
            if present:
                found[f"{inv.name}.{param}"] = (dotted, value)
    return found


def resolve_refs(project: Project, plan: Plan) -> None:
    """Replace ArtifactRef params (``latest:train``, a digest prefix) by full digests, so the
    cache key names the exact artifact, and keep their records for loading in the step."""
    from conveyor.engine.lineage import resolve
    from conveyor.store import queries

    for inv in plan.graph.invocations:
        for spec in inv.step.params:
            value = plan.step_params[inv.name].get(spec.name)
            if not is_artifact_ref(spec.annotation) or not value:
                continue
            try:
                digest, run_id = resolve(project.metadata, str(value))
            except NotFoundError as exc:
                raise UsageError(
                    f"param '{inv.name}.{spec.name}': {exc.message}",
                    hint=exc.hint or "name an artifact as RUN:STEP or a digest prefix",
                ) from None
            if digest is None:
                raise UsageError(
                    f"param '{inv.name}.{spec.name}' names run {run_id}, not an artifact",
                    hint=f"name one of its outputs, e.g. {value}:STEP",
                )
            plan.step_params[inv.name][spec.name] = digest
            info = queries.find_artifact(project.metadata, digest)
            plan.refs.setdefault(inv.name, {})[digest] = info
