"""``conveyor model``: register model versions, list and show them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from conveyor.cli.output import (
    console,
    emit_json,
    json_option,
    open_project_from,
    parse_pairs,
    result,
)

if TYPE_CHECKING:
    from conveyor.engine.project import Project
    from conveyor.registry.versions import ModelVersion


@click.group()
def model() -> None:
    """Register, list, show, package, validate and export model versions."""


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
        tags=parse_pairs(tags, "--tag"),
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


@model.command("package")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option(
    "--golden",
    "golden_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rows (CSV or Parquet) for the golden predictions, when the run has no "
    "evaluate_model/validate_model step whose data to take.",
)
@click.option(
    "--golden-rows",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="How many evaluation rows become golden inputs.",
)
@json_option
@click.pass_context
def package(
    ctx: click.Context, ref: str, golden_path: Path | None, golden_rows: int, as_json: bool
) -> None:
    """Build the immutable release package of a model version (digest-addressed): model,
    MLmodel manifest with signature, requirements lock, golden predictions, evidence."""
    from conveyor.registry.package import build_package
    from conveyor.registry.versions import resolve_version

    project = open_project_from(ctx)
    golden = None
    if golden_path is not None:
        from conveyor.checks.datasets import read_table

        golden = read_table(golden_path)
    info = build_package(
        project, resolve_version(project.metadata, ref), golden_rows=golden_rows, golden=golden
    )
    if as_json:
        emit_json(info.to_json())
    else:
        result(
            f"packaged {info.ref}: {info.digest} ({len(info.files)} files, "
            f"{info.golden_rows} golden rows)"
        )


@model.command("export")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mlflow"]),
    default="mlflow",
    show_default=True,
    help="The format to export to.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write (must not exist, or be empty).",
)
@click.option(
    "--serialization",
    type=click.Choice(["skops", "pickle"]),
    default="skops",
    show_default=True,
    help="How the model file is written: skops (MLflow 3.9+) or pickle (older MLflow).",
)
@click.pass_context
def export(
    ctx: click.Context,
    ref: str,
    fmt: str,
    output: Path,
    serialization: Literal["skops", "pickle"],
) -> None:
    """Export a packaged model version as a directory MLflow loads (mlflow.pyfunc.load_model)."""
    import shutil

    from conveyor.registry.mlflow_export import export_mlflow
    from conveyor.registry.package import open_package

    project = open_project_from(ctx)
    mv = _packaged(project, ref)
    directory = open_package(project, mv)
    try:
        export_mlflow(
            directory,
            output,
            serialization=serialization,
            trusted_types=project.config.trust.skops_types,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result(f"exported {mv.ref} to {output} ({fmt}, {serialization})")


def _packaged(project: Project, ref: str) -> ModelVersion:
    from conveyor.errors import UsageError
    from conveyor.registry.versions import resolve_version

    mv = resolve_version(project.metadata, ref)
    if not mv.package_digest:
        raise UsageError(
            f"{mv.ref} has no package yet", hint=f"run 'conveyor model package {mv.ref}'"
        )
    return mv


@model.command("validate")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option(
    "--venv",
    is_flag=True,
    help="Load it in a fresh virtual environment built from the package's lock.",
)
@click.option(
    "--python",
    "python_version",
    metavar="VERSION",
    help="Python version for --venv (e.g. 3.11); default: this interpreter's.",
)
@click.option(
    "--tolerance",
    type=float,
    default=1e-9,
    show_default=True,
    help="Largest absolute difference allowed between golden and reproduced scores.",
)
@click.option(
    "--onnx",
    is_flag=True,
    help="Also compile to ONNX and prove it equivalent on the golden and evaluation "
    "rows; only then is the ONNX file stored for serving.",
)
@json_option
@click.pass_context
def validate(
    ctx: click.Context,
    ref: str,
    venv: bool,
    python_version: str | None,
    tolerance: float,
    onnx: bool,
    as_json: bool,
) -> None:
    """Infra validation (a gate): load the package in a fresh process and reproduce its golden
    predictions; exits 1 naming the missing package, the differing version or the rows."""
    from conveyor.errors import EXIT_FAILED
    from conveyor.registry.infra import validate_package

    project = open_project_from(ctx)
    mv = _packaged(project, ref)
    report = validate_package(project, mv, venv=venv, python=python_version, tolerance=tolerance)
    data, text, passed = report.to_json(), report.to_text(), report.passed
    if onnx:
        from conveyor.registry.onnx_gate import compile_and_prove

        outcome = compile_and_prove(project, mv)
        passed = passed and outcome.passed
        data["onnx"] = {
            "passed": outcome.passed,
            "digest": outcome.onnx_digest,
            "results": [
                {"name": r.name, "passed": r.passed, "message": r.message, "metrics": r.metrics}
                for r in outcome.results
            ],
        }
        data["passed"] = passed
        verdict = (
            f"ONNX may serve it ({outcome.onnx_digest[:12]})"
            if outcome.onnx_digest
            else "ONNX may not serve it"
        )
        lines = [
            f"  {'ok  ' if r.passed else 'FAIL'} {r.name}: {r.message}" for r in outcome.results
        ]
        text = "\n".join([text, f"onnx: {verdict}", *lines])
    if as_json:
        emit_json(data)
    else:
        click.echo(text)
    if not passed:
        ctx.exit(EXIT_FAILED)
