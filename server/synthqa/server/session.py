"""One generation call: admits documents, runs their chunks concurrently within a per-call
window and the server-wide cap, and merges every chunk's events into one stream."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .chunker import Chunk
from .events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    GenerationEvent,
)
from .generator import ChunkGenerator
from .planner import GenerationPlan

log = logging.getLogger(__name__)


@dataclass
class _DocumentProgress:
    document_id: str
    chunk_count: int
    token_count: int
    completed: int = 0
    failed: int = 0
    pairs: int = 0

    @property
    def done(self) -> bool:
        return self.completed + self.failed == self.chunk_count


class _End:
    """Sentinel: the stream is over."""


@dataclass
class _Failure:
    error: BaseException


class SessionLoad:
    """Server-wide counters shared by every session, read by GetServerInfo."""

    def __init__(self, max_in_flight_chunks: int) -> None:
        self.engine_slots = asyncio.Semaphore(max_in_flight_chunks)
        self.active_calls = 0
        self.in_flight_chunks = 0


class GenerateSession:
    def __init__(
        self,
        generator: ChunkGenerator,
        plan: GenerationPlan,
        load: SessionLoad,
        *,
        window: int,
        max_buffered_events: int = 1024,
    ) -> None:
        self._generator = generator
        self._plan = plan
        self._load = load
        self._window = asyncio.Semaphore(window)
        self._buffer_room = asyncio.Semaphore(max_buffered_events)
        self._events: asyncio.Queue[GenerationEvent | _End | _Failure] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._documents = 0
        self._input_closed = False
        self._ended = False
        self.id = uuid.uuid4().hex[:12]
        self.request_ids: set[str] = set()

    async def add_document(self, document_id: str, token_count: int, chunks: list[Chunk]) -> None:
        """Queue a document's chunks. Waits while the call's window is full, so a client that
        sends faster than the engine works is slowed down rather than buffered without bound."""
        progress = _DocumentProgress(document_id, len(chunks), token_count)
        number = self._documents
        self._documents += 1
        for chunk in chunks:
            await self._window.acquire()
            request_id = f"synthqa-{self.id}-{number}-{chunk.index}"
            task = asyncio.create_task(self._run_chunk(progress, chunk, request_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def close_input(self) -> None:
        """The client will send no more documents."""
        self._input_closed = True
        self._maybe_end()

    def fail(self, error: BaseException) -> None:
        """End the stream with an error once the events already buffered are out."""
        self._events.put_nowait(_Failure(error))

    async def events(self) -> AsyncIterator[GenerationEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failure):
                raise item.error
            self._buffer_room.release()
            yield item

    async def cancel(self) -> None:
        """Stop every chunk; cancelling a generation aborts its engine request."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _emit(self, event: GenerationEvent) -> None:
        await self._buffer_room.acquire()
        self._events.put_nowait(event)

    async def _run_chunk(self, progress: _DocumentProgress, chunk: Chunk, request_id: str) -> None:
        try:
            async with self._load.engine_slots:
                self._load.in_flight_chunks += 1
                self.request_ids.add(request_id)
                try:
                    await self._emit(
                        ChunkStarted(
                            progress.document_id,
                            chunk.index,
                            progress.chunk_count,
                            chunk.token_count,
                            chunk.char_start,
                            chunk.char_end,
                        )
                    )
                    stream = self._generator.generate(
                        progress.document_id, chunk, self._plan, request_id
                    )
                    async for event in stream:
                        if isinstance(event, ChunkCompleted):
                            progress.completed += 1
                            progress.pairs += event.pair_count
                        elif isinstance(event, ChunkFailed):
                            progress.failed += 1
                            progress.pairs += event.pair_count
                        await self._emit(event)
                finally:
                    self._load.in_flight_chunks -= 1
                    self.request_ids.discard(request_id)
            if progress.done:
                await self._emit(
                    DocumentCompleted(
                        progress.document_id,
                        progress.chunk_count,
                        progress.completed,
                        progress.failed,
                        progress.pairs,
                        progress.token_count,
                    )
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must end the call loudly, not hang it
            log.exception("chunk task %s crashed", request_id)
            self.fail(error)
        finally:
            self._window.release()
            # The done callback that drops this task from _tasks runs later; count it out now.
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._maybe_end()

    def _maybe_end(self) -> None:
        if self._input_closed and not self._tasks and not self._ended:
            self._ended = True
            self._events.put_nowait(_End())
