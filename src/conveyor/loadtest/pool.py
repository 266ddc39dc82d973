"""Connections shared by both loops: opening them up front, and timing requests out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from time import perf_counter

from conveyor.errors import UsageError
from conveyor.loadtest.client import Connection, Endpoint, RequestTimeout, connect, error_kind


async def open_pool(endpoint: Endpoint, size: int, timeout_s: float) -> list[Connection]:
    """``size`` open connections, so connecting is not part of any measured request."""
    opened = await asyncio.gather(
        *(connect(endpoint, timeout_s) for _ in range(size)), return_exceptions=True
    )
    conns = [c for c in opened if isinstance(c, Connection)]
    failed = [e for e in opened if isinstance(e, BaseException)]
    if failed:
        for conn in conns:
            conn.abort(ConnectionAbortedError("pool not opened"))
        first = failed[0]
        if not isinstance(first, OSError | TimeoutError):
            raise first
        raise UsageError(
            f"cannot connect to {endpoint.url}: {error_kind(first)} "
            f"({len(failed)} of {size} connections failed)",
            hint="check that the service is running and listening on that host and port",
        )
    return conns


async def watchdog(slots: Sequence[Connection | None], timeout_s: float) -> None:
    """Abort every connection whose request has been in flight longer than ``timeout_s``.

    One periodic task instead of a timer per request keeps the per-request cost down; a
    request times out between ``timeout_s`` and ``timeout_s`` plus a tick late.
    """
    tick = min(0.05, timeout_s / 4)
    while True:
        await asyncio.sleep(tick)
        deadline = perf_counter() - timeout_s
        for conn in slots:
            if conn is not None and 0.0 < conn.sent_at < deadline:
                conn.abort(RequestTimeout(f"no response within {timeout_s:g} s"))
