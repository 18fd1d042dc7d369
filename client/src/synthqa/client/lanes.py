"""Several Generate calls at once, fed from one source of documents, their events merged into
one stream. With several replicas behind a round_robin channel each call lands on another
replica, so the documents spread across them; a call that breaks hands back the documents it
took. Everything runs on one event loop: the calls are tasks, not threads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, cast

import grpc

from synthqa.v1 import synthqa_pb2 as pb

from .documents import Document
from .errors import SynthQAError
from .events import events_in
from .sources import DocumentSource

# Events waiting for the caller, per run: a slow caller holds the calls back (gRPC's flow
# control then reaches the server) instead of piling events up in memory.
MAX_WAITING_EVENTS = 1024


class GenerateCall(Protocol):
    """What a started Generate call must offer: its events, and a way to stop it."""

    def __aiter__(self) -> AsyncIterator[pb.GenerateResponse]: ...

    def cancel(self) -> bool: ...


StartCall = Callable[["Lane"], GenerateCall]


@dataclass(frozen=True)
class LostCall:
    """A call broke with UNAVAILABLE: the error, and the documents it had taken."""

    error: SynthQAError
    document_ids: list[str]


class SharedDocuments:
    """One source for several calls: each document goes to exactly one call, and a call that
    broke takes no more. With a `window`, a call takes another document only while its
    unfinished chunks number fewer (as the server's per-call window would hold them), so
    documents go to whichever replica has room: gRPC itself reads a request stream as fast as
    the connection takes it, which would hand everything to the first call."""

    def __init__(self, source: DocumentSource, window: int | None = None) -> None:
        self._source = source
        self._window = window

    def lane(self) -> Lane:
        return Lane(self)

    async def take(self, lane: Lane) -> Document | None:
        """The next document for `lane` once it has room; None when there is none for it."""
        while not lane.closed and self._window and lane.unfinished_chunks() >= self._window:
            lane.room.clear()
            await lane.room.wait()
        async with self._source.lock:
            if lane.closed:
                return None
            document = await self._source.next()
            if document is None:
                return None
            if lane.closed:
                # The call broke while the document was read: a later call sends it.
                self._source.give_back([document])
                return None
            lane.took(document)
            return document


@dataclass
class _Held:
    """A document a call took, until its document_completed."""

    document: Document
    chunks: int = 1  # until its first chunk_started says
    finished: int = 0


class Lane:
    """The documents one call takes, as the async iterator its request stream reads."""

    def __init__(self, shared: SharedDocuments) -> None:
        self._shared = shared
        self.closed = False
        self._held: dict[str, _Held] = {}
        # Set when the lane's unfinished chunks went down, or it closed.
        self.room = asyncio.Event()
        # gRPC only cancels a call whose request stream raised: the cause is kept, to be
        # raised to the caller instead of an opaque cancellation.
        self.failure: Exception | None = None
        # The task reading the next document for the call's request stream, while it waits.
        self._taking: asyncio.Task[object] | None = None

    def __aiter__(self) -> Lane:
        return self

    async def __anext__(self) -> Document:
        self._taking = asyncio.current_task()
        try:
            document = await self._shared.take(self)
        except Exception as error:
            self.failure = error
            raise
        finally:
            self._taking = None
        if document is None:
            raise StopAsyncIteration
        return document

    def took(self, document: Document) -> None:
        self._held[document.document_id] = _Held(document)

    def unfinished_chunks(self) -> int:
        return sum(max(held.chunks - held.finished, 0) for held in self._held.values())

    def settle(self, event: pb.GenerateResponse) -> None:
        """Follow the call's unfinished chunks from its events."""
        kind = event.WhichOneof("event")
        if kind == "record" or kind == "qa_pair" or kind is None:  # most events: nothing to do
            return
        message = getattr(event, kind)
        held = self._held.get(message.document_id)
        if held is None:
            return
        if kind == "chunk_started":
            held.chunks = len(held.document.chunk_indexes) or message.chunk_count
        elif kind == "document_completed":
            del self._held[message.document_id]
        else:
            held.finished += 1
        self.room.set()

    def close(self) -> list[str]:
        """Take no more; the ids of the documents taken and not completed."""
        self.closed = True
        self.room.set()
        if self._taking is not None:
            # grpc.aio leaves the request stream of a call that has already ended running:
            # one waiting for the caller's next document (which may come only once a document
            # completes, in the next round) would hold the source's lock from that round for
            # good. Its read goes on, shielded, for the next reader.
            self._taking.cancel()
        return list(self._held)


_END = object()


def run_lanes(
    start_call: StartCall, shared: SharedDocuments, streams: int
) -> AsyncGenerator[pb.GenerateResponse | LostCall, None]:
    """Events of `streams` calls as they come, and a LostCall for each call that broke with
    UNAVAILABLE. Any other failure cancels every call and is raised."""
    lanes = [shared.lane() for _ in range(streams)]
    if streams == 1:
        # One call needs no merging: its own events, with no layer between (per event, each
        # layer of async generators costs).
        return _lane_events(start_call, lanes[0])
    return _merged(start_call, lanes)


async def _merged(
    start_call: StartCall, lanes: list[Lane]
) -> AsyncGenerator[pb.GenerateResponse | LostCall, None]:
    merged: asyncio.Queue[object] = asyncio.Queue(MAX_WAITING_EVENTS)

    async def pump(lane: Lane) -> None:
        try:
            async with contextlib.aclosing(_lane_events(start_call, lane)) as events:
                async for item in events:
                    await merged.put(item)
            await merged.put(_END)
        except Exception as error:
            await merged.put(error)

    # Tasks copy the caller's context: its trace (the current span) reaches every call.
    tasks = [asyncio.create_task(pump(lane), name=f"synthqa-lane-{n}")
             for n, lane in enumerate(lanes)]
    try:
        running = len(tasks)
        while running:
            merged_item = await merged.get()
            if merged_item is _END:
                running -= 1
            elif isinstance(merged_item, Exception):
                raise merged_item
            else:
                yield cast(pb.GenerateResponse | LostCall, merged_item)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _lane_events(
    start_call: StartCall, lane: Lane
) -> AsyncGenerator[pb.GenerateResponse | LostCall, None]:
    call = start_call(lane)
    try:
        async for message in call:
            for event in events_in(message):
                lane.settle(event)
                yield event
    except grpc.RpcError as error:
        if lane.failure is not None:
            raise lane.failure from None
        failure = SynthQAError.from_rpc_error(error)
        if failure.code != grpc.StatusCode.UNAVAILABLE:
            raise failure from None
        yield LostCall(failure, lane.close())
    except asyncio.CancelledError:
        # grpc.aio cancels the call locally when the request stream fails; unless our own
        # task is being cancelled, that failure is what the caller must see.
        task = asyncio.current_task()
        if lane.failure is not None and task is not None and task.cancelling() == 0:
            raise lane.failure from None
        raise
    finally:
        lane.close()
        call.cancel()  # no-op when finished; stops the server's work when abandoned
