"""``conveyor run``."""

from __future__ import annotations

import click

from conveyor.cli.output import (
    emit_json,
    json_option,
    open_project_from,
    parse_pairs,
    result,
    status,
)
from conveyor.errors import EXIT_FAILED


class LineReporter:
    """One progress line per step on stderr."""

    def __init__(self, explain: bool) -> None:
        self.explain = explain

    def run_started(self, run_id: str, pipeline: str, steps: int) -> None:
        status(f"run {run_id}: pipeline {pipeline}, {steps} steps", bold=True)

    def step_finished(self, outcome: object) -> None:
        from conveyor.core.records import StepStatus
        from conveyor.engine.run import StepOutcome

        assert isinstance(outcome, StepOutcome)
        name = outcome.name
        if outcome.status == StepStatus.CACHED:
            status(f"  {name:<24} cached", fg="cyan")
        elif outcome.status == StepStatus.SUCCEEDED:
            status(f"  {name:<24} ran in {outcome.duration_s:.2f} s", fg="green")
        elif outcome.status == StepStatus.FAILED:
            status(f"  {name:<24} failed after {outcome.duration_s:.2f} s", fg="red", bold=True)
            lines = (outcome.error or "").strip().splitlines()
            # A traceback ends with the exception; a gate lists every reason.
            shown = lines[-1:] if lines and lines[0].startswith("Traceback") else lines[:20]
            for line in shown:
                status(f"    {line}", fg="red")
        else:
            status(f"  {name:<24} skipped ({outcome.error})", fg="yellow")
        if self.explain and outcome.reasons:
            for reason in outcome.reasons:
                status(f"    because {reason}")

    def warning(self, message: str) -> None:
        status(f"warning: {message}", fg="yellow")


def parse_params(items: tuple[str, ...]) -> dict[str, str]:
    return parse_pairs(items, "-p", example="n_estimators=200")


@click.command()
@click.argument("pipeline", required=False)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a param (typed by its annotation). 'name' applies to every step "
    "argument of that name; 'step.name' to one step. Repeatable.",
)
@click.option("--no-cache", is_flag=True, help="Execute every step, ignoring cached results.")
@click.option(
    "--explain",
    is_flag=True,
    help="For each step that re-ran, print which part of its cache key changed.",
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Run independent steps in N worker processes (default: in-process).",
)
@click.option("--reproduces", hidden=True, help="Record that this run reproduces RUN.")
@json_option
@click.pass_context
def run(
    ctx: click.Context,
    pipeline: str | None,
    params: tuple[str, ...],
    no_cache: bool,
    explain: bool,
    workers: int | None,
    reproduces: str | None,
    as_json: bool,
) -> None:
    """Run PIPELINE (optional when the project has one).

    Each step prints one line: cached, ran in N s, failed or skipped. A failed step fails the
    run (exit code 1); steps after it are skipped, and the next run reuses what succeeded.
    """
    from conveyor.core.records import RunStatus
    from conveyor.engine.run import RunOptions, outcome_json, run_pipeline

    project = open_project_from(ctx)
    options = RunOptions(
        pipeline=pipeline,
        params=parse_params(params),
        no_cache=no_cache,
        explain=explain,
        workers=workers,
        reproduces=reproduces,
    )
    outcome = run_pipeline(project, options, LineReporter(explain))
    cached = sum(1 for s in outcome.steps if s.status == "cached")
    ran = sum(1 for s in outcome.steps if s.status == "succeeded")
    if as_json:
        emit_json(outcome_json(outcome))
    else:
        result(outcome.run_id)
    if outcome.status != RunStatus.SUCCEEDED:
        status(
            f"run {outcome.run_id} failed; see 'conveyor runs show {outcome.run_id}'",
            fg="red",
            bold=True,
        )
        ctx.exit(EXIT_FAILED)
    status(f"run {outcome.run_id} succeeded: {ran} ran, {cached} cached", fg="green")
