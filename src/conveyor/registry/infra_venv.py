"""The virtual environment a package is validated in: built from its ``requirements.txt`` for
a chosen Python, once per lock, and reused.

A venv is keyed by the requirements and the interpreter's version (:func:`venv_key`) and kept
under a root directory; it counts as built only once pip has succeeded and :data:`MARKER` is
written, so a build that was killed is built again. Building reports a :class:`CheckResult` of
kind ``infra`` (``infra:venv``) saying why pip failed, not an exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.checks import CheckResult
from conveyor.errors import UsageError

if TYPE_CHECKING:
    from conveyor.registry.package_read import Package

MARKER = ".conveyor-complete"
PIP_TIMEOUT_S = 1800.0


def find_python(python: str) -> str:
    """The interpreter for ``python``: a path, or a version such as ``3.11`` found on PATH as
    ``python3.11`` (or this interpreter, when it is that version)."""
    if os.sep in python:
        if not Path(python).is_file():
            raise UsageError(f"no Python interpreter at {python}", hint="give an existing path")
        return python
    found = shutil.which(f"python{python}")
    if found:
        return found
    if python == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    raise UsageError(
        f"no python{python} on PATH",
        hint=f"install Python {python} (e.g. with pyenv or uv python install {python}), or "
        "pass --python with another version or an interpreter's path",
    )


def _python_version(interpreter: str) -> str:
    proc = subprocess.run(
        [interpreter, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise UsageError(f"{interpreter} does not run: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltVenv:
    path: Path
    python: Path
    reused: bool
    result: CheckResult


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def venv_key(requirements: str, python_version: str) -> str:
    return hashlib.sha256(f"{requirements}\0python=={python_version}".encode()).hexdigest()


def ensure_venv(root: Path, package: Package, interpreter: str) -> BuiltVenv:
    """The virtual environment for the package's requirements and ``interpreter``'s version
    under ``root``: reused when complete, else (re)built. It is complete only once pip has
    succeeded and the marker file is written, so a build that was killed is built again."""
    requirements = (package.directory / package.manifest["requirements"]).read_text()
    version = _python_version(interpreter)
    key = venv_key(requirements, version)
    path = root / key
    bindir = "Scripts" if os.name == "nt" else "bin"
    venv_python = path / bindir / ("python.exe" if os.name == "nt" else "python")
    details: dict[str, Any] = {"path": str(path), "python": version, "key": key}
    with _locked(root / f"{key}.lock"):
        if (path / MARKER).is_file():
            return BuiltVenv(
                path=path,
                python=venv_python,
                reused=True,
                result=CheckResult(
                    name="infra:venv",
                    kind="infra",
                    passed=True,
                    message=f"reused the virtual environment for this lock (Python {version})",
                    details={**details, "reused": True},
                ),
            )
        shutil.rmtree(path, ignore_errors=True)
        start = time.perf_counter()
        failure = _build_venv(interpreter, path, venv_python, requirements)
        build_s = time.perf_counter() - start
        if failure is None:
            marker = {"python": version, "requirements": requirements, "build_s": build_s}
            (path / MARKER).write_text(json.dumps(marker, sort_keys=True))
        return BuiltVenv(
            path=path,
            python=venv_python,
            reused=False,
            result=CheckResult(
                name="infra:venv",
                kind="infra",
                passed=failure is None,
                metrics={"build_s": build_s},
                message=failure
                or f"built a virtual environment from requirements.txt (Python {version}) "
                f"in {build_s:.1f} s",
                details={**details, "reused": False},
            ),
        )


def _build_venv(interpreter: str, path: Path, venv_python: Path, requirements: str) -> str | None:
    """Create the venv and install the requirements; None on success, else why not."""
    made = subprocess.run(
        [interpreter, "-m", "venv", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if made.returncode != 0:
        return f"python -m venv failed: {made.stderr.strip()[-1000:]}"
    (path / "requirements.txt").write_text(requirements)
    try:
        pip = subprocess.run(
            [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check",
             "--no-input", "-r", str(path / "requirements.txt")],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"pip install -r requirements.txt did not finish within {PIP_TIMEOUT_S:.0f} s"
    if pip.returncode != 0:
        tail = "\n".join(pip.stderr.strip().splitlines()[-15:])
        return f"pip could not install the package's requirements.txt:\n{tail}"
    return None
