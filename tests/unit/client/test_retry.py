"""The client's retry bookkeeping on scripted event streams: what the caller sees across a
call and its retry rounds. The real retry across an engine restart is in
tests/e2e/test_lifecycle.py."""

from __future__ import annotations

import grpc
from google.rpc import status_pb2

from synthqa.client.documents import Document
from synthqa.client.retry import MAX_UNANSWERED_CALLS, ChunkRetries
from synthqa.v1 import synthqa_pb2 as pb

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]


def started(chunk: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(chunk_started=pb.ChunkStarted(
        document_id="d", chunk_index=chunk, chunk_count=3))


def pair(chunk: int, index: int, question: str = "q") -> pb.GenerateResponse:
    return pb.GenerateResponse(qa_pair=pb.QaPair(
        document_id="d", chunk_index=chunk, pair_index=index, question=question))


def completed(chunk: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(chunk_completed=pb.ChunkCompleted(
        document_id="d", chunk_index=chunk, pair_count=2))


def failed(chunk: int, code: int, pairs: int = 0) -> pb.GenerateResponse:
    return pb.GenerateResponse(chunk_failed=pb.ChunkFailed(
        document_id="d", chunk_index=chunk, error=status_pb2.Status(code=code), pair_count=pairs))


def document_done(chunks: int, done: int, failures: int, pairs: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(document_completed=pb.DocumentCompleted(
        document_id="d", chunk_count=chunks, completed_chunk_count=done,
        failed_chunk_count=failures, pair_count=pairs, token_count=30))


def seen(retries: ChunkRetries, events: list[pb.GenerateResponse]) -> list[pb.GenerateResponse]:
    return [shown for e in events if (shown := retries.filter(e)) is not None]


def first_round(retries: ChunkRetries) -> list[pb.GenerateResponse]:
    """Chunk 0 completes, chunk 1 fails for good, chunk 2 dies with the engine after 1 pair."""
    retries.sent(Document("d", "text"))
    return seen(retries, [
        started(0), started(1), started(2), pair(0, 0), pair(2, 0, "lost half"), pair(0, 1),
        completed(0), failed(1, INTERNAL), failed(2, UNAVAILABLE, pairs=1),
        document_done(3, 1, 2, 3),
    ])


def test_a_chunk_lost_with_the_engine_is_retried_and_its_delivered_pairs_skipped() -> None:
    retries = ChunkRetries(max_retries=2)
    shown = first_round(retries)
    kinds = [e.WhichOneof("event") for e in shown]
    # The retryable failure and the incomplete document summary wait for the retry.
    assert kinds == ["chunk_started"] * 3 + ["qa_pair"] * 3 + ["chunk_completed", "chunk_failed"]
    assert retries.pending
    assert retries.next_round() == [Document("d", "text", (2,))]
    assert not retries.pending
    shown = seen(retries, [started(2), pair(2, 0, "again"), pair(2, 1, "new"), completed(2),
                           document_done(1, 1, 0, 2)])
    assert [e.WhichOneof("event") for e in shown] == [
        "qa_pair", "chunk_completed", "document_completed"]
    assert shown[0].qa_pair.pair_index == 1 and shown[0].qa_pair.question == "new"
    summary = shown[-1].document_completed
    assert (summary.chunk_count, summary.completed_chunk_count, summary.failed_chunk_count,
            summary.pair_count, summary.token_count) == (3, 2, 1, 4, 30)


def test_the_last_round_lets_the_failure_through() -> None:
    retries = ChunkRetries(max_retries=1)
    first_round(retries)
    retries.next_round()
    shown = seen(retries, [started(2), failed(2, UNAVAILABLE), document_done(1, 0, 1, 0)])
    assert [e.WhichOneof("event") for e in shown] == ["chunk_failed", "document_completed"]
    summary = shown[-1].document_completed
    assert (summary.completed_chunk_count, summary.failed_chunk_count, summary.pair_count) == (
        1, 2, 3)
    assert not retries.pending


def test_no_retries_passes_everything_through() -> None:
    retries = ChunkRetries(max_retries=0)
    shown = first_round(retries)
    assert len(shown) == 10 and not retries.pending


def test_a_document_without_failures_is_forgotten_once_done() -> None:
    retries = ChunkRetries(max_retries=2)
    retries.sent(Document("d", "text"))
    events = [started(0), pair(0, 0), completed(0), document_done(1, 1, 0, 1)]
    assert seen(retries, events) == events
    assert not retries.pending and retries.next_round() == []


def test_a_broken_call_resends_every_unfinished_chunk_and_skips_delivered_pairs() -> None:
    retries = ChunkRetries(max_retries=1)
    retries.sent(Document("d", "text"))
    seen(retries, [started(0), started(1), pair(0, 0), pair(1, 0), completed(1)])
    assert retries.call_lost(["d"]) == []
    assert retries.next_round() == [Document("d", "text", (0, 2))]
    shown = seen(retries, [started(0), pair(0, 0, "again"), pair(0, 1), completed(0),
                           started(2), pair(2, 0), completed(2), document_done(2, 2, 0, 3)])
    assert [(e.qa_pair.chunk_index, e.qa_pair.pair_index) for e in shown
            if e.HasField("qa_pair")] == [(0, 1), (2, 0)]
    summary = shown[-1].document_completed
    assert (summary.chunk_count, summary.completed_chunk_count, summary.pair_count) == (3, 3, 4)


def test_a_document_lost_before_any_chunk_started_is_sent_again_whole() -> None:
    retries = ChunkRetries(max_retries=1)
    retries.sent(Document("d", "text", (1, 2)))
    assert retries.call_lost(["d"]) == []
    assert retries.next_round() == [Document("d", "text", (1, 2))]


def test_a_document_lost_with_only_its_summary_missing_gets_one() -> None:
    retries = ChunkRetries(max_retries=1)
    retries.sent(Document("d", "text", (0,)))
    seen(retries, [started(0), pair(0, 0), completed(0)])
    [summary] = retries.call_lost(["d", "done-before"])
    assert summary.document_completed.completed_chunk_count == 1
    assert not retries.pending and retries.unfinished == []


def test_calls_lost_unanswered_spend_no_round_and_wait_longer_each_time() -> None:
    retries = ChunkRetries(max_retries=1)
    retries.sent(Document("d", "text"))
    seen(retries, [started(0), pair(0, 0)])
    assert retries.may_retry_lost_call(answered=True) and retries.pause_seconds == 0
    retries.call_lost(["d"])
    retries.next_round(answered=True)
    pauses = []
    for _ in range(MAX_UNANSWERED_CALLS):
        assert retries.may_retry_lost_call(answered=False)
        retries.call_lost(["d"])
        assert retries.next_round(answered=False) == [Document("d", "text", (0, 1, 2))]
        pauses.append(retries.pause_seconds)
    assert pauses == sorted(set(pauses)) and pauses[0] > 0
    # Bounded: a server that keeps breaking calls before answering ends the stream.
    assert not retries.may_retry_lost_call(answered=False)
    # The one counted round was spent by the answered call.
    assert not retries.may_retry_lost_call(answered=True)


def test_an_answered_round_resets_the_pause() -> None:
    retries = ChunkRetries(max_retries=3)
    retries.sent(Document("d", "text"))
    retries.call_lost(["d"])
    retries.next_round(answered=False)
    assert retries.pause_seconds > 0
    seen(retries, [started(0)])
    retries.call_lost(["d"])
    retries.next_round(answered=True)
    assert retries.pause_seconds == 0
