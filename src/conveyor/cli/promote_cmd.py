"""``conveyor promote | approve | reject | rollback | history | replay``: moving model
versions through the environments, and replaying logged traffic against a candidate."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from conveyor.cli.output import emit_json, json_option, open_project_from, result, status


def _act(ctx: click.Context, as_json: bool, action: Callable[[Any], Any]) -> Any:
    """Run ``action(controller)`` as the current actor, print the promotion it returns (a
    line, or JSON with its events), and close the project."""
    from conveyor.deploy.controller import Controller
    from conveyor.deploy.identity import current_actor

    project = open_project_from(ctx)
    try:
        actor = current_actor(project.metadata, project.config.access, os.environ)
        controller = Controller(project, actor, say=status)
        promotion = action(controller)
        if as_json:
            emit_json(_promotion_json(controller.delivery, promotion))
        else:
            result(
                f"promotion #{promotion.id}: {promotion.ref} -> {promotion.environment}: "
                f"{promotion.status.replace('_', ' ')}"
            )
        return promotion
    finally:
        project.close()


def _promotion_json(delivery: Any, promotion: Any) -> dict[str, Any]:
    return {**promotion.to_json(), "events": [e.to_json() for e in delivery.events(promotion.id)]}


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
    _act(ctx, as_json, lambda controller: controller.promote(ref, env))


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
    _act(ctx, as_json, lambda controller: controller.approve(promotion_id, comment))


@click.command()
@click.argument("promotion_id", metavar="PROMOTION", type=int)
@click.option("--reason", default="", help="Why it is rejected; kept with the event.")
@json_option
@click.pass_context
def reject(ctx: click.Context, promotion_id: int, reason: str, as_json: bool) -> None:
    """Reject promotion PROMOTION (awaiting approval); the environment is unchanged."""
    _act(ctx, as_json, lambda controller: controller.reject(promotion_id, reason))


@click.command()
@click.argument("env")
@json_option
@click.pass_context
def rollback(ctx: click.Context, env: str, as_json: bool) -> None:
    """Return ENV to the version live before the current one, at once."""
    promotion = _act(ctx, as_json, lambda controller: controller.rollback(env))
    status(f"{env} rolled back to {promotion.ref}")


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
            emit_json([_promotion_json(delivery, p) for p in promotions])
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
    from conveyor.registry.package import extract_package
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
        package = extract_package(project, mv)
        try:
            candidate = ServedModel.from_package(package, tuple(project.config.trust.skops_types))
            report = run_replay(project.artifacts_url, source, candidate, gate)
        finally:
            shutil.rmtree(package.directory, ignore_errors=True)
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
