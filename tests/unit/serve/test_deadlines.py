"""Deadlines: many waits under one time limit, one loop timer."""

from __future__ import annotations

import asyncio

from conveyor.serve.deadlines import Deadlines


def test_a_wait_expires_at_its_time_unless_stopped_first() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(0.05)
        fired: dict[str, float] = {}
        begun = loop.time()
        deadlines.start("late", lambda: fired.setdefault("late", loop.time()))
        deadlines.start("done", lambda: fired.setdefault("done", loop.time()))
        assert deadlines.stop("done") is True  # still running when stopped
        await asyncio.sleep(0.2)
        assert list(fired) == ["late"]
        assert fired["late"] >= begun + 0.05  # not before its time
        assert deadlines.stop("late") is False  # its time was up
        assert deadlines.stop("never started") is False

    asyncio.run(main())


def test_the_next_wait_still_expires_when_the_oldest_was_stopped() -> None:
    """The one timer is set for the oldest wait; when that one ends early, the timer must
    move on to the next, not be lost."""

    async def main() -> None:
        deadlines = Deadlines(0.1)
        fired: list[int] = []
        for k in range(5):
            deadlines.start(k, lambda k=k: fired.append(k))
            await asyncio.sleep(0)  # each in its own turn of the loop
        deadlines.stop(0)
        deadlines.stop(3)
        await asyncio.sleep(0.3)
        assert fired == [1, 2, 4]  # in the order they began
        # and a wait begun after all that expires too
        deadlines.start("later", lambda: fired.append(99))
        await asyncio.sleep(0.2)
        assert fired == [1, 2, 4, 99]

    asyncio.run(main())


def test_a_task_cancelled_at_its_deadline_can_tell_it_was_the_deadline() -> None:
    async def main() -> str:
        deadlines = Deadlines(0.05)
        task = asyncio.current_task()
        assert task is not None
        deadlines.start(task, task.cancel)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if deadlines.stop(task):
                raise
            task.uncancel()
            return "timed out"
        return "finished"

    assert asyncio.run(main()) == "timed out"


def test_one_deadlines_serves_a_second_event_loop() -> None:
    deadlines = Deadlines(0.05)
    fired: list[str] = []

    async def wait(name: str, stop_early: bool) -> None:
        deadlines.start(name, lambda: fired.append(name))
        if stop_early:
            await asyncio.sleep(0)
            deadlines.stop(name)  # the timer stays set in this loop, which then ends
        else:
            await asyncio.sleep(0.2)

    asyncio.run(wait("first loop", stop_early=True))
    asyncio.run(wait("second loop", stop_early=False))
    assert fired == ["second loop"]


def test_close_stops_every_wait() -> None:
    async def main() -> None:
        deadlines = Deadlines(0.05)
        fired: list[int] = []
        deadlines.start(1, lambda: fired.append(1))
        deadlines.close()
        await asyncio.sleep(0.2)
        assert fired == []
        assert deadlines.stop(1) is False

    asyncio.run(main())
