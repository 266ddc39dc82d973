"""``conveyor status | deploy | stop``: the environments' serving processes and their state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from conveyor.cli.output import (
    console,
    emit_json,
    json_option,
    open_project_from,
    result,
    status,
)


@click.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Each environment's live version, health, URL, traffic split and last promotion."""
    from conveyor.deploy.controller import Controller
    from conveyor.deploy.identity import current_actor

    project = open_project_from(ctx)
    try:
        actor = current_actor(project.metadata, project.config.access, os.environ)
        controller = Controller(project, actor, say=status)
        rows = [_env_status(controller, env) for env in project.config.environments]
        if as_json:
            emit_json(rows)
            return
        if not rows:
            result("no environments: add an environments: list to conveyor.yaml")
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        columns = ("environment", "policy", "live", "health", "url", "traffic", "last")
        for column in (*columns, "gates of the live version"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["environment"],
                row["promote"],
                row["live"] or "-",
                row["health"],
                row["url"] or "-",
                row["traffic"],
                row["last_promotion"] or "-",
                row["gates"] or "-",
            )
        console().print(table)
    finally:
        project.close()


def _gates_of(controller: Any, promotion_id: int | None) -> str | None:
    """The figures of the gates and rollout checks the live version passed."""
    from conveyor.core.checks import CheckResult
    from conveyor.deploy.gates import summarize

    if promotion_id is None:
        return None
    promotion = controller.delivery.get(promotion_id)
    if promotion.kind == "rollback":
        # a rollback passed no gates of its own: show those the version passed to go live
        earlier = [
            p
            for p in controller.delivery.promotions(promotion.environment, 200)
            if p.id < promotion.id
            and p.kind == "promote"
            and (p.model, p.version) == (promotion.model, promotion.version)
            and p.status in ("superseded", "rolled_back", "live")
        ]
        if not earlier:
            return None
        promotion_id = earlier[0].id
    checks = [
        CheckResult.from_json(doc)
        for event in controller.delivery.events(promotion_id)
        if event.kind in ("gates_passed", "live")
        for doc in event.evidence
    ]
    return summarize(checks) or None


def _env_status(controller: Any, env: Any) -> dict[str, Any]:
    from conveyor.deploy import local

    controller.recover(env.name)
    state = controller.delivery.env_state(env.name)
    deployed = local.deployment(controller.project.metadata, env.name)
    live = f"{state.model}:{state.live_version}" if state.live_version is not None else None
    if state.candidate_version is not None:
        share = state.traffic if state.mode == "canary" else 0
        traffic = (
            f"{state.live_version}: {100 - share}%, {state.candidate_version}: {share}% "
            f"({state.mode})"
        )
    else:
        traffic = f"{state.live_version}: 100%" if live else "-"
    if env.target.kind != "local":
        health = f"{env.target.kind} (rendered)"
    elif deployed is None or not deployed.running:
        health = "stopped"
    else:
        health = "healthy" if deployed.healthy else "unhealthy"
    last = controller.delivery.promotions(env.name, 1)
    return {
        "gates": _gates_of(controller, state.live_promotion),
        "environment": env.name,
        "promote": env.promote,
        "live": live,
        "candidate": state.candidate_version,
        "mode": state.mode,
        "health": health,
        "url": deployed.url if deployed and deployed.running else None,
        "traffic": traffic,
        "generation": state.generation,
        "last_promotion": (
            f"#{last[0].id} {last[0].ref} {last[0].status.replace('_', ' ')}" if last else None
        ),
        "deployment": deployed.to_json() if deployed else None,
    }


@click.command()
@click.argument("env")
@click.option(
    "--target",
    type=click.Choice(["local", "kubernetes"]),
    default=None,
    help="Where to deploy (default: the environment's target.kind).",
)
@click.option(
    "--render",
    "render_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --target kubernetes: write the manifests to this directory.",
)
@json_option
@click.pass_context
def deploy(
    ctx: click.Context, env: str, target: str | None, render_dir: Path | None, as_json: bool
) -> None:
    """Start ENV's serving process (local target), or render its Kubernetes manifests.

    The local process runs under a supervisor that restarts it if it dies, outlives this
    command, and follows the environment's desired state: promotions and rollbacks swap
    the version it serves without dropping a request. Stop it with 'conveyor stop ENV'.
    """
    from conveyor.deploy import local
    from conveyor.deploy.environments import environment
    from conveyor.deploy.identity import current_actor, record_audit, require
    from conveyor.errors import UsageError

    project = open_project_from(ctx)
    try:
        config = environment(project.config, env)
        actor = current_actor(project.metadata, project.config.access, os.environ)
        require(actor, "developer", f"deploy {env}")
        kind = target or config.target.kind
        if kind == "kubernetes":
            if render_dir is None:
                raise UsageError(
                    "--target kubernetes needs --render DIR",
                    hint="Conveyor writes the manifests; apply them with kubectl apply -f DIR",
                )
            paths = _render(project, config, render_dir)
            record_audit(project.metadata, actor.name, "deploy.render", env)
            if as_json:
                emit_json({"environment": env, "files": [str(p) for p in paths]})
            else:
                for path in paths:
                    result(str(path))
            return
        if render_dir is not None:
            raise UsageError("--render is for --target kubernetes")
        found = local.deployment(project.metadata, env)
        already = found is not None and found.running
        deployed = local.start(project, config, say=status)
        if not already:
            record_audit(project.metadata, actor.name, "deploy.start", env)
        if as_json:
            emit_json(deployed.to_json())
        else:
            live = deployed.observed.get("live", {}).get("version")
            what = f"version {live}" if live is not None else "nothing yet (promote a version)"
            result(
                f"{env} {'was already running' if already else 'is running'} on "
                f"{deployed.url}, serving {what}"
            )
    finally:
        project.close()


def _render(project: Any, config: Any, out_dir: Path) -> list[Path]:
    from conveyor.deploy.kubernetes import render_manifests, stores_secret_name
    from conveyor.deploy.state import Delivery
    from conveyor.errors import UsageError
    from conveyor.registry.versions import get_version

    state = Delivery(project.metadata).env_state(config.name)
    if state.live_version is None or state.model is None:
        raise UsageError(
            f"environment '{config.name}' has no live version to render",
            hint=f"promote one first: conveyor promote MODEL:VERSION --to {config.name}",
        )
    mv = get_version(project.metadata, state.model, state.live_version)
    if mv.package_digest is None:
        raise UsageError(f"{mv.ref} has no package", hint=f"conveyor model package {mv.ref}")
    paths = render_manifests(
        config,
        project=project.config.name,
        model=mv.name,
        version=mv.version,
        package_digest=mv.package_digest,
        out_dir=out_dir,
    )
    status(
        f"rendered {len(paths)} manifests for {mv.ref}; they read the stores from the Secret "
        f"'{stores_secret_name(project.config.name)}'"
    )
    return paths


@click.command()
@click.argument("env")
@json_option
@click.pass_context
def stop(ctx: click.Context, env: str, as_json: bool) -> None:
    """Stop ENV's serving process: requests in flight complete first."""
    from conveyor.deploy import local
    from conveyor.deploy.environments import environment
    from conveyor.deploy.identity import current_actor, record_audit, require

    project = open_project_from(ctx)
    try:
        environment(project.config, env)
        actor = current_actor(project.metadata, project.config.access, os.environ)
        require(actor, "developer", f"stop {env}")
        stopped = local.stop(project, env)
        if stopped:
            record_audit(project.metadata, actor.name, "deploy.stop", env)
        if as_json:
            emit_json({"environment": env, "stopped": stopped})
        else:
            result(f"{env} stopped" if stopped else f"{env} was not running")
    finally:
        project.close()
