"""Support for the delivery tests: a project with packaged model versions, copied per test
with the environments a test needs, a snapshot of everything delivery writes (to show that
a refused command changed nothing), and the ``conveyor`` command with an actor.

The versions: ``pk:1`` .. ``pk:3`` are registered from one run and packaged; ``pk:4`` is
registered but has no package. The run recorded model checks and no data checks.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import conveyor
from integration.package_support import make_registered

ACCESS = """
access:
  users: {alice: [developer], bob: [approver], carol: [approver], vic: [viewer], root: [admin]}
"""

# test (auto), staging (approval), production (manual): the targets are rendered, so a
# promotion moves the desired state without starting a server.
THREE_ENVS = """
environments:
  - name: test
    target: {kind: kubernetes, image: x}
  - name: staging
    promote: approval
    approvers: [role:approver]
    target: {kind: kubernetes, image: x}
  - name: production
    promote: manual
    approvers: [role:approver]
    target: {kind: kubernetes, image: x}
"""

_TEMPLATES: dict[str, Path] = {}


def template(factory: pytest.TempPathFactory) -> Path:
    """The packaged project, built once per session."""
    if "root" not in _TEMPLATES:
        from conveyor.engine.project import open_project
        from conveyor.registry.package import build_package
        from conveyor.registry.versions import register_model

        root, mv = make_registered(factory.mktemp("delivery-template") / "proj")
        with open_project(root, environ={}) as project:
            build_package(project, mv)
            for version in (2, 3, 4):
                again = register_model(project.metadata, name="pk", run_ref=mv.run_id, step="train")
                assert again.version == version
                if version < 4:
                    build_package(project, again)
        _TEMPLATES["root"] = root
    return _TEMPLATES["root"]


def project_copy(factory: pytest.TempPathFactory, dest: Path, extra_config: str) -> Path:
    """A copy of the packaged project at ``dest`` with ``extra_config`` appended to its
    conveyor.yaml."""
    shutil.copytree(template(factory), dest)
    config = dest / "conveyor.yaml"
    config.write_text(config.read_text() + textwrap.dedent(extra_config))
    return dest


def cli(root: Path, *args: str, user: str | None = "alice", **environ: str) -> Any:
    """``conveyor ARGS`` in ``root`` as ``user`` (CONVEYOR_USER)."""
    env = {"CONVEYOR_USER": user} if user else {}
    return conveyor(*args, cwd=root, env={**env, **environ})


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def cli_json(root: Path, *args: str, user: str | None = "alice", **environ: str) -> Any:
    return json.loads(ok(cli(root, *args, "--json", user=user, **environ)).stdout)


def assert_user_error(proc: subprocess.CompletedProcess[str], code: int, *says: str) -> str:
    """The command failed with ``code``, an ``error:`` headline and a hint, no traceback, and
    its stderr says each of ``says``."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    assert "error:" in err and "hint:" in err, err
    for text in says:
        assert text in err, f"{text!r} not in:\n{err}"
    return err


def engine(root: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{root / '.conveyor' / 'conveyor.db'}")


@contextlib.contextmanager
def connect(root: Path) -> Iterator[sa.Connection]:
    """A connection to the project's metadata database."""
    eng = engine(root)
    try:
        with eng.connect() as conn:
            yield conn
    finally:
        eng.dispose()


def snapshot(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row delivery writes: promotions, their events, environments' state,
    deployments, tokens and the audit log."""
    tables = (
        "promotions",
        "promotion_events",
        "environment_state",
        "deployments",
        "tokens",
        "audit_log",
    )
    eng = engine(root)
    try:
        with eng.connect() as conn:
            return {
                name: [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {name}"))]
                for name in tables
            }
    finally:
        eng.dispose()
