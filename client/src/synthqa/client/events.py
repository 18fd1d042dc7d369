"""Helpers for the GenerateResponse events both clients yield."""

from __future__ import annotations

from typing import Any

from synthqa.v1 import synthqa_pb2 as pb


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
