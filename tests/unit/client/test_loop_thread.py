"""The blocking client reads the asyncio client through LoopThread: items arrive in order, a
failure reaches the caller, stopping early stops the work at once, a slow caller holds the
reading back, and the caller's context (its trace) reaches the work."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from synthqa.client.loop_thread import MAX_READ_AHEAD, LoopThread


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread("test-loop")
    yield thread
    thread.stop()


def test_items_arrive_in_order_and_a_failure_after_them(loop_thread: LoopThread) -> None:
    async def numbers() -> AsyncIterator[int]:
        for n in range(5000):
            yield n
        raise ValueError("the source broke")

    seen: list[int] = []
    with pytest.raises(ValueError, match="the source broke"):
        for n in loop_thread.iterate(numbers()):
            seen.append(n)
    assert seen == list(range(5000))


def test_stopping_early_closes_the_async_iterator_at_once(loop_thread: LoopThread) -> None:
    closed = threading.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()  # where the client cancels its calls

    items = loop_thread.iterate(endless())
    assert next(items) == 0
    items.close()
    assert closed.is_set()


def test_a_slow_caller_holds_the_reading_back(loop_thread: LoopThread) -> None:
    produced = 0

    async def counted() -> AsyncIterator[int]:
        nonlocal produced
        for n in range(10 * MAX_READ_AHEAD):
            produced += 1
            yield n

    items = loop_thread.iterate(counted())
    next(items)
    time.sleep(0.5)  # the caller is busy; the reading must pause, not run to the end
    # What the caller took in one go, and what was read since.
    assert produced <= 2 * MAX_READ_AHEAD + 1
    assert sum(1 for _ in items) == 10 * MAX_READ_AHEAD - 1


def test_the_work_runs_in_the_callers_context(loop_thread: LoopThread) -> None:
    current = contextvars.ContextVar("current", default="none")

    async def seen() -> AsyncIterator[str]:
        yield current.get()

    async def value() -> str:
        return current.get()

    current.set("the caller's span")
    assert list(loop_thread.iterate(seen())) == ["the caller's span"]
    assert loop_thread.run(value()) == "the caller's span"
