"""The metadata schema: refused when it does not match the code; upgraded without losing rows."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from conveyor.store import db
from helpers import conveyor, open_and_run

PIPELINE = """
from conveyor import pipeline, step

@step
def one(x: int = 1) -> int:
    return x + 1

@pipeline
def main():
    one()
"""


def _downgrade_to_first_revision(root: Path, url: str | None) -> None:
    """Make the project's database look like one written by the first release."""
    from alembic import command

    engine = db.create_engine(url or "sqlite:///.conveyor/conveyor.db", root)
    try:
        with engine.begin() as conn:
            command.downgrade(db._alembic_config(conn), "0001")
    finally:
        engine.dispose()


def test_old_schema_is_refused_with_hint_then_upgrade_keeps_rows(make_project, metadata_url):
    root = make_project({"pipelines/main.py": PIPELINE})
    first = open_and_run(root)
    assert first.status == "succeeded"
    _downgrade_to_first_revision(root, metadata_url)

    refused = conveyor("run", cwd=root)
    assert refused.returncode == 2
    assert "has schema 0001; this Conveyor needs" in refused.stderr
    assert "back up the database, then run 'conveyor db upgrade'" in refused.stderr
    assert "Traceback" not in refused.stderr

    status = conveyor("db", "status", "--json", cwd=root, check=True)
    assert '"up_to_date": false' in status.stdout

    upgraded = conveyor("db", "upgrade", cwd=root, check=True)
    assert f"0001 -> {db.SCHEMA_REVISION}" in upgraded.stdout

    shown = conveyor("runs", "show", first.run_id, "--json", cwd=root, check=True)
    assert first.run_id in shown.stdout and '"status": "succeeded"' in shown.stdout
    again = open_and_run(root)
    assert [s.status for s in again.steps] == ["cached"]


def test_newer_schema_is_refused(make_sqlite_project) -> None:
    root = make_sqlite_project({"pipelines/main.py": PIPELINE})
    open_and_run(root)
    engine = db.create_engine("sqlite:///.conveyor/conveyor.db", root)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    proc = conveyor("runs", "list", cwd=root)
    assert proc.returncode == 2
    assert "newer than this Conveyor" in proc.stderr


def test_foreign_database_is_not_touched(make_sqlite_project) -> None:
    root = make_sqlite_project({"pipelines/main.py": PIPELINE})
    engine = db.create_engine("sqlite:///.conveyor/conveyor.db", root)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    proc = conveyor("run", cwd=root)
    assert proc.returncode == 2
    assert "has tables but no Conveyor schema version" in proc.stderr


def test_migrations_produce_exactly_the_tables_the_code_uses(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from conveyor.store.tables import metadata

    assert db.head_revision() == db.SCHEMA_REVISION
    engine = db.create_engine(f"sqlite:///{tmp_path / 'm.db'}", tmp_path)
    db.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
