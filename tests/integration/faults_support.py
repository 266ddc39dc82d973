"""Support for ``test_faults.py``: background CLI processes, kill triggers and store audits.

Everything here looks at a project from the outside, the way an operator would: the files
under ``.conveyor/artifacts``, the rows in the metadata database, and the real ``conveyor``
command running in its own process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from helpers import conveyor

# Upper bound for anything the tests wait on; only reached when something hangs.
PATIENCE_S = 120.0

# Pipelines import this snippet to pause a step until the test lets it go on.
SIGNALS_SNIPPET = '''
import time
from pathlib import Path

SIGNALS = Path(__file__).resolve().parents[1] / "signals"


def wait_for_release(name: str) -> None:
    """Tell the test this step has started, then wait until the test releases it."""
    SIGNALS.mkdir(exist_ok=True)
    (SIGNALS / f"{name}.started").touch()
    deadline = time.monotonic() + 120
    while not (SIGNALS / f"{name}.release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"step {name} was never released")
        time.sleep(0.02)
'''


def started_flag(root: Path, name: str) -> Path:
    return root / "signals" / f"{name}.started"


def release(root: Path, name: str) -> None:
    """Let the step paused in ``wait_for_release(name)`` go on (now or when it gets there)."""
    (root / "signals").mkdir(exist_ok=True)
    (root / "signals" / f"{name}.release").touch()


# -- processes -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exit code {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """``conveyor ARGS`` in its own process group, as a shell starts a foreground job.

    Output goes to files, so the process never blocks on a full pipe.
    """

    def __init__(self, root: Path, *args: str) -> None:
        logs = root.parent / f"{root.name}-logs"
        logs.mkdir(exist_ok=True)
        n = len(list(logs.iterdir()))
        self.out, self.err = logs / f"{n}.out", logs / f"{n}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "conveyor", *args],
                cwd=root,
                env={**os.environ, "NO_COLOR": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                # A job a shell starts in the foreground takes Ctrl-C; a test suite launched in
                # the background (`cmd &`) has SIGINT ignored, and children would inherit that.
                preexec_fn=_default_sigint,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: signal.Signals) -> None:
        """Signal the conveyor process alone."""
        self.popen.send_signal(sig)

    def ctrl_c(self) -> None:
        """What Ctrl-C in a terminal does: SIGINT to every process of the job."""
        os.killpg(self.popen.pid, signal.SIGINT)

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the job (worker processes included)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def wait(self, timeout: float = PATIENCE_S) -> Finished:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError(
                f"conveyor did not finish in {timeout} s\n{self.output()}"
            ) from None
        return Finished(code, self.out.read_text(), self.err.read_text())

    def kill(self) -> Finished:
        """SIGKILL the process (no cleanup of any kind can run) and reap it."""
        self.send(signal.SIGKILL)
        return self.wait()

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()}"


@contextmanager
def background(root: Path, *args: str) -> Iterator[Background]:
    """A background ``conveyor`` that is killed if the test leaves early."""
    proc = Background(root, *args)
    try:
        yield proc
    finally:
        proc.kill_group()


def wait_until(predicate: Callable[[], bool], what: str, proc: Background | None = None) -> None:
    """Poll ``predicate``; fail if ``proc`` exits first or nothing happens for a long time."""
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        if proc is not None and not proc.running():
            raise AssertionError(f"conveyor exited before {what}\n{proc.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def cli_json(root: Path, *args: str) -> Any:
    """Run a read command with ``--json`` and return its parsed output."""
    return json.loads(conveyor(*args, "--json", cwd=root, check=True).stdout)


def run_json(root: Path, *args: str) -> tuple[Finished, dict[str, Any]]:
    """``conveyor run --json ARGS`` to completion: (process result, its JSON outcome)."""
    proc = conveyor("run", "--json", *args, cwd=root)
    done = Finished(proc.returncode, proc.stdout, proc.stderr)
    try:
        outcome = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"conveyor run printed no JSON\n{done.describe()}") from None
    return done, outcome


def step_statuses(outcome: dict[str, Any]) -> dict[str, str]:
    """``{step: status}`` of a run, from ``conveyor run --json`` or ``runs show --json``."""
    return {s["name"]: s["status"] for s in outcome["steps"]}


# -- the metadata database -------------------------------------------------------------------
@contextmanager
def database(root: Path) -> Iterator[sa.Engine]:
    """An engine on the project's metadata database, disposed afterwards."""
    from conveyor.engine.project import open_project

    with open_project(root, environ={}) as project:
        yield project.engine


def query(root: Path, sql: str | sa.Executable, **params: Any) -> list[sa.Row[Any]]:
    """Rows of one query: SQL text with ``:name`` params, or a Core statement (typed rows)."""
    statement = sa.text(sql) if isinstance(sql, str) else sql
    with database(root) as engine, engine.connect() as conn:
        return list(conn.execute(statement, params))


def execute(root: Path, statement: sa.Executable) -> int:
    """Run one write statement in its own transaction; returns the affected row count."""
    with database(root) as engine, engine.begin() as conn:
        return int(conn.execute(statement).rowcount)


# -- the artifact store ----------------------------------------------------------------------
def artifacts_dir(root: Path) -> Path:
    return root / ".conveyor" / "artifacts"


def object_path(root: Path, digest: str) -> Path:
    return artifacts_dir(root) / "objects" / digest[:2] / digest[2:]


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class BlobAudit:
    """Checks that every file under ``objects/`` holds exactly the bytes its name promises.

    A file is hashed once per (inode, size, mtime): objects are immutable, so repeated audits
    only read what is new or was touched since the last one.
    """

    def __init__(self, root: Path) -> None:
        self.objects = artifacts_dir(root) / "objects"
        self._verified: dict[str, tuple[int, int, int]] = {}

    def digests(self) -> set[str]:
        """The digests of all stored objects; fails on any stray, partial or corrupt file."""
        found: set[str] = set()
        if not self.objects.exists():
            return found
        for path in self.objects.rglob("*"):
            if path.is_dir():
                continue
            parts = path.relative_to(self.objects).parts
            digest = "".join(parts)
            assert len(parts) == 2 and len(parts[0]) == 2 and len(digest) == 64, (
                f"stray file under objects/: {path}"
            )
            st = path.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._verified.get(digest) != stamp:
                actual = sha256_of(path)
                assert actual == digest, (
                    f"objects/{parts[0]}/{parts[1]} ({st.st_size} bytes) hashes to "
                    f"{actual[:12]}: a partial or corrupt object is visible under a final key"
                )
                self._verified[digest] = stamp
            found.add(digest)
        return found


class StoreWatch:
    """What a trial can see of a run in progress: new staging files and new objects."""

    def __init__(self, root: Path, big_size: int) -> None:
        self.tmp = artifacts_dir(root) / "tmp"
        self.objects = artifacts_dir(root) / "objects"
        self.big_size = big_size
        self.old_partials = set(self._partials())
        self.old_big = set(self._big_objects())

    def _partials(self) -> Iterator[Path]:
        yield from self.tmp.glob("*.partial")

    def _big_objects(self) -> Iterator[Path]:
        # Any object of more than 1% of the big artifact: an object that appeared in pieces
        # is caught while it is still incomplete.
        for path in self.objects.glob("*/*"):
            try:
                if path.stat().st_size >= self.big_size // 100:
                    yield path
            except FileNotFoundError:
                continue

    def bytes_staged(self) -> int:
        """Size of the largest staging file this trial created (0 when there is none)."""
        largest = 0
        for path in self._partials():
            if path in self.old_partials:
                continue
            try:
                largest = max(largest, path.stat().st_size)
            except FileNotFoundError:  # renamed under its digest while we looked
                continue
        return largest

    def big_object_stored(self) -> bool:
        return any(p not in self.old_big for p in self._big_objects())


# -- killing a run at a chosen moment --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KillPoint:
    """When a trial SIGKILLs its run.

    ``after``: ``value`` times the length of a full run after the process started.
    ``staged``: once the big artifact's staging file holds ``value`` times its final size
    (at 1.0 it is fully written and being hashed or renamed).
    ``stored``: ``value`` seconds after the big artifact appeared under ``objects/`` (at 0.0
    as soon as it is seen: the moment between writing a blob and recording it).
    """

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={self.value:.3f}"


@dataclass(frozen=True, slots=True)
class Strike:
    killed: bool  # False when the run finished before the kill point was reached
    staged_bytes: int  # size of the big staging file at the moment of the kill
    result: Finished


def strike(proc: Background, point: KillPoint, watch: StoreWatch, run_s: float) -> Strike:
    """Wait for ``point`` while ``proc`` runs, then SIGKILL it."""
    start = time.monotonic()
    stored_at: float | None = None
    while proc.running():
        now = time.monotonic()
        if point.kind == "after" and now - start >= point.value * run_s:
            break
        if point.kind == "staged" and watch.bytes_staged() >= point.value * watch.big_size:
            break
        if point.kind == "stored":
            if stored_at is None and watch.big_object_stored():
                stored_at = now
            if stored_at is not None and now - stored_at >= point.value:
                break
        if now - start > PATIENCE_S:
            break
        time.sleep(0.002)
    staged = watch.bytes_staged()
    result = proc.kill()
    return Strike(killed=result.returncode == -signal.SIGKILL, staged_bytes=staged, result=result)
