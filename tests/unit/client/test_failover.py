"""A failover as the channel can see it, against a stand-in server on a free port: the call
on a replica breaks after it answered, and the next calls break before answering anything
(the dead replica's connection still looked ready to the channel). Both clients must finish
the stream, every chunk once, without spending their retry rounds on those calls (each test
runs with both clients). The real failover, two servers and a SIGKILL, is in
tests/e2e/test_replicas.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from synthqa.client import Document, SynthQAClient, SynthQAError
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

CHUNKS = 2
PAIRS = 2


def chunk_events(document_id: str, chunk_index: int) -> Iterator[pb.GenerateResponse]:
    yield pb.GenerateResponse(chunk_started=pb.ChunkStarted(
        document_id=document_id, chunk_index=chunk_index, chunk_count=CHUNKS))
    for pair_index in range(PAIRS):
        yield pb.GenerateResponse(qa_pair=pb.QaPair(
            document_id=document_id, chunk_index=chunk_index, pair_index=pair_index,
            question="q?", answer="a"))
    yield pb.GenerateResponse(chunk_completed=pb.ChunkCompleted(
        document_id=document_id, chunk_index=chunk_index, pair_count=PAIRS))


class FailsOver(pb_grpc.SynthQAServiceServicer):
    """Call 1 starts the first document's chunk 0, sends one pair and breaks; the next
    `unanswered` calls break before sending anything; then every call answers in full."""

    def __init__(self, unanswered: int) -> None:
        self.unanswered = unanswered
        self.calls = 0
        self._lock = threading.Lock()

    def GetServerInfo(self, request: pb.GetServerInfoRequest,  # noqa: N802 - the proto's name
                      context: grpc.ServicerContext) -> pb.GetServerInfoResponse:
        return pb.GetServerInfoResponse()

    def Generate(self, requests: Iterator[pb.GenerateRequest],  # noqa: N802 - the proto's name
                 context: grpc.ServicerContext) -> Iterator[pb.GenerateResponse]:
        with self._lock:
            self.calls += 1
            call = self.calls
        if 1 < call <= 1 + self.unanswered:
            context.abort(grpc.StatusCode.UNAVAILABLE, "Stream removed")
        next(requests)  # the options
        for request in requests:
            part = request.document
            if call == 1:
                yield next(chunk_events(part.document_id, 0))
                yield pb.GenerateResponse(qa_pair=pb.QaPair(
                    document_id=part.document_id, chunk_index=0, pair_index=0))
                context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")
            chunk_indexes = part.chunk_indexes or range(CHUNKS)
            for chunk_index in chunk_indexes:
                yield from chunk_events(part.document_id, chunk_index)
            # As a server counts: the chunks of this call.
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=part.document_id, chunk_count=CHUNKS,
                completed_chunk_count=len(chunk_indexes),
                pair_count=len(chunk_indexes) * PAIRS))


DOCUMENTS = [Document(f"d{n}", "text") for n in range(3)]
# More unanswered calls than retry rounds: the old count gave up on the second.
UNANSWERED = 3


def assert_every_chunk_once(events: list[pb.GenerateResponse]) -> None:
    pairs = [(e.qa_pair.document_id, e.qa_pair.chunk_index, e.qa_pair.pair_index)
             for e in events if e.HasField("qa_pair")]
    assert sorted(pairs) == sorted((d.document_id, c, p) for d in DOCUMENTS
                                   for c in range(CHUNKS) for p in range(PAIRS))
    completed = [e.document_completed for e in events if e.HasField("document_completed")]
    assert sorted(c.document_id for c in completed) == [d.document_id for d in DOCUMENTS]
    counts = [(c.completed_chunk_count, c.failed_chunk_count, c.pair_count) for c in completed]
    assert counts == [(CHUNKS, 0, CHUNKS * PAIRS)] * len(DOCUMENTS)


def slowly(documents: list[Document]) -> Iterator[Document]:
    """Documents read as from a slow disk: the first call breaks before it takes the rest,
    which then go out whole in a later round."""
    for n, document in enumerate(documents):
        if n:
            time.sleep(0.3)
        yield document


@pytest.mark.parametrize("source", [list, slowly], ids=["ready", "slow"])
def test_a_client_finishes_through_calls_that_broke_before_answering(
    serve, connect, source  # noqa: ANN001
) -> None:
    servicer = FailsOver(UNANSWERED)
    with connect(serve(servicer), timeout=30, retries=2, retry_wait=10) as client:
        events = list(client.generate(source(DOCUMENTS)))
    assert_every_chunk_once(events)
    assert servicer.calls == 2 + UNANSWERED


def test_two_streams_finish_when_one_breaks_after_answering(serve, connect) -> None:  # noqa: ANN001
    """The first call breaks mid-chunk; the other call and the retry round finish the rest,
    each chunk once (the stand-in's per-call window is 0: no window)."""
    servicer = FailsOver(0)
    with connect(serve(servicer), timeout=30, retries=2, retry_wait=10) as client:
        events = list(client.generate(slowly(DOCUMENTS), streams=2))
    assert_every_chunk_once(events)


def test_calls_that_break_unanswered_still_need_a_retry_round_left(serve, connect) -> None:  # noqa: ANN001
    servicer = FailsOver(UNANSWERED)
    with connect(serve(servicer), timeout=30, retries=0, retry_wait=10) as client, \
            pytest.raises(SynthQAError) as broke:
        list(client.generate(DOCUMENTS))
    assert broke.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1


class TurnsAwayEveryCall(pb_grpc.SynthQAServiceServicer):
    """Refuses every call at once, as the server's token check does."""

    def _refuse(self, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")

    def GetServerInfo(self, request: pb.GetServerInfoRequest,  # noqa: N802 - the proto's name
                      context: grpc.ServicerContext) -> pb.GetServerInfoResponse:
        self._refuse(context)
        raise AssertionError("unreachable")

    def Generate(self, requests: Iterator[pb.GenerateRequest],  # noqa: N802 - the proto's name
                 context: grpc.ServicerContext) -> Iterator[pb.GenerateResponse]:
        self._refuse(context)
        yield from ()


def test_a_stream_refused_at_once_reports_the_refusal_not_a_lost_server(
    serve, connect  # noqa: ANN001
) -> None:
    """grpc.aio loses the status of a call that ends while the client is still writing, about
    half the time (grpc/grpc#36066): the refusal must still reach the caller, every time."""
    target = serve(TurnsAwayEveryCall())
    with connect(target, timeout=30, retries=2, retry_wait=10) as client:
        for _ in range(20):
            with pytest.raises(SynthQAError) as refused:
                list(client.generate([Document("d", "text " * 1000)]))
            assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED, refused.value


class BreaksWithItsWindowFull(FailsOver):
    """Call 1 reads two documents (a caller bounding itself to two unfinished ones has none
    left to send), starts the first one's chunk and breaks; later calls answer in full."""

    def __init__(self) -> None:
        super().__init__(unanswered=0)

    def Generate(self, requests: Iterator[pb.GenerateRequest],  # noqa: N802 - the proto's name
                 context: grpc.ServicerContext) -> Iterator[pb.GenerateResponse]:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call > 1:
            yield from super().Generate(requests, context)
            return
        next(requests)  # the options
        first = next(requests).document
        next(requests)
        yield next(chunk_events(first.document_id, 0))
        context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")


class Window:
    """Lets a document out only while fewer than `limit` are unfinished, as a caller that
    bounds what it holds does (synthqa.ray's GenerateRecords)."""

    def __init__(self, limit: int) -> None:
        self._limit, self._open = limit, 0
        self._changed = threading.Condition()

    def feed(self, documents: list[Document]) -> Iterator[Document]:
        for document in documents:
            with self._changed:
                self._changed.wait_for(lambda: self._open < self._limit)
                self._open += 1
            yield document

    def completed(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()


def test_a_call_lost_while_the_caller_holds_back_documents_is_retried(serve) -> None:  # noqa: ANN001
    """The lost call's request stream was waiting for the caller's next document, which comes
    only once one completes: its retry round must not wait behind that read (it did, holding
    the documents' lock forever: grpc.aio does not cancel the request stream of a call that
    already ended)."""
    window = Window(limit=2)
    events: list[pb.GenerateResponse] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with SynthQAClient(serve(BreaksWithItsWindowFull()), timeout=30, retries=2,
                               retry_wait=10) as client:
                for event in client.generate(window.feed(DOCUMENTS)):
                    events.append(event)
                    if event.HasField("document_completed"):
                        window.completed()
        except BaseException as error:  # noqa: BLE001 (reported by the test's thread)
            failure.append(error)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the run stalled after the call was lost"
    assert not failure, failure
    assert_every_chunk_once(events)
