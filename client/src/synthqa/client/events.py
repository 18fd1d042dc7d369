"""Helpers for the GenerateResponse events both clients yield."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthqa.v1 import synthqa_pb2 as pb

# The most events the clients take in one message (the server's EventBatch).
EVENTS_PER_MESSAGE = 64


def events_in(message: pb.GenerateResponse) -> Sequence[pb.GenerateResponse]:
    """The events one message carries: its batch's, oldest first, or itself."""
    if message.HasField("batch"):
        return message.batch.events
    return (message,)


def as_generate_response(event: pb.GenerateDocumentResponse) -> pb.GenerateResponse:
    """GenerateDocumentResponse mirrors GenerateResponse field for field; give callers one type."""
    return pb.GenerateResponse.FromString(event.SerializeToString())


def pair_record(pair: pb.QaPair) -> dict[str, Any]:
    """The JSONL record of a pair."""
    return {
        "document_id": pair.document_id,
        "chunk_index": pair.chunk_index,
        "pair_index": pair.pair_index,
        "question": pair.question,
        "answer": pair.answer,
    }
