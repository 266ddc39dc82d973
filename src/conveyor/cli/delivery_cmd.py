"""``conveyor promote | approve | reject | rollback | history | status | deploy | stop``."""

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


def _controller(ctx: click.Context) -> Any:
    from conveyor.deploy.controller import Controller
    from conveyor.deploy.identity import current_actor

    project = open_project_from(ctx)
    actor = current_actor(project.metadata, project.config.access, os.environ)
    return Controller(project, actor, say=status)


def _promotion_json(controller: Any, promotion: Any) -> dict[str, Any]:
    return {
        **promotion.to_json(),
        "events": [e.to_json() for e in controller.delivery.events(promotion.id)],
    }


def _print_promotion(controller: Any, promotion: Any, as_json: bool) -> None:
    if as_json:
        emit_json(_promotion_json(controller, promotion))
        return
    result(
        f"promotion #{promotion.id}: {promotion.ref} -> {promotion.environment}: "
        f"{promotion.status.replace('_', ' ')}"
    )


@click.command()
@click.argument("ref", metavar="MODEL:VERSION")
@click.option("--to", "env", required=True, help="The environment to promote the version to.")
@json_option
@click.pass_context
def promote(ctx: click.Context, ref: str, env: str, as_json: bool) -> None:
    """Promote model version MODEL:VERSION to environment --to.

    The version must have been live in the environment listed before. The environment's
    gates run first (data, model, infra, load, shadow); with promote: auto the version is
    then deployed by the environment's rollout (replace, canary or shadow); with approval or
    manual it waits for 'conveyor approve ID'. Exit 1 when a gate fails or a canary is
    rolled back, with every reason.
    """
    controller = _controller(ctx)
    try:
        promotion = controller.promote(ref, env)
        _print_promotion(controller, promotion, as_json)
    finally:
        controller.project.close()


@click.command()
@click.argument("promotion_id", metavar="PROMOTION", type=int)
@click.option("--comment", default="", help="Why it is approved; kept with the event.")
@json_option
@click.pass_context
def approve(ctx: click.Context, promotion_id: int, comment: str, as_json: bool) -> None:
    """Approve promotion PROMOTION (awaiting approval), then deploy it.

    Only the environment's approvers may approve; a manual environment (production) needs an
    approver who is not the requester.
    """
    controller = _controller(ctx)
    try:
        promotion = controller.approve(promotion_id, comment)
        _print_promotion(controller, promotion, as_json)
    finally:
        controller.project.close()


@click.command()
@click.argument("promotion_id", metavar="PROMOTION", type=int)
@click.option("--reason", default="", help="Why it is rejected; kept with the event.")
@json_option
@click.pass_context
def reject(ctx: click.Context, promotion_id: int, reason: str, as_json: bool) -> None:
    """Reject promotion PROMOTION (awaiting approval); the environment is unchanged."""
    controller = _controller(ctx)
    try:
        promotion = controller.reject(promotion_id, reason)
        _print_promotion(controller, promotion, as_json)
    finally:
        controller.project.close()


@click.command()
@click.argument("env")
@json_option
@click.pass_context
def rollback(ctx: click.Context, env: str, as_json: bool) -> None:
    """Return ENV to the version live before the current one, at once."""
    controller = _controller(ctx)
    try:
        promotion = controller.rollback(env)
        status(f"{env} rolled back to {promotion.ref}")
        _print_promotion(controller, promotion, as_json)
    finally:
        controller.project.close()


@click.command()
@click.argument("env")
@click.option("--limit", default=20, show_default=True, help="How many promotions to show.")
@json_option
@click.pass_context
def history(ctx: click.Context, env: str, limit: int, as_json: bool) -> None:
    """The promotions of ENV, newest first, with every event, actor and gate result."""
    from conveyor.deploy.environments import environment
    from conveyor.deploy.state import Delivery

    project = open_project_from(ctx)
    try:
        environment(project.config, env)
        delivery = Delivery(project.metadata)
        promotions = delivery.promotions(env, limit)
        if as_json:
            emit_json(
                [
                    {**p.to_json(), "events": [e.to_json() for e in delivery.events(p.id)]}
                    for p in promotions
                ]
            )
            return
        if not promotions:
            result(f"no promotions to {env} yet")
            return
        for p in promotions:
            result(
                f"#{p.id} {p.ref} ({p.kind}, {p.strategy}) {p.status.replace('_', ' ')} "
                f"- requested by {p.requested_by} at {p.requested_at:%Y-%m-%d %H:%M:%S}"
            )
            for e in delivery.events(p.id):
                passed = sum(1 for c in e.evidence if c.get("passed"))
                shown = f" [{passed}/{len(e.evidence)} checks passed]" if e.evidence else ""
                result(f"    {e.at:%H:%M:%S} {e.kind:<14} {e.actor:<12} {e.message}{shown}")
    finally:
        project.close()


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
    from conveyor.deploy.gates import from_evidence, summarize

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
        from_evidence(doc)
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


@click.group()
def token() -> None:
    """API tokens: the actor of a command is the token's user when CONVEYOR_TOKEN is set."""


@token.command("create")
@click.option("--user", default=None, help="The token's user (default: yourself; admins only).")
@click.pass_context
def token_create(ctx: click.Context, user: str | None) -> None:
    """Create a token and print it once (only its digest is stored)."""
    from conveyor.deploy.identity import create_token, current_actor

    project = open_project_from(ctx)
    try:
        actor = current_actor(project.metadata, project.config.access, os.environ)
        result(create_token(project.metadata, actor, user or actor.name))
    finally:
        project.close()


@token.command("revoke")
@click.option("--user", default=None, help="Whose tokens (default: yours; admins only).")
@click.pass_context
def token_revoke(ctx: click.Context, user: str | None) -> None:
    """Revoke every token of a user; commands using them are refused from then on."""
    from conveyor.deploy.identity import current_actor, revoke_tokens

    project = open_project_from(ctx)
    try:
        actor = current_actor(project.metadata, project.config.access, os.environ)
        who = user or actor.name
        count = revoke_tokens(project.metadata, actor, who)
        result(f"revoked {count} token{'' if count == 1 else 's'} of {who}")
    finally:
        project.close()


@click.command()
@json_option
@click.pass_context
def whoami(ctx: click.Context, as_json: bool) -> None:
    """The current actor, where the identity came from, and its roles."""
    from conveyor.deploy.identity import current_actor

    project = open_project_from(ctx)
    try:
        actor = current_actor(project.metadata, project.config.access, os.environ)
        if as_json:
            emit_json({"user": actor.name, "roles": sorted(actor.roles), "via": actor.via})
        else:
            result(f"{actor.describe()} via {actor.via}")
    finally:
        project.close()


@click.command()
@click.option("--limit", default=50, show_default=True, help="How many entries to show.")
@json_option
@click.pass_context
def audit(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The audit log: who did what to which environment, newest last."""
    from conveyor.deploy.identity import read_audit

    project = open_project_from(ctx)
    try:
        rows = read_audit(project.metadata, limit)
        if as_json:
            emit_json(rows)
            return
        for row in rows:
            result(
                f"{row['at'][:19]} {row['actor']:<12} {row['action']:<14} {row['outcome']:<12} "
                f"{row['subject']}"
            )
    finally:
        project.close()


@click.command()
@click.argument("ref", metavar="MODEL:VERSION")
@click.option(
    "--from", "source", required=True, help="The environment whose logged requests to replay."
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of rows that must agree (default: the source's next environment's "
    "shadow.min_agreement, else 0.95).",
)
@click.option(
    "--compare",
    type=click.Choice(["labels", "scores"]),
    default=None,
    help="Compare predicted labels (default) or every score within shadow.tolerance.",
)
@click.option(
    "--max-requests", type=int, default=None, help="Replay at most this many (newest) requests."
)
@json_option
@click.pass_context
def replay(
    ctx: click.Context,
    ref: str,
    source: str,
    min_agreement: float | None,
    compare: str | None,
    max_requests: int | None,
    as_json: bool,
) -> None:
    """Offline shadow: replay the requests logged in an environment against MODEL:VERSION.

    Reports how many of the candidate's answers agree with the ones the environment gave, and
    the candidate's latency, as Markdown (or --json). Nothing is deployed. Exit 1 when the
    agreement is below the limit or too few requests are logged.
    """
    import shutil

    from conveyor.config_delivery import ShadowGateConfig
    from conveyor.deploy.environments import environment
    from conveyor.deploy.replay import replay as run_replay
    from conveyor.errors import GateFailedError
    from conveyor.registry.package import open_package, read_package
    from conveyor.registry.versions import resolve_version
    from conveyor.serve.model import ServedModel

    project = open_project_from(ctx)
    try:
        environment(project.config, source)
        names = [e.name for e in project.config.environments]
        after = names.index(source) + 1
        gate = (
            project.config.environments[after].shadow if after < len(names) else ShadowGateConfig()
        )
        changes: dict[str, Any] = {"min_requests": 1}
        if min_agreement is not None:
            changes["min_agreement"] = min_agreement
        if compare is not None:
            changes["compare"] = compare
        if max_requests is not None:
            changes["max_requests"] = max_requests
        gate = gate.model_copy(update=changes)
        mv = resolve_version(project.metadata, ref)
        status(f"replaying the requests logged in {source} against {mv.ref}")
        directory = open_package(project, mv)
        try:
            candidate = ServedModel.from_package(
                read_package(directory), tuple(project.config.trust.skops_types)
            )
            report = run_replay(project.artifacts_url, source, candidate, gate)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if as_json:
            emit_json(report.to_json())
        else:
            result(report.to_markdown())
        if not report.passed:
            failed = [r for r in report.results if not r.passed]
            raise GateFailedError(
                f"the replay of {source}'s requests against {mv.ref} failed: "
                + "; ".join(r.message for r in failed[:3])
            )
    finally:
        project.close()
