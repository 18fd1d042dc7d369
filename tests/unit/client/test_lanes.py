"""Several calls fed from one source: each document goes to one call, a broken call hands its
documents back, and other failures end the run. The real calls, on two replicas, are in
tests/e2e/test_replicas.py."""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Iterable, Iterator

import grpc
import pytest

from synthqa.client.documents import Document
from synthqa.client.errors import SynthQAError
from synthqa.client.lanes import LostCall, SharedDocuments, run_lanes
from synthqa.v1 import synthqa_pb2 as pb


class Broken(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "scripted"


class ScriptedCall:
    """Answers each document it takes with one completion; breaks after `break_after`."""

    def __init__(self, documents: Iterable[Document], break_after: int | None,
                 code: grpc.StatusCode) -> None:
        self.documents = iter(documents)
        self.break_after, self.code = break_after, code
        self.cancelled = False

    def __iter__(self) -> Iterator[pb.GenerateResponse]:
        for taken, document in enumerate(self.documents, start=1):
            if taken == self.break_after:
                raise Broken(self.code)
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id))

    def cancel(self) -> None:
        self.cancelled = True


def documents(count: int) -> Iterator[Document]:
    return (Document(f"d{n}", "text") for n in range(count))


def starter(
    break_first_after: int | None = None, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
) -> tuple[list[ScriptedCall], object]:
    calls: list[ScriptedCall] = []
    lock = threading.Lock()

    def start(lane: Iterable[Document]) -> ScriptedCall:
        with lock:
            call = ScriptedCall(lane, break_first_after if not calls else None, code)
            calls.append(call)
        return call
    return calls, start


def test_every_document_goes_to_exactly_one_call() -> None:
    calls, start = starter()
    shared = SharedDocuments([Document("retry", "text")], documents(50))
    events = list(run_lanes(start, shared, streams=3))  # type: ignore[arg-type]
    done = sorted(e.document_completed.document_id for e in events)
    assert done == sorted(["retry"] + [f"d{n}" for n in range(50)])
    assert len(calls) == 3 and shared.exhausted


def test_a_call_broken_with_unavailable_hands_back_what_it_took() -> None:
    calls, start = starter(break_first_after=3)
    shared = SharedDocuments([], documents(20))
    items = list(run_lanes(start, shared, streams=2))  # type: ignore[arg-type]
    [lost] = [item for item in items if isinstance(item, LostCall)]
    assert lost.error.code == grpc.StatusCode.UNAVAILABLE
    done = {e.document_completed.document_id for e in items if isinstance(e, pb.GenerateResponse)}
    # The third document taken was lost with the call; the rest went through the other one.
    assert len(lost.document_ids) == 1 and not set(lost.document_ids) & done
    assert done | set(lost.document_ids) == {f"d{n}" for n in range(20)}


class ReadingAhead:
    """Like gRPC: reads its documents on a thread of its own, as fast as they come; answers
    each with two chunks."""

    def __init__(self, documents: Iterable[Document], taken: list[int]) -> None:
        self.queue: queue.Queue[Document | None] = queue.Queue()
        self.taken, self.held = taken, 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(documents,), daemon=True).start()

    def _read(self, documents: Iterable[Document]) -> None:
        for document in documents:
            with self.lock:
                self.held += 1
                self.taken.append(self.held)
            self.queue.put(document)
        self.queue.put(None)

    def __iter__(self) -> Iterator[pb.GenerateResponse]:
        while (document := self.queue.get()) is not None:
            yield pb.GenerateResponse(chunk_started=pb.ChunkStarted(
                document_id=document.document_id, chunk_count=2))
            time.sleep(0.001)
            with self.lock:
                self.held -= 1
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id))

    def cancel(self) -> None:
        pass


@pytest.mark.parametrize("window", [None, 2])
def test_with_a_window_a_call_holds_only_what_fits(window: int | None) -> None:
    taken: list[int] = []  # documents a call held, each time it took one
    shared = SharedDocuments([], documents(60), window=window)
    items = list(run_lanes(lambda lane: ReadingAhead(lane, taken),  # type: ignore[arg-type]
                           shared, streams=2))
    assert sum(item.HasField("document_completed") for item in items) == 60
    if window is None:
        assert max(taken) > 10, "without a window gRPC would take everything at once"
    else:
        # Until its chunk_started says two, a document counts as one chunk: at most two are
        # taken, and once they are known, one fills the window.
        assert max(taken) <= 2


def test_any_other_failure_ends_the_run_and_cancels_every_call() -> None:
    calls, start = starter(break_first_after=2, code=grpc.StatusCode.INVALID_ARGUMENT)
    shared = SharedDocuments([], documents(1000))
    with pytest.raises(SynthQAError) as failure:
        list(run_lanes(start, shared, streams=2))  # type: ignore[arg-type]
    assert failure.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert all(call.cancelled for call in calls)


def test_a_source_that_waits_for_the_callers_events_does_not_block_them() -> None:
    """Like a caller that sends its next document only after seeing the first one's events."""
    first_seen = threading.Event()

    def waiting_source() -> Iterator[Document]:
        yield Document("d0", "text")
        assert first_seen.wait(timeout=10), "the first document's events never came through"
        yield Document("d1", "text")

    calls, start = starter()
    shared = SharedDocuments([], waiting_source())
    done = []
    for item in run_lanes(start, shared, streams=1):  # type: ignore[arg-type]
        assert isinstance(item, pb.GenerateResponse)
        done.append(item.document_completed.document_id)
        first_seen.set()
    assert done == ["d0", "d1"]


def test_the_calls_run_in_the_callers_context() -> None:
    """The caller's trace (OpenTelemetry keeps the current span in a context variable) must
    reach each call."""
    current = contextvars.ContextVar("current", default="none")
    seen: list[str] = []

    def start(lane: Iterable[Document]) -> ScriptedCall:
        seen.append(current.get())
        return ScriptedCall(lane, None, grpc.StatusCode.OK)

    current.set("the caller's span")
    list(run_lanes(start, SharedDocuments([], documents(4)), streams=2))  # type: ignore[arg-type]
    assert seen == ["the caller's span"] * 2


class Gated:
    """A source whose next document comes only once `release` is set, as from a slow disk."""

    def __init__(self) -> None:
        self.reading, self.release = threading.Event(), threading.Event()
        self._documents = iter([Document("slow", "text"), Document("after", "text")])

    def __iter__(self) -> Gated:
        return self

    def __next__(self) -> Document:
        self.reading.set()
        self.release.wait()
        return next(self._documents)


class LateAfterReading(threading.Condition):
    """The shared state's lock, entered slowly by the reader once its document has come: the
    thread switch a loaded machine makes there (CI lost a document to it)."""

    def __init__(self, source: Gated) -> None:
        super().__init__()
        self._source = source

    def __enter__(self) -> bool:
        if threading.current_thread().name == "reader" and self._source.release.is_set():
            time.sleep(0.2)
        return super().__enter__()


def test_a_document_read_while_its_call_broke_goes_to_the_next_round() -> None:
    source = Gated()
    shared = SharedDocuments([], source)
    shared._room = LateAfterReading(source)
    lane = shared.lane()
    pulled: list[object] = []
    reader = threading.Thread(target=lambda: pulled.append(next(lane, None)), name="reader")
    reader.start()  # as gRPC's thread reads the request stream
    assert source.reading.wait(5)
    lane.close()  # the call broke while its next document was still being read
    left: list[list[Document]] = []
    collector = threading.Thread(target=lambda: left.append(shared.left_over()))
    collector.start()  # the round ends and collects what no call took
    time.sleep(0.1)
    source.release.set()
    reader.join(5)
    collector.join(5)
    assert pulled == [None]
    assert left == [[Document("slow", "text")]]
    # The round is over: a call of it pulls nothing more from the caller's documents.
    assert next(lane, None) is None
    assert next(source) == Document("after", "text")
