"""Several events in one message: only for a call whose metadata asks, never more than it
asked or than fits a message, in order; and the clients read a batch back as its events."""

from __future__ import annotations

import pytest

from synthqa.client.events import as_generate_response, events_in
from synthqa.server.grpc_api.event_batches import (
    MAX_BATCH_BYTES,
    events_per_message,
    messages_of,
)
from synthqa.server.pipeline.errors import InvalidArgument
from synthqa.server.pipeline.events import ChunkStarted, DocumentCompleted, RecordGenerated
from synthqa.v1 import synthqa_pb2 as pb

from ..helpers import violations

KEY = "synthqa-events-per-message"


def started(index: int) -> ChunkStarted:
    return ChunkStarted(document_id="d", chunk_index=index, chunk_count=9, token_count=5,
                        char_start=0, char_end=10)


def record(index: int, chars: int = 20) -> RecordGenerated:
    return RecordGenerated(document_id="d", chunk_index=0, record_index=index,
                           json='{"summary": "' + "x" * chars + '"}')


def test_a_call_that_does_not_ask_takes_one_event_per_message() -> None:
    assert events_per_message(None) == 1
    assert events_per_message([("authorization", "Bearer t")]) == 1
    assert events_per_message([(KEY, "64")]) == 64
    assert events_per_message([(KEY, "1024")]) == 1024


@pytest.mark.parametrize("metadata", [[(KEY, "0")], [(KEY, "1025")], [(KEY, "many")],
                                      [(KEY, "-3")], [(KEY, "")], [(KEY, "8"), (KEY, "9")],
                                      [(KEY, "9" * 5000)], [(KEY, "\u00b2")],
                                      [(KEY, "0" * 5000)]])
def test_a_bad_events_per_message_names_the_metadata(metadata: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        events_per_message(metadata)
    assert list(violations(raised.value)) == ["metadata.synthqa-events-per-message"]


def test_one_event_goes_alone_and_several_go_in_one_batch_in_order() -> None:
    [(alone, carried)] = messages_of([started(0)], pb.GenerateResponse)
    assert carried == [started(0)]
    assert alone.WhichOneof("event") == "chunk_started"
    events = [started(0), record(0), record(1),
              DocumentCompleted(document_id="d", chunk_count=1, completed_chunk_count=1,
                                failed_chunk_count=0, pair_count=2, token_count=5)]
    [(batch, carried)] = messages_of(events, pb.GenerateResponse)
    assert carried == events
    assert [e.WhichOneof("event") for e in batch.batch.events] == [
        "chunk_started", "record", "record", "document_completed"]
    assert [e.record.record_index for e in batch.batch.events[1:3]] == [0, 1]
    # The clients read it back as the events, oldest first; one alone as itself.
    assert [e.WhichOneof("event") for e in events_in(batch)][0] == "chunk_started"
    assert list(events_in(alone)) == [alone]


def test_a_document_stream_batch_reads_back_as_generate_responses() -> None:
    [(batch, _)] = messages_of([started(0), started(1)], pb.GenerateDocumentResponse)
    assert batch.batch.DESCRIPTOR.name == "DocumentEventBatch"
    events = events_in(as_generate_response(batch))
    assert [e.chunk_started.chunk_index for e in events] == [0, 1]


def test_batches_stay_under_the_byte_bound_and_a_larger_event_goes_alone() -> None:
    third = MAX_BATCH_BYTES // 3
    events = [record(i, third - 100) for i in range(5)] + [record(5, MAX_BATCH_BYTES + 10)]
    sent = list(messages_of(events, pb.GenerateResponse))
    read_back = [e.record.record_index for message, _ in sent for e in events_in(message)]
    assert read_back == [0, 1, 2, 3, 4, 5], "every event once, in order"
    assert [len(events_in(message)) for message, _ in sent] == [3, 2, 1]
    # Each message says which events it carries (what the call counts as sent).
    assert [[e.record_index for e in carried] for _, carried in sent] == [[0, 1, 2], [3, 4],
                                                                           [5]]
    for message, carried in sent[:2]:
        assert sum(len(events_in(message)[i].SerializeToString())
                   for i in range(len(carried))) <= MAX_BATCH_BYTES


def test_leading_zeros_and_spaces_around_the_number_are_read() -> None:
    assert events_per_message([(KEY, "0064")]) == 64
    assert events_per_message([(KEY, " 8 ")]) == 8
