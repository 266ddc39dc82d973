"""The local target: one supervised serving process per environment, on its own port.

``start`` launches the supervisor in a session of its own (so it outlives the command),
records the deployment in the metadata store and waits until the server answers and has
caught up with the environment's desired state. ``stop`` sends SIGTERM (the server drains)
and forgets the deployment. The supervisor's and server's log is
``.conveyor/deploy/ENVIRONMENT.log``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.config_delivery import EnvironmentConfig
from conveyor.deploy.state import Delivery
from conveyor.errors import ConveyorError, UsageError
from conveyor.store import tables as t
from conveyor.store.metadata import MetadataStore, as_utc, now

if TYPE_CHECKING:
    from conveyor.engine.project import Project

D = t.deployments
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 40.0
STALE_S = 10.0  # a server that has not reported for this long is not healthy


class DeployError(ConveyorError):
    """The environment's serving process could not be started."""

    exit_code = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    environment: str
    host: str
    port: int
    url: str
    supervisor_pid: int | None
    server_pid: int | None
    started_at: datetime
    heartbeat_at: datetime | None
    observed: dict[str, Any]

    @property
    def running(self) -> bool:
        return self.supervisor_pid is not None and pid_alive(self.supervisor_pid)

    @property
    def healthy(self) -> bool:
        beat = self.heartbeat_at
        fresh = beat is not None and (now() - beat).total_seconds() < STALE_S
        return self.running and fresh and bool(self.observed.get("ready"))

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "url": self.url,
            "running": self.running,
            "healthy": self.healthy,
            "supervisor_pid": self.supervisor_pid,
            "server_pid": self.server_pid,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "observed": {k: v for k, v in self.observed.items() if k != "stats"},
        }


def pid_alive(pid: int) -> bool:
    from conveyor.engine.lease import pid_alive as alive

    return alive(pid)


def deployment(store: MetadataStore, environment: str) -> Deployment | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(D).where(D.c.environment == environment)).first()
    if row is None:
        return None
    return Deployment(
        environment=row.environment,
        host=row.host,
        port=row.port,
        url=row.url,
        supervisor_pid=row.supervisor_pid,
        server_pid=row.server_pid,
        started_at=as_utc(row.started_at),  # type: ignore[arg-type]
        heartbeat_at=as_utc(row.heartbeat_at),
        observed=dict(row.observed or {}),
    )


def log_path(project: Project, environment: str) -> Path:
    return project.state_dir / "deploy" / f"{environment}.log"


def start(
    project: Project,
    env: EnvironmentConfig,
    *,
    say: Callable[[str], None],
    timeout_s: float = START_TIMEOUT_S,
) -> Deployment:
    """Start the environment's serving process, or return the one running."""
    from conveyor.serve.run import check_port

    if env.target.kind != "local":
        raise UsageError(
            f"environment '{env.name}' has a {env.target.kind} target",
            hint=f"render its manifests: conveyor deploy {env.name} --target kubernetes "
            "--render DIR",
        )
    if env.target.workers != 1:
        raise UsageError(
            f"environment '{env.name}' asks for {env.target.workers} workers; a local "
            "environment runs one serving process (it follows the desired state itself)",
            hint="drop target.workers, or use it with a kubernetes target (replicas)",
        )
    port = env.target.port
    if port is None:
        raise UsageError(
            f"environment '{env.name}' has no port",
            hint=f"set target: {{kind: local, port: N}} under environment '{env.name}' in "
            "conveyor.yaml",
        )
    store = project.metadata
    current = deployment(store, env.name)
    if current is not None and current.running:
        return current
    try:
        check_port(env.target.host, port)
    except UsageError as exc:  # its hint names serve's --port, which deploy does not have
        raise UsageError(
            f"environment '{env.name}': {exc.message}",
            hint=f"stop what is using port {port}, or give '{env.name}' another "
            "target.port in conveyor.yaml",
        ) from None
    url = f"http://{env.target.host}:{port}"
    log_file = log_path(project, env.name)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with store.writer.begin() as conn:
        conn.execute(D.delete().where(D.c.environment == env.name))
        conn.execute(
            D.insert().values(
                environment=env.name,
                host=env.target.host,
                port=port,
                url=url,
                token_digest="",
                started_at=now(),
                observed={},
            )
        )
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.deploy.supervisor", str(project.root), env.name],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=project.root,
        )
    with store.writer.begin() as conn:
        conn.execute(
            D.update().where(D.c.environment == env.name).values(supervisor_pid=process.pid)
        )
    say(f"starting {env.name} on {url} (supervisor pid {process.pid}, log {log_file})")
    deadline = time.monotonic() + timeout_s
    generation = Delivery(store).env_state(env.name).generation
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        found = deployment(store, env.name)
        observed = found.observed if found else {}
        if observed.get("generation", -1) >= generation and _answers(env.target.host, port):
            assert found is not None
            return found
        time.sleep(0.2)
    _kill(process.pid)
    with store.writer.begin() as conn:
        conn.execute(D.delete().where(D.c.environment == env.name))
    raise DeployError(
        f"the server of environment '{env.name}' did not come up within {timeout_s:.0f} s",
        hint=f"see its log: {log_file}\n{_tail(log_file)}",
    )


def stop(project: Project, environment: str, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the environment's serving process (draining); False if none was running."""
    store = project.metadata
    found = deployment(store, environment)
    if found is None:
        return False
    was_running = found.running
    if was_running and found.supervisor_pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(found.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and pid_alive(found.supervisor_pid):
            time.sleep(0.1)
        if pid_alive(found.supervisor_pid):
            _kill(found.supervisor_pid)
    if found.server_pid is not None and pid_alive(found.server_pid):
        _kill(found.server_pid)
    with store.writer.begin() as conn:
        conn.execute(D.delete().where(D.c.environment == environment))
    return was_running


def _answers(host: str, port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=1.0)
        conn.request("GET", "/v2/health/live")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0
