"""The closed loop: N connections, each sending its next request when the previous answer
arrives. It measures the throughput the service sustains at that concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from time import perf_counter

from conveyor.loadtest.client import (
    Connection,
    Endpoint,
    ProtocolError,
    RequestTimeout,
    connect,
    error_kind,
)
from conveyor.loadtest.pool import open_pool, watchdog
from conveyor.loadtest.shape import LoadShape
from conveyor.loadtest.stats import Measurement, Recorder

RECONNECT_PAUSE_S = 0.01  # after a failed connect, so a dead server is not hammered in a loop


class _Loop:
    __slots__ = ("budget", "end", "index", "measure_from", "recorder")

    def __init__(self, shape: LoadShape, start: float) -> None:
        self.measure_from = start + shape.warmup_s
        self.end = self.measure_from + shape.duration_s
        self.budget = shape.max_requests if shape.max_requests is not None else -1
        self.index = 0
        self.recorder = Recorder()


async def run_closed(
    endpoint: Endpoint, requests: Sequence[bytes], shape: LoadShape
) -> Measurement:
    """Run the warm-up and the measured window; return what the window measured."""
    slots: list[Connection | None] = list(
        await open_pool(endpoint, shape.concurrency, shape.timeout_s)
    )
    state = _Loop(shape, perf_counter())
    guard = asyncio.create_task(watchdog(slots, shape.timeout_s))
    try:
        await asyncio.gather(
            *(_worker(state, slots, k, endpoint, requests, shape) for k in range(len(slots)))
        )
    finally:
        guard.cancel()
        for conn in slots:
            if conn is not None:
                conn.abort(ConnectionAbortedError("load test over"))
    return Measurement.of(
        state.recorder,
        url=endpoint.url,
        mode="closed",
        connections=shape.concurrency,
        started=state.measure_from,
    )


async def _worker(
    state: _Loop,
    slots: list[Connection | None],
    k: int,
    endpoint: Endpoint,
    requests: Sequence[bytes],
    shape: LoadShape,
) -> None:
    recorder = state.recorder
    n = len(requests)
    while True:
        start = perf_counter()
        if start >= state.end or state.budget == 0:
            return
        measured = start >= state.measure_from
        if measured and state.budget > 0:
            state.budget -= 1
        data = requests[state.index % n]
        state.index += 1
        conn = slots[k]
        try:
            if conn is None or conn.closed:
                slots[k] = conn = None
                conn = slots[k] = await connect(endpoint, shape.timeout_s)
            status = await conn.request(data, start)
        except (OSError, TimeoutError, RequestTimeout, ProtocolError) as exc:
            if measured:
                recorder.failure(perf_counter(), error_kind(exc))
            if conn is None:
                await asyncio.sleep(RECONNECT_PAUSE_S)
            continue
        if measured:
            recorder.response(start, perf_counter(), status)
