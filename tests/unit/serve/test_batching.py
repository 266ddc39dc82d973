"""Micro-batching: concurrent requests share model calls and each gets its own rows back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from conveyor.errors import UsageError
from conveyor.serve.batching import Batcher, BatchSettings
from conveyor.serve.signature import Signature


class Model:
    """Doubles its input; refuses negative values (like a model raising ValueError)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def __call__(self, columns, requests: int):
        await asyncio.sleep(0.01)
        self.calls.append(requests)
        if (columns[0] < 0).any():
            raise ValueError("negative")
        return columns[0] * 2


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    async def main():
        model = Model()
        arriving = [0]
        batcher = Batcher(
            BatchSettings(max_batch_rows=8, max_wait_s=0.05), model, lambda: arriving[0]
        )
        batcher.start()
        arriving[0] = 6  # six requests on their way: the batcher waits for them
        tasks = []
        for i in range(6):
            arriving[0] -= 1
            tasks.append(asyncio.ensure_future(batcher.submit([np.array([i, 10 + i])], 2)))
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks)
        await batcher.stop()
        return model.calls, results

    calls, results = run(main())
    assert [r.tolist() for r in results] == [[2 * i, 20 + 2 * i] for i in range(6)]
    assert sum(calls) == 6 and len(calls) < 6 and max(calls) <= 4  # at most 8 rows a call


def test_a_lone_request_does_not_wait() -> None:
    async def main():
        model = Model()
        batcher = Batcher(BatchSettings(max_batch_rows=64, max_wait_s=0.5), model, lambda: 0)
        batcher.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        out = await batcher.submit([np.array([1.0])], 1)
        took = loop.time() - start
        await batcher.stop()
        return out, took

    out, took = run(main())
    assert out.tolist() == [2.0] and took < 0.4


def test_requests_queued_in_the_same_turn_of_the_loop_share_the_batch() -> None:
    async def main():
        model = Model()
        batcher = Batcher(BatchSettings(max_batch_rows=64, max_wait_s=0.05), model, lambda: 0)
        batcher.start()
        await asyncio.sleep(0)  # the batcher is waiting for work
        futures = [batcher.submit([np.array([1.0])], 1)]
        # requests whose bytes arrived in the same turn, parsed just after the first woke it
        asyncio.get_running_loop().call_soon(
            lambda: futures.extend(batcher.submit([np.array([float(i)])], 1) for i in (2, 3, 4))
        )
        await asyncio.sleep(0)
        results = await asyncio.gather(*futures)
        await batcher.stop()
        return model.calls, results

    calls, results = run(main())
    assert [r.tolist() for r in results] == [[2.0], [4.0], [6.0], [8.0]]
    assert calls == [4]  # one model call, not one for the first and one for the rest


def test_a_refused_request_does_not_fail_its_batch() -> None:
    async def main():
        model = Model()
        batcher = Batcher(BatchSettings(max_batch_rows=64, max_wait_s=0.05), model, lambda: 1)
        batcher.start()
        good = asyncio.ensure_future(batcher.submit([np.array([1.0])], 1))
        bad = asyncio.ensure_future(batcher.submit([np.array([-1.0])], 1))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        await batcher.stop()
        return results

    good, bad = run(main())
    assert good.tolist() == [2.0]
    assert isinstance(bad, ValueError)


def test_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="max_batch_rows"):
        BatchSettings(max_batch_rows=0)


def test_blocks_are_joined_in_one_call_and_a_cancelled_request_is_left_out() -> None:
    sig = Signature.from_mlflow(
        '[{"name": "a", "type": "double"}, {"name": "b", "type": "double"}]'
    )
    seen: list[list[list[float]]] = []

    async def model(columns, requests: int):
        seen.append([c.tolist() for c in columns])
        return columns[0] + columns[1]

    async def main():
        batcher = Batcher(BatchSettings(max_batch_rows=8, max_wait_s=0.05), model, lambda: 0)
        futures = [batcher.submit(sig.convert_rows([[i, 10 * i]], ["a", "b"]), 1) for i in range(4)]
        futures[1].cancel()  # its client left before the batch was gathered
        batcher.start()
        results = await asyncio.gather(*futures[:1], *futures[2:])
        await batcher.stop()
        return results

    results = run(main())
    assert [r.tolist() for r in results] == [[0.0], [22.0], [33.0]]
    assert seen == [[[0.0, 2.0, 3.0], [0.0, 20.0, 30.0]]]  # one call, without the cancelled row
