"""``conveyor reproduce``."""

from __future__ import annotations

import sys

import click

from conveyor.cli.output import emit_json, json_option, open_project_from, result, status
from conveyor.errors import EXIT_FAILED


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--keep", is_flag=True, help="Keep the temporary workspace for inspection.")
@json_option
@click.pass_context
def reproduce(ctx: click.Context, run_ref: str, keep: bool, as_json: bool) -> None:
    """Re-execute RUN without cache from its recorded commit and params, and compare digests.

    The run's commit is checked out in a fresh git worktree (with the run's uncommitted diff
    applied, if it had one) and executed there. Prints "reproduced bit for bit" when every
    artifact matches, otherwise the first step and output that diverge (exit code 1).
    """
    from conveyor.engine.reproduce import reproduce as do_reproduce

    project = open_project_from(ctx)
    status(f"reproducing run {run_ref} in a fresh workspace (no cache)...")
    report = do_reproduce(project, run_ref, keep=keep, stream=sys.stderr)
    for note in report.notes:
        status(f"note: {note}")
    if as_json:
        emit_json(report.to_json())
    elif report.error:
        result(f"run {report.original}: {report.error}", fg="red")
    elif report.divergence is None:
        result(
            f"run {report.original} reproduced bit for bit as {report.reproduced} "
            f"({report.compared} artifacts compared)",
            fg="green",
        )
    else:
        d = report.divergence
        result(
            f"run {report.original} diverges from {report.reproduced} at step '{d.step}', "
            f"output '{d.output}': {(d.original or '-')[:12]} != "
            f"{(d.reproduced or 'missing')[:12]} ({report.compared} artifacts matched "
            "before it)",
            fg="red",
        )
    if not report.identical:
        ctx.exit(EXIT_FAILED)
