"""The heap trimmer: when it gives memory back, and when it leaves the allocator alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from synthqa.server.heap import HeapTrimmer, glibc_malloc_trim

MIB = 1024 * 1024


@dataclass
class Activity:
    active_calls: int = 0
    calls_begun: int = 0


class FakeProcess:
    """RSS that a trim brings down to what is live."""

    def __init__(self, live: int, retained: int) -> None:
        self.live = live
        self.retained = retained
        self.trims = 0

    def rss(self) -> int:
        return self.live + self.retained

    def trim(self, pad: int) -> int:
        self.trims += 1
        self.retained = 0
        return 1


async def watch_for(trimmer: HeapTrimmer, activity: Activity, seconds: float,
                    until: Callable[[], bool] = lambda: False) -> None:
    """Let the trimmer watch for `seconds`, or until `until()` holds, then for a few more
    checks (a second trim would show)."""
    task = asyncio.create_task(trimmer.watch(activity, every_seconds=0.01))
    for _ in range(int(seconds / 0.01)):  # the trim runs in a thread: poll for it
        if until():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_an_idle_server_gives_back_what_its_calls_left_once() -> None:
    process = FakeProcess(live=600 * MIB, retained=200 * MIB)
    trimmer = HeapTrimmer(process.trim, rss=process.rss)
    activity = Activity(calls_begun=3)
    await watch_for(trimmer, activity, 10, until=lambda: process.trims > 0)
    assert process.rss() == 600 * MIB
    assert process.trims == 1  # idle without new calls: nothing more to do

    activity.calls_begun += 1
    process.retained = 100 * MIB
    await watch_for(trimmer, activity, 10, until=lambda: process.trims > 1)
    assert process.rss() == 600 * MIB
    assert process.trims == 2


async def test_a_busy_server_is_left_alone() -> None:
    process = FakeProcess(live=600 * MIB, retained=200 * MIB)
    trimmer = HeapTrimmer(process.trim, rss=process.rss)
    await watch_for(trimmer, Activity(active_calls=2, calls_begun=5), 0.2)
    assert process.trims == 0


async def test_memory_near_the_floor_is_not_worth_a_trim() -> None:
    process = FakeProcess(live=600 * MIB, retained=0)
    trimmer = HeapTrimmer(process.trim, rss=process.rss, above_floor_bytes=32 * MIB)
    await trimmer.check()  # the first sets the floor
    process.retained = 16 * MIB
    await trimmer.check()
    assert process.trims == 1
    process.retained = 40 * MIB
    await trimmer.check()
    assert process.trims == 2


async def test_without_glibc_the_watch_ends_at_once() -> None:
    trimmer = HeapTrimmer(None)
    await asyncio.wait_for(trimmer.watch(Activity(calls_begun=1), every_seconds=0.01), 1)
    assert trimmer.trims == 0


def test_this_machine_has_glibc_malloc_trim() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)
