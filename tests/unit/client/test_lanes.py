"""Several calls fed from one source: each document goes to one call, a broken call hands its
documents back, and other failures end the run. The real calls, on two replicas, are in
tests/e2e/test_replicas.py; both clients over a stand-in server in test_failover.py."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from synthqa.client.documents import Document
from synthqa.client.errors import SynthQAError
from synthqa.client.lanes import Lane, LostCall, SharedDocuments, run_lanes
from synthqa.client.sources import DocumentSource
from synthqa.v1 import synthqa_pb2 as pb


class Broken(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "scripted"


class ScriptedCall:
    """Answers each document it takes with one completion; breaks when it takes its
    `break_at`-th document."""

    def __init__(self, documents: Lane, break_at: int | None, code: grpc.StatusCode) -> None:
        self.documents = documents
        self.break_at, self.code = break_at, code
        self.cancelled = False

    async def __aiter__(self) -> AsyncIterator[pb.GenerateResponse]:
        taken = 0
        async for document in self.documents:
            taken += 1
            if taken == self.break_at:
                raise Broken(self.code)
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id))
            await asyncio.sleep(0)  # let the other calls take their turn, as on a network

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def documents(count: int) -> Iterator[Document]:
    return (Document(f"d{n}", "text") for n in range(count))


def starter(
    break_first_at: int | None = None, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
) -> tuple[list[ScriptedCall], object]:
    calls: list[ScriptedCall] = []

    def start(lane: Lane) -> ScriptedCall:
        call = ScriptedCall(lane, break_first_at if not calls else None, code)
        calls.append(call)
        return call
    return calls, start


async def collect(start: object, shared: SharedDocuments, streams: int) -> list[object]:
    return [item async for item in run_lanes(start, shared, streams)]  # type: ignore[arg-type]


def test_every_document_goes_to_exactly_one_call() -> None:
    calls, start = starter()
    source = DocumentSource(documents(50))
    source.give_back([Document("retry", "text")])
    events = asyncio.run(collect(start, SharedDocuments(source), streams=3))
    done = sorted(e.document_completed.document_id for e in events)  # type: ignore[attr-defined]
    assert done == sorted(["retry"] + [f"d{n}" for n in range(50)])
    assert len(calls) == 3 and source.exhausted


def test_a_call_broken_with_unavailable_hands_back_what_it_took() -> None:
    calls, start = starter(break_first_at=3)
    items = asyncio.run(collect(start, SharedDocuments(DocumentSource(documents(20))), 2))
    [lost] = [item for item in items if isinstance(item, LostCall)]
    assert lost.error.code == grpc.StatusCode.UNAVAILABLE
    done = {e.document_completed.document_id for e in items if isinstance(e, pb.GenerateResponse)}
    # The third document taken was lost with the call; the rest went through the other one.
    assert len(lost.document_ids) == 1 and not set(lost.document_ids) & done
    assert done | set(lost.document_ids) == {f"d{n}" for n in range(20)}


class ReadingAhead:
    """Like gRPC: reads its request stream on a task of its own, as fast as it may; answers
    each document with two chunks, one at a time."""

    def __init__(self, documents: Lane, taken: list[int]) -> None:
        self.documents, self.taken, self.held = documents, taken, 0
        self.queue: asyncio.Queue[Document | None] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for document in self.documents:
            self.held += 1
            self.taken.append(self.held)
            await self.queue.put(document)
        await self.queue.put(None)

    async def __aiter__(self) -> AsyncIterator[pb.GenerateResponse]:
        while (document := await self.queue.get()) is not None:
            yield pb.GenerateResponse(chunk_started=pb.ChunkStarted(
                document_id=document.document_id, chunk_count=2))
            await asyncio.sleep(0.001)
            self.held -= 1
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id))

    def cancel(self) -> bool:
        self.reader.cancel()
        return True


@pytest.mark.parametrize("window", [None, 2])
def test_with_a_window_a_call_holds_only_what_fits(window: int | None) -> None:
    taken: list[int] = []  # documents a call held, each time it took one
    shared = SharedDocuments(DocumentSource(documents(60)), window=window)
    items = asyncio.run(collect(lambda lane: ReadingAhead(lane, taken), shared, streams=2))
    assert sum(item.HasField("document_completed") for item in items) == 60  # type: ignore[attr-defined]
    if window is None:
        assert max(taken) > 10, "without a window gRPC would take everything at once"
    else:
        # Until its chunk_started says two, a document counts as one chunk: at most two are
        # taken, and once they are known, one fills the window.
        assert max(taken) <= 2


def test_any_other_failure_ends_the_run_and_cancels_every_call() -> None:
    calls, start = starter(break_first_at=2, code=grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(SynthQAError) as failure:
        asyncio.run(collect(start, SharedDocuments(DocumentSource(documents(1000))), 2))
    assert failure.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert all(call.cancelled for call in calls)


def test_a_source_that_waits_for_the_callers_events_does_not_block_them() -> None:
    """Like a caller that sends its next document only after seeing the first one's events."""
    async def scenario() -> list[str]:
        first_seen = asyncio.Event()

        async def waiting_source() -> AsyncIterator[Document]:
            yield Document("d0", "text")
            await asyncio.wait_for(first_seen.wait(), timeout=10)
            yield Document("d1", "text")

        _, start = starter()
        done = []
        async for item in run_lanes(start, SharedDocuments(DocumentSource(waiting_source())),  # type: ignore[arg-type]
                                    streams=1):
            assert isinstance(item, pb.GenerateResponse)
            done.append(item.document_completed.document_id)
            first_seen.set()
        return done

    assert asyncio.run(scenario()) == ["d0", "d1"]


def test_the_calls_run_in_the_callers_context() -> None:
    """The caller's trace (OpenTelemetry keeps the current span in a context variable) must
    reach each call."""
    current = contextvars.ContextVar("current", default="none")
    seen: list[str] = []

    def start(lane: Lane) -> ScriptedCall:
        seen.append(current.get())
        return ScriptedCall(lane, None, grpc.StatusCode.OK)

    async def scenario() -> None:
        current.set("the caller's span")
        await collect(start, SharedDocuments(DocumentSource(documents(4))), streams=2)

    asyncio.run(scenario())
    assert seen == ["the caller's span"] * 2


def test_a_document_read_while_its_call_broke_goes_to_a_later_call() -> None:
    """gRPC reads a request stream on a task of its own, which may still be reading when its
    call has ended and the round is over (grpc.aio leaves it running): it stops waiting when
    its call's lane closes, what it was reading is not lost, and nobody else gets it twice."""
    async def scenario() -> None:
        release = asyncio.Event()

        async def slow_source() -> AsyncIterator[Document]:
            await release.wait()  # as from a slow disk
            yield Document("slow", "text")
            yield Document("after", "text")

        source = DocumentSource(slow_source())
        old_round = SharedDocuments(source).lane()
        reading = asyncio.ensure_future(anext(old_round, None))
        await asyncio.sleep(0.01)
        old_round.close()  # the call broke while its next document was still being read
        with pytest.raises(asyncio.CancelledError):
            await reading
        new_round = SharedDocuments(source).lane()
        taking = asyncio.ensure_future(anext(new_round, None))
        await asyncio.sleep(0.01)
        release.set()
        assert await taking == Document("slow", "text")
        assert await anext(new_round, None) == Document("after", "text")
        assert await anext(new_round, None) is None and source.exhausted

    asyncio.run(scenario())


def test_a_read_cut_short_by_cancellation_is_not_lost() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def slow_source() -> AsyncIterator[Document]:
            await release.wait()
            yield Document("slow", "text")

        read: list[Document] = []
        source = DocumentSource(slow_source(), on_read=read.append)
        first = asyncio.ensure_future(source.next())
        await asyncio.sleep(0.01)
        first.cancel()
        release.set()
        assert await source.next() == Document("slow", "text")
        assert read == [Document("slow", "text")], "followed once, by the reader that got it"
        assert await source.next() is None

    asyncio.run(scenario())
