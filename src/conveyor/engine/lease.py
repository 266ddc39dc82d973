"""The lease a run holds while it executes: an owner id and a heartbeat thread."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from conveyor.store.metadata import MetadataStore

log = logging.getLogger("conveyor.engine")


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def reap(store: MetadataStore, ttl_s: float) -> list[str]:
    """Mark runs whose process died (or whose heartbeat is stale) as failed."""
    return store.reap_dead_runs(host=socket.gethostname(), alive=pid_alive, ttl_s=ttl_s)


class Heartbeat:
    """Renews a run's lease every ``interval`` seconds until stopped."""

    def __init__(self, store: MetadataStore, run_id: str, owner: str, interval: float) -> None:
        self.store, self.run_id, self.owner, self.interval = store, run_id, owner, interval
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._loop, name="conveyor-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.store.heartbeat(self.run_id, self.owner):
                    self.lost = True
                    log.warning("run %s lost its lease", self.run_id)
                    return
            except Exception as exc:  # noqa: BLE001 - a missed beat must not kill the run
                log.warning("heartbeat of run %s failed: %s", self.run_id, exc)
