"""Helpers for Conveyor's own tests (importable as ``helpers``; tests/ is on pythonpath)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Create ``files`` (relative path -> text, dedented) under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def conveyor(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the real `conveyor` command in a subprocess."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"conveyor {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def open_and_run(root: Path, **options: Any) -> Any:
    """Open the project at ``root`` and run a pipeline in-process; returns the RunOutcome."""
    from conveyor.engine.project import open_project
    from conveyor.engine.run import RunOptions, run_pipeline

    with open_project(root, environ={}) as project:
        return run_pipeline(project, RunOptions(**options))


def free_port() -> int:
    """A port above 20000 that nothing listens on now. Chosen below 32768, where the system's
    ephemeral ports (clients' own ends of connections) begin, so no connection holds it."""
    for _ in range(200):
        port = random.randint(20001, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20001 and 32767")
