"""``conveyor token | whoami | audit``: API tokens, the current actor and the audit log."""

from __future__ import annotations

import os

import click

from conveyor.cli.output import emit_json, json_option, open_project_from, result


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
