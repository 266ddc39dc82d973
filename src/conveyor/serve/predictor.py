"""Calling the model: on the event loop for small requests of a fast model, otherwise in
worker threads under the time limit, alone or micro-batched with concurrent requests."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from conveyor.serve.batching import Batcher
from conveyor.serve.deadlines import Deadlines
from conveyor.serve.limits import Disconnected
from conveyor.serve.metrics import ServiceMetrics
from conveyor.serve.model import PREDICT_ERRORS, ServedModel
from conveyor.serve.problems import Refused, unprocessable
from conveyor.serve.settings import ServeSettings
from conveyor.serve.signature import Array

log = logging.getLogger("conveyor.serve")

INLINE_SLOW = 20  # an event-loop call this many times over its budget is slow
INLINE_SLOW_CALLS = 3  # this many slow ones in a row (not one preempted call) end them


class Predictor:
    """The model behind the service. ``arriving()`` counts prediction requests admitted whose
    bodies are still being read (micro-batching waits for them)."""

    def __init__(
        self,
        model: ServedModel,
        settings: ServeSettings,
        metrics: ServiceMetrics,
        arriving: Callable[[], int],
    ) -> None:
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self._arriving = arriving
        self._executor: ThreadPoolExecutor | None = None
        self._batcher: Batcher | None = None
        # Requests this small are predicted on the event loop: the model answers them faster
        # than a hop to a worker thread and back (which also contends for the GIL).
        self._inline_rows = model.rows_within(settings.inline_s)
        self._slow_inline = 0
        self._late = Deadlines(settings.limits.predict_timeout_s)

    def start(self) -> None:
        """Start the model threads (and the batcher); call on the running event loop."""
        loop = asyncio.get_running_loop()
        finite = not any(c.holds_missing for c in self.model.signature.columns)
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.threads,
            thread_name_prefix="conveyor-predict",
            initializer=_thread_setup,
            initargs=(finite,),
        )
        _thread_setup(finite)  # the event loop's thread makes the inline calls
        if self.settings.batching is not None:

            async def run_batch(columns: Sequence[Array], requests: int) -> Array:
                if len(columns[0]) <= self._inline_rows:
                    return self._call_inline(columns, requests)
                return await loop.run_in_executor(
                    self._executor, self._call_model, columns, requests
                )

            self._batcher = Batcher(self.settings.batching, run_batch, self._arriving)
            self._batcher.start()

    async def stop(self) -> None:
        self._late.close()
        if self._batcher is not None:
            await self._batcher.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(
        self,
        columns: Sequence[Array],
        rows: int,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> Array:
        """The model's output for typed columns, within the time limit (504 past it; 422 if
        the model refuses the rows).

        A request waiting for a model called in worker threads (alone or in a micro-batch)
        stops waiting, and is never predicted if it has not been yet, as soon as ``gone()``
        returns True (its client has disconnected): it then raises :class:`Disconnected`, so
        an abandoned request does not hold a place in flight. Requests to a model fast enough
        for the event loop are not watched: they are answered within about ``inline_s``
        anyway, and a watcher per request would cost more than a stray prediction."""
        try:
            if self._batcher is None and rows <= self._inline_rows:
                return self._call_inline(columns, 1)  # cannot be interrupted: no timer
            return await self._wait(columns, rows, gone)
        except TimeoutError:
            timeout = self.settings.limits.predict_timeout_s
            raise Refused(
                504,
                f"the prediction took longer than the limit of {timeout:g} s",
                hint="send fewer rows per request, or ask the operator to raise the limit",
            ) from None
        except PREDICT_ERRORS as exc:
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise unprocessable(
                f"the model refused the input: {type(exc).__name__}: {text}",
                hint="check the values against the model's training data",
            ) from None

    async def _wait(
        self, columns: Sequence[Array], rows: int, gone: Callable[[], Awaitable[bool]] | None
    ) -> Array:
        loop = asyncio.get_running_loop()
        work: asyncio.Future[Array]
        if self._batcher is not None:
            work = self._batcher.submit(columns, rows)
        else:
            work = loop.run_in_executor(self._executor, self._call_model, columns, 1)
        watch: asyncio.Future[bool] | None = None
        batching = self.settings.batching
        threaded = batching is None or self._inline_rows < batching.max_batch_rows
        if gone is not None and threaded:
            watch = asyncio.ensure_future(gone())
            watch.add_done_callback(lambda w: _disconnected(w) and work.cancel())
        # The time limit cancels the work, as a disconnection does (see Deadlines for why
        # not asyncio.timeout(), which would cancel and un-cancel the task).
        self._late.start(work, work.cancel)
        try:
            return await work
        except asyncio.CancelledError:
            if not self._late.stop(work):  # the time limit cancelled it
                raise TimeoutError from None
            if watch is not None and _disconnected(watch):
                raise Disconnected from None
            raise
        finally:
            self._late.stop(work)
            if watch is not None:
                watch.cancel()

    def _call_inline(self, columns: Sequence[Array], requests: int) -> Array:
        """A model call on the event loop. If such calls keep taking far longer than the
        model's timing at load promised, later calls go to worker threads, where the time
        limit holds. (One slow call may just have been preempted; three in a row are not.)"""
        start = time.perf_counter()
        try:
            return self._call_model(columns, requests)
        finally:
            took = time.perf_counter() - start
            if took <= INLINE_SLOW * self.settings.inline_s:
                self._slow_inline = 0
            else:
                self._slow_inline += 1
                if self._slow_inline >= INLINE_SLOW_CALLS:
                    self._inline_rows = 0
                    log.warning(
                        "model calls on the event loop took up to %.1f ms; calling the model "
                        "in worker threads from now on",
                        took * 1000,
                    )

    def _call_model(self, columns: Sequence[Array], requests: int) -> Array:
        """One model call, in a worker thread."""
        start = time.perf_counter()
        outputs = self.model.predict(columns)
        rows = len(columns[0])
        self.metrics.observe_model_call(rows, requests, time.perf_counter() - start)
        if len(outputs) != rows:
            raise RuntimeError(f"the model returned {len(outputs)} rows for {rows}")
        return outputs


def _disconnected(watch: asyncio.Future[bool]) -> bool:
    return watch.done() and not watch.cancelled() and watch.exception() is None and watch.result()


def _thread_setup(finite: bool) -> None:
    """In each model thread: the inputs were checked for NaN and infinity already, so let
    scikit-learn skip that check (when no column may hold a missing value)."""
    if finite:
        # Only when the model loaded scikit-learn: an ONNX model does not need it, and
        # importing it would add most of a second to the service's cold start.
        sklearn = sys.modules.get("sklearn")
        if sklearn is not None:
            sklearn.set_config(assume_finite=True)
