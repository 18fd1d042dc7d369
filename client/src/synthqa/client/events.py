"""Helpers for the GenerateResponse events both clients yield."""

from __future__ import annotations

import json
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


def record_line(record: pb.Record) -> dict[str, Any]:
    """The JSONL line of a record: where it came from and the record itself, as JSON (with
    question and answer beside it for a qa record, as a pair's line has them)."""
    line: dict[str, Any] = {
        "document_id": record.document_id,
        "chunk_index": record.chunk_index,
        "record_index": record.record_index,
        "record": json.loads(record.json),
    }
    if record.evidence:
        line["evidence"] = [{"sentence": span.sentence, "char_start": span.char_start,
                             "char_end": span.char_end} for span in record.evidence]
    if record.HasField("qa_pair"):
        line["question"] = record.qa_pair.question
        line["answer"] = record.qa_pair.answer
    return line
