"""``conveyor db``."""

from __future__ import annotations

import click

from conveyor.cli.output import emit_json, json_option, result, status


@click.group()
def db() -> None:
    """Manage the metadata database schema."""


def _engine(ctx: click.Context):  # type: ignore[no-untyped-def]
    from conveyor.config import CONFIG_NAME, find_project_root, load_config
    from conveyor.store import db as dbmod

    root_obj = ctx.find_root().obj or {}
    from pathlib import Path

    root = find_project_root(root_obj.get("project") or Path.cwd())
    config = load_config(root / CONFIG_NAME)
    return dbmod.create_engine(config.stores.metadata, root)


@db.command()
@json_option
@click.pass_context
def upgrade(ctx: click.Context, as_json: bool) -> None:
    """Migrate the metadata database to the schema of this Conveyor. Back it up first."""
    from conveyor.store import db as dbmod

    engine = _engine(ctx)
    before, after = dbmod.upgrade(engine)
    if as_json:
        emit_json({"from": before, "to": after, "changed": before != after})
    elif before == after:
        result(f"the database is already at schema {after}")
    else:
        status(f"upgraded {engine.url.render_as_string(hide_password=True)}")
        result(f"schema {before or '(empty)'} -> {after}")


@db.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the database URL, its schema revision and the one this Conveyor needs."""
    from conveyor.store import db as dbmod

    engine = _engine(ctx)
    rev, empty = dbmod.current_revision(engine)
    data = {
        "url": engine.url.render_as_string(hide_password=True),
        "revision": rev,
        "required": dbmod.SCHEMA_REVISION,
        "empty": empty,
        "up_to_date": rev == dbmod.SCHEMA_REVISION,
    }
    if as_json:
        emit_json(data)
        return
    result(f"database  {data['url']}")
    result(
        f"schema    {rev or '(none)'}; this Conveyor needs {dbmod.SCHEMA_REVISION}"
        + ("" if data["up_to_date"] else " -> run 'conveyor db upgrade' after a backup")
    )
