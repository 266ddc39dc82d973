"""Connecting to the metadata database and keeping its schema in step with the code.

An empty database is created at the current schema. A database at another revision is
refused with a hint: back up, then ``conveyor db upgrade``. Nothing migrates implicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from conveyor.errors import ConfigError, SchemaMismatchError

SCHEMA_REVISION = "0004"
MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str, root: Path) -> str:
    """Resolve a relative SQLite path against the project root; pick the psycopg driver."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        raw = url.removeprefix("sqlite:///")
        path = Path(raw)
        if not path.is_absolute():
            path = root / path
        return f"sqlite:///{path}"
    return url


def create_engine(url: str, root: Path) -> sa.Engine:
    full = normalize_url(url, root)
    if full.startswith("sqlite"):
        if full != "sqlite:///:memory:":
            Path(full.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(full, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return sa.create_engine(full, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the metadata URL needs the database driver '{exc.name}', which is not installed",
            hint="pip install 'conveyor-ml[postgres]'",
        ) from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"invalid metadata URL '{url}': {exc}") from None


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transactions into our own hands (see _sqlite_begin) and make concurrent writers wait.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # Writers (engines with conveyor_write=True) take the write lock up front with BEGIN
    # IMMEDIATE, so two processes never deadlock upgrading a read lock (which SQLite reports
    # at once as "database is locked"). Reads run in autocommit mode and never block.
    if conn.get_execution_options().get("conveyor_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def current_revision(engine: sa.Engine) -> tuple[str | None, bool]:
    """(revision, empty): the stamped Alembic revision, and whether the database has no tables."""
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        if "alembic_version" not in names:
            return None, not names
        row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
        return (row[0] if row else None), False


def check_schema(engine: sa.Engine, *, create: bool = True) -> None:
    rev, empty = current_revision(engine)
    if rev == SCHEMA_REVISION:
        return
    where = _describe(engine)
    if rev is None and empty and create:
        try:
            upgrade(engine)
        except sa.exc.DBAPIError:
            # Another process created the schema at the same moment; accept its work.
            if current_revision(engine)[0] != SCHEMA_REVISION:
                raise
        return
    if rev is None:
        raise SchemaMismatchError(
            f"the metadata database {where} has tables but no Conveyor schema version",
            hint="point stores.metadata at a database of its own",
        )
    if rev > SCHEMA_REVISION:
        raise SchemaMismatchError(
            f"the metadata database {where} has schema {rev}, newer than this Conveyor "
            f"({SCHEMA_REVISION})",
            hint="upgrade Conveyor: pip install -U conveyor-ml",
        )
    raise SchemaMismatchError(
        f"the metadata database {where} has schema {rev}; this Conveyor needs {SCHEMA_REVISION}",
        hint="back up the database, then run 'conveyor db upgrade'",
    )


def _describe(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _alembic_config(conn: sa.Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate to ``revision``; returns (from, to)."""
    from alembic import command

    before, _ = current_revision(engine)
    with engine.execution_options(conveyor_write=True).begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    after, _ = current_revision(engine)
    return before, after or ""


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    return str(head)
