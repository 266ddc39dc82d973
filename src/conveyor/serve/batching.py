"""Adaptive micro-batching: concurrent requests share one model call.

One consumer takes the first waiting request, lets the event loop turn once (requests whose
bytes arrived meanwhile queue too), then gathers more until the batch holds ``max_batch_rows``
rows or ``max_wait_s`` has passed, and waits only while other prediction requests are known to
be on their way (admitted but not yet queued), so a lone request is not delayed beyond that one
turn. While a batch is in the model, new requests queue, so batches grow with the load. A
batch that the model refuses is retried request by request, so one bad request cannot fail the
others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import UsageError
from conveyor.serve.signature import Array, join_columns

Predict = Callable[[Sequence[Array]], Array]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSettings:
    max_batch_rows: int = 256
    max_wait_s: float = 0.002

    def __post_init__(self) -> None:
        if self.max_batch_rows < 1 or not 0 <= self.max_wait_s <= 1:
            raise UsageError(
                "micro-batching needs max_batch_rows >= 1 and 0 <= max_wait_s <= 1",
                hint="e.g. --max-batch-rows 256 --max-wait-ms 2",
            )


@dataclass(slots=True, eq=False)
class _Item:
    columns: Sequence[Array]
    rows: int
    future: asyncio.Future[Array] = field(repr=False)


class Batcher:
    """Queue requests' columns; one task calls ``run_batch`` on groups of them."""

    def __init__(
        self,
        settings: BatchSettings,
        run_batch: Callable[[Sequence[Array], int], Any],
        on_their_way: Callable[[], int],
    ) -> None:
        """``run_batch(columns, requests)`` is awaitable and returns the model output;
        ``on_their_way()`` counts prediction requests admitted but not queued yet."""
        self.settings = settings
        self._run_batch = run_batch
        self._on_their_way = on_their_way
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="conveyor-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.cancel()

    def submit(self, columns: Sequence[Array], rows: int) -> asyncio.Future[Array]:
        """Queue a request; the future gets its rows of the output. Cancelling the future
        before its batch is gathered leaves the request out of the model call."""
        future: asyncio.Future[Array] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(columns=columns, rows=rows, future=future))
        self._wake.set()
        return future

    async def _loop(self) -> None:
        while True:
            batch = await self._gather()
            if batch:
                await self._run(batch)

    async def _gather(self) -> list[_Item]:
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        # One turn of the event loop: requests whose bytes arrived while the last batch was in
        # the model are parsed and queued now, and join this batch instead of the next.
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_wait_s
        batch: list[_Item] = []
        rows = 0
        while True:
            while self._queue:
                item = self._queue[0]
                if item.future.done():  # timed out or cancelled while waiting
                    self._queue.popleft()
                    continue
                if batch and rows + item.rows > self.settings.max_batch_rows:
                    return batch
                self._queue.popleft()
                batch.append(item)
                rows += item.rows
            remaining = deadline - loop.time()
            if rows >= self.settings.max_batch_rows or remaining <= 0:
                return batch
            if self._on_their_way() <= 0:
                return batch
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()

    async def _run(self, batch: list[_Item]) -> None:
        columns = batch[0].columns if len(batch) == 1 else join_columns([i.columns for i in batch])
        try:
            output = await self._run_batch(columns, len(batch))
        except asyncio.CancelledError:
            for item in batch:
                if not item.future.done():
                    item.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the requests, which report it
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for item in batch:  # isolate the request the model refused
                await self._run([item])
            return
        start = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(output[start : start + item.rows])
            start += item.rows
