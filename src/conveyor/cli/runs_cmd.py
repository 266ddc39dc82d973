"""``conveyor runs list|show|compare``."""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli.output import console, emit_json, json_option, open_project_from, result


@click.group()
def runs() -> None:
    """List, show, compare and report runs."""


def _duration(run: Any) -> str:
    if run.ended_at is None:
        return "-"
    return f"{(run.ended_at - run.started_at).total_seconds():.1f} s"


def run_json(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": str(run.status),
        "started_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "git_commit": run.git_commit,
        "git_dirty": run.git_dirty,
        "git_diff_digest": run.git_diff_digest,
        "params": run.params,
        "environment": run.environment,
        "error": run.error,
        "reproduces": run.reproduces,
    }


@runs.command("list")
@click.option("--pipeline", help="Only runs of this pipeline.")
@click.option(
    "--status",
    type=click.Choice(["running", "succeeded", "failed", "cancelled"]),
    help="Only runs with this status.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@json_option
@click.pass_context
def list_cmd(
    ctx: click.Context, pipeline: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """List recent runs, newest first."""
    from conveyor.engine.lease import reap
    from conveyor.store import queries

    project = open_project_from(ctx)
    reap(project.metadata, ttl_s=project.config.heartbeat_seconds * 6)
    found = queries.list_runs(project.metadata, limit=limit, pipeline=pipeline, status=status)
    if as_json:
        emit_json([run_json(r) for r in found])
        return
    if not found:
        result("no runs yet; start one with 'conveyor run'")
        return
    from rich.table import Table

    table = Table(box=None)
    for col in ("run", "pipeline", "status", "started (UTC)", "duration", "commit"):
        table.add_column(col)
    colors = {"succeeded": "green", "failed": "red", "running": "yellow", "cancelled": "magenta"}
    for r in found:
        commit = (r.git_commit or "-")[:8] + ("+dirty" if r.git_dirty else "")
        table.add_row(
            r.id,
            r.pipeline,
            f"[{colors.get(r.status, 'white')}]{r.status}[/]",
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _duration(r),
            commit,
        )
    console().print(table)


@runs.command("show")
@click.argument("run_ref", metavar="RUN")
@click.option("--logs", "logs_of", metavar="STEP", help="Print the captured logs of STEP.")
@json_option
@click.pass_context
def show(ctx: click.Context, run_ref: str, logs_of: str | None, as_json: bool) -> None:
    """Show a run: its steps, outputs, params, metrics and errors.

    RUN is a run id, a unique prefix of one, 'latest' or 'latest~N'.
    """
    from conveyor.engine.lease import reap
    from conveyor.errors import NotFoundError
    from conveyor.store import queries

    project = open_project_from(ctx)
    reap(project.metadata, ttl_s=project.config.heartbeat_seconds * 6)
    run = queries.get_run(project.metadata, run_ref)
    steps = queries.step_runs(project.metadata, run.id)
    if logs_of is not None:
        step = next((s for s in steps if s.name == logs_of), None)
        if step is None:
            raise NotFoundError(
                f"run {run.id} has no step '{logs_of}'", hint=f"steps: {[s.name for s in steps]}"
            )
        text = project.artifacts.load_text(step.logs_digest) if step.logs_digest else ""
        click.echo(text, nl=False)
        return
    metrics = queries.run_metrics(project.metadata, run.id)
    sparams = queries.step_params(project.metadata, run.id)
    checks = queries.check_results(project.metadata, run.id)
    from rich.markup import escape

    if as_json:
        data = run_json(run)
        data["metrics"] = metrics
        data["checks"] = checks
        data["tags"] = queries.run_tags(project.metadata, run.id)
        data["steps"] = [
            {
                "name": s.name,
                "status": str(s.status),
                "duration_s": s.duration_s,
                "cache_key": s.cache_key,
                "inputs": s.inputs,
                "outputs": s.outputs,
                "params": sparams.get(s.name, {}),
                "error": s.error,
                "cached_from": s.cached_from,
            }
            for s in steps
        ]
        emit_json(data)
        return
    out = console()
    colors = {"succeeded": "green", "cached": "cyan", "failed": "red", "skipped": "yellow"}
    out.print(
        f"[bold]run {run.id}[/]  pipeline {run.pipeline}  "
        f"[{colors.get(run.status, 'white')}]{run.status}[/]"
    )
    out.print(f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, took {_duration(run)}")
    commit = run.git_commit or "(not a git repository)"
    out.print(
        f"commit {commit}"
        + (
            f" with uncommitted changes (diff {run.git_diff_digest[:12]})"
            if run.git_dirty and run.git_diff_digest
            else ""
        )
    )
    if run.params:
        out.print("params " + ", ".join(f"{k}={v!r}" for k, v in sorted(run.params.items())))
    if run.error:
        out.print(f"[red]error: {run.error}[/]")
    out.print()
    for s in steps:
        dur = f"{s.duration_s:.2f} s" if s.duration_s else ""
        out.print(f"  [{colors.get(s.status, 'white')}]{s.status:<9}[/] {s.name:<24} {dur}")
        for name, digest in s.outputs.items():
            out.print(f"      -> {name} {digest[:12]}")
        if s.error:
            out.print()
            out.print(s.error.rstrip(), style="red", markup=False, highlight=False)
            out.print()
    if metrics:
        out.print()
        out.print("metrics " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items())))
    if checks:
        failed = [c for c in checks if not c["passed"]]
        out.print()
        out.print(f"checks: {len(checks) - len(failed)} passed, {len(failed)} failed")
        for c in failed:
            style = "red" if c["severity"] == "error" else "yellow"
            text = escape(f"{c['step']}: {c['name']}: {c['message']}")
            out.print(f"  [{style}]x[/] {text}")


@runs.command("compare")
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also show params and metrics that are equal in every run.",
)
@json_option
@click.pass_context
def compare(ctx: click.Context, run_refs: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    """Compare params and metrics of runs side by side; differing values are highlighted."""
    from conveyor.errors import UsageError
    from conveyor.store import queries

    if len(run_refs) < 2:
        raise UsageError(
            "give at least two runs to compare", hint="e.g. 'conveyor runs compare latest latest~1'"
        )
    project = open_project_from(ctx)
    found = [queries.get_run(project.metadata, ref) for ref in run_refs]
    rows: dict[str, list[Any]] = {}
    for i, r in enumerate(found):
        flat = {f"param {k}": v for k, v in r.params.items()}
        for step, values in queries.step_params(project.metadata, r.id).items():
            flat.update({f"param {step}.{k}": v for k, v in values.items()})
        flat.update(
            {f"metric {k}": v for k, v in queries.run_metrics(project.metadata, r.id).items()}
        )
        for key, value in flat.items():
            rows.setdefault(key, [None] * len(found))[i] = value
    differing = {k for k, vals in rows.items() if len({repr(v) for v in vals}) > 1}
    if as_json:
        emit_json(
            {
                "runs": [r.id for r in found],
                "rows": [
                    {"key": k, "values": v, "differs": k in differing}
                    for k, v in sorted(rows.items())
                ],
            }
        )
        return
    from rich.table import Table

    table = Table(box=None)
    table.add_column("")
    for r in found:
        table.add_column(r.id)
    for key in sorted(rows):
        if key not in differing and not show_all:
            continue
        style = "bold yellow" if key in differing else ""
        cells = [
            "-" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
            for v in rows[key]
        ]
        table.add_row(key, *cells, style=style)
    if not table.rows:
        result("params and metrics are equal in all runs (use --all to list them)")
        return
    console().print(table)


from conveyor.cli.report_cmd import report  # noqa: E402 - registered after the group exists

runs.add_command(report)
