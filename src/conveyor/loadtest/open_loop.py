"""The open loop: requests at a fixed rate, whatever the service's answers do.

Request i is due at ``start + i / rate``. Its latency counts from that scheduled time, not
from when it was sent, so a request that waited for a free connection because the service
was slow shows that wait in its latency (no coordinated omission). A request sent more than
10 ms after its time is *late*; one still waiting when the window ends is *dropped*.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
from conveyor.loadtest.shape import LATE_AFTER_S, LoadShape
from conveyor.loadtest.stats import Measurement, Recorder, Schedule


class _Loop:
    __slots__ = (
        "backlog",
        "dispatched",
        "idle",
        "index",
        "late",
        "max_lag",
        "measure_from",
        "recorder",
        "scheduled",
    )

    def __init__(self, measure_from: float) -> None:
        self.measure_from = measure_from
        self.backlog: deque[float] = deque()  # due times waiting for a free connection
        self.idle: list[asyncio.Future[float | None]] = []  # workers waiting for work
        self.dispatched = False
        self.index = 0
        self.scheduled = 0
        self.late = 0
        self.max_lag = 0.0
        self.recorder = Recorder()


async def run_open(endpoint: Endpoint, requests: Sequence[bytes], shape: LoadShape) -> Measurement:
    """Run the warm-up and the measured window at ``shape.rate``; return the window's data."""
    assert shape.rate is not None
    slots: list[Connection | None] = list(
        await open_pool(endpoint, shape.concurrency, shape.timeout_s)
    )
    start = perf_counter()
    state = _Loop(start + shape.warmup_s)
    guard = asyncio.create_task(watchdog(slots, shape.timeout_s))
    workers = [
        asyncio.create_task(_worker(state, slots, k, endpoint, requests, shape))
        for k in range(len(slots))
    ]
    try:
        dropped = await _dispatch(state, shape, start)
        await asyncio.gather(*workers)
    finally:
        guard.cancel()
        for task in workers:
            task.cancel()
        for conn in slots:
            if conn is not None:
                conn.abort(ConnectionAbortedError("load test over"))
    schedule = Schedule(
        rate=shape.rate,
        scheduled=state.scheduled,
        late=state.late,
        dropped=dropped,
        late_after_ms=LATE_AFTER_S * 1000.0,
        max_send_lag_ms=state.max_lag * 1000.0,
    )
    return Measurement.of(
        state.recorder,
        url=endpoint.url,
        mode="open",
        connections=shape.concurrency,
        started=state.measure_from,
        schedule=schedule,
    )


async def _dispatch(state: _Loop, shape: LoadShape, start: float) -> int:
    """Hand out due times until the window closes; return how many were never sent."""
    assert shape.rate is not None
    interval = 1.0 / shape.rate
    end = state.measure_from + shape.duration_s
    budget = shape.max_requests if shape.max_requests is not None else -1
    i = 0
    while True:
        now = perf_counter()
        due = start + i * interval
        while due <= now:
            if due >= end or budget == 0:
                return _close(state)
            if due >= state.measure_from:
                state.scheduled += 1
                if budget > 0:
                    budget -= 1
            if state.idle:
                state.idle.pop().set_result(due)
            else:
                state.backlog.append(due)
            i += 1
            due = start + i * interval
        # The event loop wakes with millisecond resolution; whatever fell due meanwhile
        # goes out in the next pass, its lateness counted in its latency.
        await asyncio.sleep(due - now)


def _close(state: _Loop) -> int:
    state.dispatched = True
    dropped = sum(1 for due in state.backlog if due >= state.measure_from)
    state.backlog.clear()
    for waiter in state.idle:
        waiter.set_result(None)
    state.idle.clear()
    return dropped


async def _next_due(state: _Loop) -> float | None:
    if state.backlog:
        return state.backlog.popleft()
    if state.dispatched:
        return None
    waiter: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
    state.idle.append(waiter)
    return await waiter


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
    while (due := await _next_due(state)) is not None:
        data = requests[state.index % n]
        state.index += 1
        measured = due >= state.measure_from
        conn = slots[k]
        try:
            if conn is None or conn.closed:
                slots[k] = conn = None
                conn = slots[k] = await connect(endpoint, shape.timeout_s)
            sent = perf_counter()
            if measured:
                lag = sent - due
                if lag > LATE_AFTER_S:
                    state.late += 1
                if lag > state.max_lag:
                    state.max_lag = lag
            status = await conn.request(data, sent)
        except (OSError, TimeoutError, RequestTimeout, ProtocolError) as exc:
            if measured:
                recorder.failure(perf_counter(), error_kind(exc))
            continue
        if measured:
            recorder.response(due, perf_counter(), status)
