"""An event loop on a thread of its own, for blocking callers of asyncio code: a coroutine is
run to its result, and an async iterator is read as a plain one. The blocking client drives
the asyncio client through it, so the calls, retries, failover and lanes exist once."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Items read ahead of a blocking caller: past this the reading pauses, so a slow caller holds
# the calls back (gRPC's flow control then reaches the server) instead of filling memory. The
# caller takes what is buffered in one go, so up to twice this many are held.
MAX_READ_AHEAD = 1024
# How long closing an iterator waits for its calls to be cancelled.
STOP_WAIT_SECONDS = 10.0


class LoopThread:
    """One event loop, running on a daemon thread until stop()."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """The coroutine's result (or exception), run on the loop in the caller's context."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """The async iterator's items, read on the loop in the caller's context (its trace
        reaches the calls). Nothing is read until the first item is asked for; closing the
        iterator early stops the reading and waits for it to wind down."""
        reader = _Reader(items, self.loop)
        self.loop.call_soon_threadsafe(reader.start, context=contextvars.copy_context())
        try:
            while True:
                yield from reader.take()
        except _End:
            return
        finally:
            reader.stop()

    def stop(self) -> None:
        """Cancel what still runs on the loop, then end its thread."""
        if self.loop.is_closed():
            return
        if self._thread is not threading.current_thread():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(
                    STOP_WAIT_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not threading.current_thread():
            self._thread.join()
            # Worker threads still reading a caller's documents are not waited for.
            self.loop.close()


async def _cancel_all() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _End(Exception):
    """The async iterator is exhausted."""


class _Reader(Generic[T]):
    """Reads an async iterator on the loop into a buffer a blocking thread takes from."""

    def __init__(self, items: AsyncIterator[T], loop: asyncio.AbstractEventLoop) -> None:
        self._items = items
        self._loop = loop
        self._buffer: deque[T] = deque()
        self._ready = threading.Condition()
        self._ending: BaseException | None = None  # _End, or the failure to raise
        self._room = asyncio.Event()
        self._paused = False
        self._wake_pending = False
        self._task: asyncio.Task[None] | None = None
        self._done = threading.Event()

    def start(self) -> None:
        """On the loop."""
        self._task = self._loop.create_task(self._read())
        self._task.add_done_callback(self._finished)

    async def _read(self) -> None:
        async with contextlib.aclosing(self._items):  # type: ignore[type-var]
            async for item in self._items:
                self._buffer.append(item)  # deque appends are atomic; the lock is for waking
                if not self._wake_pending:
                    # One wake-up per turn of the loop, however many items it read: waking
                    # the caller's thread costs more than handing it an item.
                    self._wake_pending = True
                    self._loop.call_soon(self._wake)
                if len(self._buffer) >= MAX_READ_AHEAD:
                    with self._ready:
                        self._paused = len(self._buffer) >= MAX_READ_AHEAD
                        if self._paused:
                            self._room.clear()
                    if self._paused:
                        await self._room.wait()

    def _wake(self) -> None:
        with self._ready:
            self._wake_pending = False
            self._ready.notify()

    def _finished(self, task: asyncio.Task[None]) -> None:
        with self._ready:
            if task.cancelled():
                self._ending = _End()
            else:
                self._ending = task.exception() or _End()
            self._ready.notify()
        self._done.set()

    def take(self) -> list[T]:
        """Every item read so far (at least one), waiting for one if there is none; raises
        _End at the end, or the iterator's failure."""
        with self._ready:
            while not self._buffer and self._ending is None:
                self._ready.wait()
            if not self._buffer:
                assert self._ending is not None
                raise self._ending
            items = [self._buffer.popleft() for _ in range(len(self._buffer))]
            if self._paused:
                self._paused = False
                self._loop.call_soon_threadsafe(self._room.set)
            return items

    def stop(self) -> None:
        """From the blocking thread: cancel the reading, and wait until it has wound down."""
        if self._done.is_set():
            return
        try:
            self._loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:
            return  # the loop is closed: nothing runs any more
        self._done.wait(STOP_WAIT_SECONDS)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
