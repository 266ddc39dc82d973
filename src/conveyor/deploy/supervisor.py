"""The supervisor of a local environment's serving process.

``python -m conveyor.deploy.supervisor ROOT ENVIRONMENT`` runs the server
(:mod:`conveyor.deploy.server`) as its child and starts it again when it exits unexpectedly,
with a growing pause, giving up after ``MAX_RESTARTS`` restarts within ``WINDOW_S``. SIGTERM
or SIGINT is passed to the server, which drains its requests; the supervisor exits when it
has. It runs in a session of its own, so it outlives the command that started it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("conveyor.deploy")

MAX_RESTARTS = 10
WINDOW_S = 60.0
DRAIN_S = 35.0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m conveyor.deploy.supervisor ROOT ENVIRONMENT", file=sys.stderr)
        return 2
    root, name = args
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(message)s")
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: Any) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts: deque[float] = deque()
    pause = 0.5
    while not stopping.is_set():
        child = subprocess.Popen([sys.executable, "-m", "conveyor.deploy.server", root, name])
        log.info("started the server of %s (pid %d)", name, child.pid)
        started = time.monotonic()
        code = child.wait()
        if stopping.is_set():
            break
        log.warning("the server of %s exited with status %s; starting it again", name, code)
        now = time.monotonic()
        if now - started > WINDOW_S:
            pause = 0.5
        restarts.append(now)
        while restarts and now - restarts[0] > WINDOW_S:
            restarts.popleft()
        if len(restarts) > MAX_RESTARTS:
            log.error(
                "the server of %s exited %d times within %.0f s; giving up",
                name,
                len(restarts),
                WINDOW_S,
            )
            return 1
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
    if child is not None:
        try:
            child.wait(timeout=DRAIN_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    log.info("stopped %s", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
