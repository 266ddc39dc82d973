"""``conveyor artifacts show``."""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli.output import console, emit_json, json_option, open_project_from


@click.group()
def artifacts() -> None:
    """Inspect stored artifacts."""


def _preview(value: Any) -> str:
    kind = type(value).__name__
    if kind == "DataFrame":
        return str(value.head(10))
    if kind == "ndarray":
        return f"array shape={value.shape} dtype={value.dtype}\n{value!r}"[:2000]
    text = repr(value)
    return text if len(text) <= 2000 else text[:2000] + " ..."


@artifacts.command("show")
@click.argument("ref")
@click.option(
    "--preview/--no-preview",
    default=True,
    show_default=True,
    help="Load the value (after verifying its digest) and print a preview.",
)
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, preview: bool, as_json: bool) -> None:
    """Show an artifact: digest, type, size, producer and consumers, and a preview.

    REF is a digest prefix (4+ hex characters) or RUN:STEP[.OUTPUT], e.g. 'latest:evaluate'.
    """
    from conveyor.engine import lineage as lin
    from conveyor.errors import UsageError
    from conveyor.store import queries
    from conveyor.store import tables as t

    project = open_project_from(ctx)
    store = project.metadata
    digest, run_id = lin.resolve(store, ref)
    if digest is None:
        raise UsageError(
            f"'{ref}' names run {run_id}, not an artifact",
            hint=f"name one of its outputs, e.g. {ref}:STEP",
        )
    info = queries.find_artifact(store, digest)
    produced = queries.artifact_edges(store, digest, t.step_outputs)
    consumed = queries.artifact_edges(store, digest, t.step_inputs)
    verified = project.artifacts.blobs.verify(digest)
    data = {
        "digest": info.digest,
        "type": info.type_name,
        "materializer": info.materializer,
        "size": info.size,
        "meta": info.meta,
        "verified": verified,
        "produced_by": [
            {"run_id": e["run_id"], "step": e["name"], "output": e["port"], "status": e["status"]}
            for e in produced
        ],
        "used_by": [
            {"run_id": e["run_id"], "step": e["name"], "input": e["port"]} for e in consumed
        ],
    }
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]artifact {info.digest}[/]")
    out.print(
        f"type {info.type_name}, stored as {info.materializer}, {info.size} bytes, "
        + ("[green]digest verified[/]" if verified else "[red]blob missing or corrupt[/]")
    )
    for k, v in sorted(info.meta.items()):
        out.print(f"  {k}: {v}", markup=False)
    for e in produced[:5]:
        out.print(f"produced by {e['name']}.{e['port']} in run {e['run_id']} ({e['status']})")
    out.print(f"used by {len(consumed)} step run(s)")
    if preview and verified:
        out.print()
        out.print(_preview(project.artifacts.load(info)), markup=False, highlight=False)
