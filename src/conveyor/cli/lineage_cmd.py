"""``conveyor lineage``."""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli.output import console, emit_json, json_option, open_project_from


def _add(tree: Any, node: Any, digest: str | None) -> None:
    label = f"[bold]{node.step}[/] (run {node.run_id}, {node.status})"
    branch = tree.add(label)
    if node.commit:
        dirty = " + uncommitted diff" if node.dirty else ""
        branch.add(f"code: commit {node.commit[:12]}{dirty}")
    else:
        branch.add("code: not in a git repository")
    if node.params:
        branch.add("params: " + ", ".join(f"{k}={v!r}" for k, v in sorted(node.params.items())))
    for path, file_digest in sorted(node.files.items()):
        branch.add(f"file: {path} ({file_digest[:12]})")
    if digest is None:
        for name, out in node.outputs.items():
            branch.add(f"output {name}: {out[:12]}")
    for child in node.upstream:
        sub = branch.add(f"input {', '.join(child.via)}")
        _add(sub, child, None)


@click.command()
@click.argument("ref")
@json_option
@click.pass_context
def lineage(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show the lineage of REF: upstream to source files, commit and params; downstream uses.

    REF is an artifact digest prefix, a run (id, prefix, 'latest', 'latest~N'), an output of
    a run as RUN:STEP or RUN:STEP.OUTPUT (e.g. 'latest:train'), or a registered model version
    NAME:VERSION (e.g. 'credit-risk:3').
    """
    from rich.tree import Tree

    from conveyor.engine import lineage as lin
    from conveyor.store import queries

    project = open_project_from(ctx)
    store = project.metadata
    digest, run_id = lin.resolve(store, ref)
    if run_id is not None:
        run = queries.get_run(store, run_id)
        steps = queries.step_runs(store, run_id)
        if as_json:
            emit_json(
                {
                    "run_id": run_id,
                    "pipeline": run.pipeline,
                    "commit": run.git_commit,
                    "dirty": run.git_dirty,
                    "params": run.params,
                    "steps": [
                        {
                            "name": s.name,
                            "status": str(s.status),
                            "inputs": s.inputs,
                            "outputs": s.outputs,
                            "files": (s.key_parts or {}).get("files", {}),
                        }
                        for s in steps
                    ],
                }
            )
            return
        tree = Tree(
            f"[bold]run {run_id}[/] pipeline {run.pipeline}, commit "
            f"{(run.git_commit or 'none')[:12]}{' +dirty' if run.git_dirty else ''}"
        )
        producers = {d: s.name for s in steps for d in s.outputs.values()}
        for s in steps:
            branch = tree.add(f"[bold]{s.name}[/] ({s.status})")
            for name, d in s.inputs.items():
                branch.add(f"<- {name} {d[:12]} from {producers.get(d, 'another run')}")
            for path, d in sorted((s.key_parts or {}).get("files", {}).items()):
                branch.add(f"<- file {path} ({d[:12]})")
            for name, d in s.outputs.items():
                branch.add(f"-> {name} {d[:12]}")
        console().print(tree)
        return
    assert digest is not None
    info = queries.find_artifact(store, digest)
    up = lin.upstream(store, digest)
    down = lin.downstream(store, digest)
    if as_json:
        emit_json(
            {
                "artifact": {
                    "digest": info.digest,
                    "materializer": info.materializer,
                    "type": info.type_name,
                    "size": info.size,
                },
                "upstream": up.to_json() if up else None,
                "downstream": down,
            }
        )
        return
    tree = Tree(f"[bold]artifact {digest[:12]}[/] {info.type_name} ({info.size} bytes)")
    produced = tree.add("produced by")
    if up is None:
        produced.add("(no recorded producer)")
    else:
        _add(produced, up, digest)
    used = tree.add(f"used by ({len(down)})")
    for use in down[:50]:
        indent = "  " * (int(use["depth"]) - 1)
        used.add(f"{indent}{use['step']} (run {use['run_id']}, input {use['input']})")
    if len(down) > 50:
        used.add(f"... {len(down) - 50} more (use --json)")
    console().print(tree)
