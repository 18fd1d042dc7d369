"""One generation call: admits documents, runs their chunks concurrently within a per-call
window and the server-wide cap, and merges every chunk's events into one stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from synthqa.contract.options import MAX_PASSES, GenerationOptions

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
    StopReason,
)
from .generator import ChunkGenerator
from .planner import GenerationPlan
from .telemetry import CallTelemetry

log = logging.getLogger(__name__)


@dataclass
class _DocumentProgress:
    document_id: str
    number: int
    chunks: list[Chunk]
    total_chunks: int
    token_count: int
    # Chunk runs done, over every pass; and those of the current pass.
    completed: int = 0
    failed: int = 0
    done_in_pass: int = 0
    records: int = 0
    counts: RecordCounts = RecordCounts()
    pass_index: int = 0
    cached: int = 0
    records_before_pass: int = 0
    passes_without_records: int = 0

    @property
    def pass_done(self) -> bool:
        return self.done_in_pass == len(self.chunks)

    def stop_reason(self, options: GenerationOptions) -> StopReason | None:
        """Why the document is finished after the pass just done, or None for another pass."""
        if not options.target_records:
            return StopReason.COMPLETE
        if self.records >= options.target_records:
            return StopReason.TARGET_MET
        counts = self.counts
        if counts.generated and counts.invalid / counts.generated > options.max_invalid_fraction:
            return StopReason.INVALID_FRACTION
        if self.passes_without_records >= options.patience:
            return StopReason.PATIENCE
        if self.pass_index + 1 >= MAX_PASSES:
            return StopReason.MAX_PASSES
        return None


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
            document_id, self._documents, chunks, total_chunks or len(chunks), token_count)
        self._documents += 1
        self._telemetry.document_chunked(document_id, token_count, len(chunks),
                                         progress.total_chunks)
        waited = await self._start_pass(progress)
        self._telemetry.document_admitted(document_id, waited)

    async def _start_pass(self, progress: _DocumentProgress) -> float:
        """Start a pass over the document's chunks, each as its window slot frees; returns
        the seconds spent waiting for slots."""
        waited = 0.0
        for chunk in progress.chunks:
            if self._window.locked():
                began = time.monotonic()
                await self._window.acquire()
                waited += time.monotonic() - began
            else:
                await self._window.acquire()
            request_id = f"synthqa-{self.id}-{progress.number}-{chunk.index}"
            if progress.pass_index:
                request_id += f"-p{progress.pass_index}"
            trace_headers = self._telemetry.chunk_queued(progress.document_id, chunk)
            self._track(self._run_chunk(progress, chunk, request_id, trace_headers))
        return waited

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _next_pass(self, progress: _DocumentProgress) -> None:
        try:
            await self._start_pass(progress)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must end the call loudly, not hang it
            log.exception("a further pass over a document crashed")
            self.fail(error)
        finally:
            self._tasks.discard(asyncio.current_task())
            self._maybe_end()

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
        """The events one at a time."""
        async with contextlib.aclosing(self.event_batches(1)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def event_batches(self, most: int) -> AsyncGenerator[list[GenerationEvent], None]:
        """The events in batches of at most `most`: each is what was ready, oldest first, when
        the reader came back for more; a batch is never waited for to fill. A window slot
        freed behind an event is released once that event's batch has been handed over, as it
        is one event at a time."""
        while True:
            batch, freed, last = self._take_ready(await self._events.get(), most)
            if batch:
                yield batch
            for _ in range(freed):
                self._window.release()
            if isinstance(last, _End):
                return
            if isinstance(last, _Failure):
                raise last.error

    def _take_ready(
        self, item: _QueueItem, most: int
    ) -> tuple[list[GenerationEvent], int, _End | _Failure | None]:
        """From `item` on, what the queue holds now: up to `most` events, the window slots
        freed behind them, and the end or failure if one was reached."""
        queue = self._events
        batch: list[GenerationEvent] = []
        freed = 0
        while True:
            if isinstance(item, _ReleaseWindowSlot):
                if batch:
                    freed += 1
                else:
                    self._window.release()
            elif isinstance(item, _End | _Failure):
                return batch, freed, item
            else:
                batch.append(item)
            if len(batch) == most or queue.empty():
                return batch, freed, None
            item = queue.get_nowait()

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
                            document_id=progress.document_id,
                            chunk_index=chunk.index,
                            chunk_count=progress.total_chunks,
                            token_count=chunk.token_count,
                            char_start=chunk.char_start,
                            char_end=chunk.char_end,
                            pass_index=progress.pass_index,
                        )
                    )
                    stream = self._generator.generate(
                        progress.document_id, chunk, self._plan, request_id, trace_headers,
                        self._curator, progress.pass_index,
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
            # Decide "last chunk of the pass" with no await in between, so exactly one chunk
            # sends DocumentCompleted or starts the next pass.
            if isinstance(outcome, ChunkCompleted):
                progress.completed += 1
            else:
                progress.failed += 1
            progress.done_in_pass += 1
            progress.cached += isinstance(outcome, ChunkCompleted) and outcome.cached
            progress.records += outcome.pair_count
            progress.counts += outcome.counts
            if progress.pass_done:
                self._pass_done(progress)
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

    def _pass_done(self, progress: _DocumentProgress) -> None:
        if progress.records == progress.records_before_pass:
            progress.passes_without_records += 1
        else:
            progress.passes_without_records = 0
        reason = progress.stop_reason(self._plan.options)
        if reason is None:
            progress.pass_index += 1
            progress.done_in_pass = 0
            progress.records_before_pass = progress.records
            self._track(self._next_pass(progress))
            return
        self._emit(DocumentCompleted(
            document_id=progress.document_id,
            chunk_count=progress.completed + progress.failed,
            completed_chunk_count=progress.completed,
            failed_chunk_count=progress.failed,
            pair_count=progress.records,
            token_count=progress.token_count,
            counts=progress.counts,
            stop_reason=reason,
            pass_count=progress.pass_index + 1,
            cached_chunk_count=progress.cached,
        ))

    def _maybe_end(self) -> None:
        if self._input_closed and not self._tasks and not self._ended:
            self._ended = True
            self._events.put_nowait(_End() if self._end_error is None
                                    else _Failure(self._end_error))
