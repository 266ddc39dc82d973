"""Shared fixtures: project directories built inline, and the real PostgreSQL server."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import write_files

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("CONVEYOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class ProjectFactory:
    """Builds a project in a temp dir: ``make(pipeline_source, config_extra)``."""

    def __init__(self, tmp_path: Path, metadata_url: str | None) -> None:
        self.tmp_path = tmp_path
        self.metadata_url = metadata_url
        self.count = 0

    def __call__(
        self, files: dict[str, str], *, name: str = "proj", config: str | None = None
    ) -> Path:
        self.count += 1
        root = self.tmp_path / f"{name}{self.count}"
        cfg = config or textwrap.dedent("""
            name: test
            pipelines:
              main: pipelines/main.py:main
        """)
        if self.metadata_url and "stores:" not in cfg:
            cfg += f"stores:\n  metadata: {self.metadata_url}\n"
        write_files(root, {"conveyor.yaml": cfg, **files})
        return root


def _pg_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real server; dropped afterwards."""
    if not _pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}, and CI=true requires it")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    import psycopg

    name = f"conveyor_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test against SQLite (the default store) and against the real PostgreSQL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_project(tmp_path: Path, metadata_url: str | None) -> ProjectFactory:
    return ProjectFactory(tmp_path, metadata_url)


@pytest.fixture
def make_sqlite_project(tmp_path: Path) -> ProjectFactory:
    return ProjectFactory(tmp_path, None)
