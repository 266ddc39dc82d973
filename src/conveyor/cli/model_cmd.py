"""``conveyor model``: register model versions, list and show them."""

from __future__ import annotations

import click

from conveyor.cli.output import console, emit_json, json_option, open_project_from, result


@click.group()
def model() -> None:
    """Register, list, show and package model versions."""


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    from conveyor.errors import UsageError

    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {item}: expected KEY=VALUE")
        tags[key] = value
    return tags


@model.command("register")
@click.argument("run_ref", metavar="RUN")
@click.option("-n", "--name", help="Model name (default: model.name in conveyor.yaml).")
@click.option(
    "--step", default="train", show_default=True, help="The step whose output is the model."
)
@click.option("--output", help="The output of the step, when it has several.")
@click.option("-d", "--description", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag. Repeatable.")
@json_option
@click.pass_context
def register(
    ctx: click.Context,
    run_ref: str,
    name: str | None,
    step: str,
    output: str | None,
    description: str,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register the model of RUN as the next version of NAME (numbered by the database)."""
    import getpass

    from conveyor.errors import UsageError
    from conveyor.registry.versions import register_model

    project = open_project_from(ctx)
    name = name or project.config.model.name
    if not name:
        raise UsageError("which model name?", hint="pass --name or set model.name in conveyor.yaml")
    mv = register_model(
        project.metadata,
        name=name,
        run_ref=run_ref,
        step=step,
        output=output,
        description=description,
        tags=_pairs(tags),
        actor=getpass.getuser(),
    )
    if as_json:
        emit_json(mv.to_json())
    else:
        result(
            f"registered {mv.ref} from run {mv.run_id} ({mv.step}.{mv.output}, {mv.digest[:12]})"
        )


@model.command("list")
@click.argument("name", required=False)
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List registered model versions (of NAME, or of every model), newest first."""
    from conveyor.registry.versions import list_versions

    project = open_project_from(ctx)
    found = list_versions(project.metadata, name)
    if as_json:
        emit_json([mv.to_json() for mv in found])
        return
    if not found:
        result("no model is registered yet; see 'conveyor model register --help'")
        return
    from rich.table import Table

    table = Table(box=None)
    for col in ("model", "version", "run", "artifact", "package", "created (UTC)", "description"):
        table.add_column(col)
    for mv in found:
        table.add_row(
            mv.name,
            str(mv.version),
            mv.run_id,
            mv.digest[:12],
            (mv.package_digest or "-")[:12],
            f"{mv.created_at:%Y-%m-%d %H:%M}" if mv.created_at else "-",
            mv.description,
        )
    console().print(table)


@model.command("show")
@click.argument("ref", metavar="NAME[:VERSION]")
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a model version: its run, artifact, package, tags and the run's check results."""
    from conveyor.registry.versions import resolve_version
    from conveyor.store import queries

    project = open_project_from(ctx)
    mv = resolve_version(project.metadata, ref)
    checks = queries.check_results(project.metadata, mv.run_id)
    if as_json:
        emit_json({**mv.to_json(), "checks": checks})
        return
    out = console()
    out.print(f"[bold]{mv.ref}[/] from run {mv.run_id}, step {mv.step}.{mv.output}")
    out.print(f"model artifact {mv.digest}")
    out.print(f"package {mv.package_digest or '(not packaged yet: conveyor model package)'}")
    if mv.description:
        out.print(f"description: {mv.description}", markup=False)
    for key, value in sorted(mv.tags.items()):
        out.print(f"tag {key}={value}", markup=False)
    failed = [c for c in checks if not c["passed"]]
    out.print(f"checks of the run: {len(checks) - len(failed)} passed, {len(failed)} failed")
