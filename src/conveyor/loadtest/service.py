"""The prediction service of a package, run for the length of a load test.

The service runs in a child process (``python -m conveyor.loadtest.service``) on a free local
port, as it would in an environment, so the generator and the model do not share an
interpreter. The test starts once ``/v2/health/ready`` answers 200; afterwards the service is
stopped with SIGTERM, which drains it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from conveyor.errors import GateFailedError
from conveyor.loadtest.client import Endpoint, get_status

if TYPE_CHECKING:
    from conveyor.engine.project import Project

READY_PATH = "/v2/health/ready"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (another process could still take it: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_package(
    project: Project,
    directory: Path,
    *,
    host: str = "127.0.0.1",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, int]]:
    """Serve the (extracted, verified) package in ``directory``; yields ``(host, port)`` once
    the service is ready, and stops it when the block ends."""
    from conveyor.serve.run import ServeSpec

    say = progress or (lambda _: None)
    spec = ServeSpec(
        package_dir=directory, trusted_types=tuple(project.config.trust.skops_types)
    ).to_json()
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port(host)
        say(f"starting the prediction service on http://{host}:{port}")
        with tempfile.TemporaryFile() as log:
            proc = _start(spec, host, port, log)
            try:
                ready = _wait_ready(
                    proc, Endpoint(host=host, port=port, path="/"), startup_timeout_s
                )
                if ready:
                    yield host, port
                    return
                tail = _tail(log)
                if "address already in use" in tail.lower() and attempt < PORT_ATTEMPTS:
                    continue
                raise GateFailedError(
                    f"the prediction service of {directory.name} did not become ready"
                    + (f" within {startup_timeout_s:g} s" if proc.poll() is None else "")
                    + (f":\n{tail}" if tail else ""),
                    hint="serve the package on its own to see why; its last output is above",
                )
            finally:
                _stop(proc)
    raise AssertionError("unreachable")  # pragma: no cover


def _start(spec: str, host: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "conveyor.loadtest.service", "--host", host, "--port", str(port)]
    env = {**os.environ, "CONVEYOR_LOADTEST_SPEC": spec}
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def _wait_ready(proc: subprocess.Popen[bytes], endpoint: Endpoint, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if asyncio.run(get_status(endpoint, READY_PATH, 2.0)) == 200:
                return True
        except (OSError, TimeoutError, ValueError):
            pass  # not listening yet
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: IO[bytes], lines: int = 15) -> str:
    log.seek(0)
    text = log.read().decode("utf-8", errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> None:
    """The child process: serve the package described by ``CONVEYOR_LOADTEST_SPEC``."""
    from conveyor.serve.run import ServeSpec, serve

    parser = argparse.ArgumentParser(prog="python -m conveyor.loadtest.service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    spec = ServeSpec.from_json(os.environ["CONVEYOR_LOADTEST_SPEC"])
    serve(spec=spec, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
