"""One generation call: admits documents, runs their chunks concurrently within a per-call
window and the server-wide cap, and merges every chunk's events into one stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from ..quality.curator import Curator
from ..text.chunker import Chunk
from .errors import ServiceError
from .events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    GenerationEvent,
    RecordCounts,
)
from .generator import ChunkGenerator
from .planner import GenerationPlan
from .telemetry import CallTelemetry

log = logging.getLogger(__name__)


@dataclass
class _DocumentProgress:
    document_id: str
    # Chunks this call generates: all of the document's, or those the client picked.
    chunk_count: int
    total_chunks: int
    token_count: int
    completed: int = 0
    failed: int = 0
    pairs: int = 0
    counts: RecordCounts = RecordCounts()

    @property
    def done(self) -> bool:
        return self.completed + self.failed == self.chunk_count


class _End:
    """Sentinel: the stream is over."""


class _ReleaseWindowSlot:
    """Marker after a chunk's last event: once the reader gets here, the chunk's window slot
    is free. Slots are freed by reading, not by finishing, so a call's unread events are
    bounded by its window while the engine never waits on a slow reader."""


@dataclass
class _Failure:
    error: BaseException


class ServerLoad:
    """Server-wide counters shared by every call's session, read by GetServerInfo."""

    def __init__(self, max_in_flight_chunks: int) -> None:
        self.engine_slots = asyncio.Semaphore(max_in_flight_chunks)
        self.active_calls = 0
        self.calls_begun = 0
        self.in_flight_chunks = 0


_QueueItem = GenerationEvent | _ReleaseWindowSlot | _End | _Failure


class CallSession:
    def __init__(
        self,
        generator: ChunkGenerator,
        plan: GenerationPlan,
        load: ServerLoad,
        *,
        window: int,
        telemetry: CallTelemetry | None = None,
        curator: Curator | None = None,
    ) -> None:
        self._generator = generator
        self._curator = curator
        self._telemetry = telemetry or CallTelemetry()
        self._plan = plan
        self._load = load
        self._window = asyncio.Semaphore(window)
        self._events: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._documents = 0
        self._input_closed = False
        self._ended = False
        # Set by stop_taking: the stream ends with this error once the work taken is done.
        self._end_error: ServiceError | None = None
        # The task reading the client's documents, so stop_taking can end it.
        self.feeder: asyncio.Task[None] | None = None
        self.id = uuid.uuid4().hex[:12]
        # Engine requests started and not seen to finish: aborted when the call ends.
        self.open_request_ids: set[str] = set()

    async def add_document(
        self, document_id: str, token_count: int, chunks: list[Chunk],
        total_chunks: int | None = None,
    ) -> None:
        """Queue a document's chunks (some of `total_chunks`, or all). Waits while the call's
        window is full, so a client that sends faster than the engine works, or reads slower,
        is slowed down rather than buffered without bound."""
        progress = _DocumentProgress(
            document_id, len(chunks), total_chunks or len(chunks), token_count)
        number = self._documents
        self._documents += 1
        telemetry = self._telemetry
        telemetry.document_chunked(document_id, token_count, len(chunks), progress.total_chunks)
        waited = 0.0
        for chunk in chunks:
            if self._window.locked():
                began = time.monotonic()
                await self._window.acquire()
                waited += time.monotonic() - began
            else:
                await self._window.acquire()
            request_id = f"synthqa-{self.id}-{number}-{chunk.index}"
            trace_headers = telemetry.chunk_queued(document_id, chunk)
            task = asyncio.create_task(
                self._run_chunk(progress, chunk, request_id, trace_headers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        telemetry.document_admitted(document_id, waited)

    def close_input(self) -> None:
        """The client will send no more documents."""
        self._input_closed = True
        self._maybe_end()

    def stop_taking(self, error: ServiceError) -> None:
        """Take no more documents: those taken finish and stream their events, then the
        stream ends with `error` (a limit reached, the server draining), so the client knows
        exactly which documents were done (those with DocumentCompleted). A stream whose
        client already sent everything refuses nothing and ends as usual."""
        if self._input_closed:
            return
        if self._end_error is None:
            self._end_error = error
        if self.feeder is not None and self.feeder is not asyncio.current_task():
            self.feeder.cancel()
        self.close_input()

    def fail(self, error: BaseException) -> None:
        """End the stream with an error once the events already queued are out."""
        self._events.put_nowait(_Failure(error))

    async def events(self) -> AsyncIterator[GenerationEvent]:
        while True:
            item = await self._events.get()
            if isinstance(item, _ReleaseWindowSlot):
                self._window.release()
            elif isinstance(item, _End):
                return
            elif isinstance(item, _Failure):
                raise item.error
            else:
                yield item

    async def cancel(self) -> None:
        """Stop every chunk; closing a generation aborts its engine request."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _emit(self, event: GenerationEvent) -> None:
        self._telemetry.event(event)
        self._events.put_nowait(event)

    async def _run_chunk(
        self, progress: _DocumentProgress, chunk: Chunk, request_id: str,
        trace_headers: Mapping[str, str] | None,
    ) -> None:
        emit = self._emit
        outcome: ChunkCompleted | ChunkFailed | None = None
        try:
            async with self._load.engine_slots:
                self._load.in_flight_chunks += 1
                self.open_request_ids.add(request_id)
                try:
                    emit(
                        ChunkStarted(
                            progress.document_id,
                            chunk.index,
                            progress.total_chunks,
                            chunk.token_count,
                            chunk.char_start,
                            chunk.char_end,
                        )
                    )
                    stream = self._generator.generate(
                        progress.document_id, chunk, self._plan, request_id, trace_headers,
                        self._curator,
                    )
                    # aclosing: a cancelled task closes the stream now, which aborts the engine
                    # request, instead of whenever the garbage collector gets to it.
                    async with contextlib.aclosing(stream):
                        async for event in stream:
                            emit(event)
                            if isinstance(event, ChunkCompleted | ChunkFailed):
                                outcome = event
                    self.open_request_ids.discard(request_id)
                finally:
                    self._load.in_flight_chunks -= 1
            if outcome is None:
                raise RuntimeError("the chunk generator ended without an outcome")
            # Decide "last chunk of the document" with no await in between, so exactly one
            # chunk sends DocumentCompleted.
            if isinstance(outcome, ChunkCompleted):
                progress.completed += 1
            else:
                progress.failed += 1
            progress.pairs += outcome.pair_count
            progress.counts += outcome.counts
            if progress.done:
                emit(
                    DocumentCompleted(
                        progress.document_id,
                        progress.chunk_count,
                        progress.completed,
                        progress.failed,
                        progress.pairs,
                        progress.token_count,
                        progress.counts,
                    )
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must end the call loudly, not hang it
            log.exception("chunk task %s crashed", request_id)
            self.fail(error)
        finally:
            self._events.put_nowait(_ReleaseWindowSlot())
            # The done callback that drops this task from _tasks runs later; count it out now.
            self._tasks.discard(asyncio.current_task())
            self._maybe_end()

    def _maybe_end(self) -> None:
        if self._input_closed and not self._tasks and not self._ended:
            self._ended = True
            self._events.put_nowait(_End() if self._end_error is None
                                    else _Failure(self._end_error))
