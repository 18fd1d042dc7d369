"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from synthqa.server.text.schema import QA_FIELDS, field_bounds, text_record_schema
from synthqa.v1 import synthqa_pb2 as pb

from ..paths import REPO

SAMPLE = (REPO / "samples" / "lighthouses.txt").read_text(encoding="utf-8")
# The tiny model writes random text: a chunk may run out of tokens or write only bytes that
# are dropped as undecodable. Such a chunk fails cleanly, and tests that cannot pin the text
# allow it; every record that is sent must still be valid.
TOLERATED_CHUNK_FAILURES = ("max_generation_tokens", "could not be parsed")


@dataclass
class DocumentEvents:
    started: list[pb.ChunkStarted] = field(default_factory=list)
    pairs: list[pb.QaPair] = field(default_factory=list)
    records: list[pb.Record] = field(default_factory=list)
    completed: list[pb.ChunkCompleted] = field(default_factory=list)
    failed: list[pb.ChunkFailed] = field(default_factory=list)
    done: list[pb.DocumentCompleted] = field(default_factory=list)


def by_document(events: Iterable[pb.GenerateResponse]) -> dict[str, DocumentEvents]:
    grouped: dict[str, DocumentEvents] = defaultdict(DocumentEvents)
    targets = {
        "chunk_started": "started",
        "qa_pair": "pairs",
        "record": "records",
        "chunk_completed": "completed",
        "chunk_failed": "failed",
        "document_completed": "done",
    }
    for event in events:
        kind = event.WhichOneof("event")
        message = getattr(event, kind)
        getattr(grouped[message.document_id], targets[kind]).append(message)
    return dict(grouped)


def pair_schema(num_pairs: int, max_generation_tokens: int = 512) -> dict:
    bounds = field_bounds("pairs", QA_FIELDS, num_pairs, max_generation_tokens)
    assert bounds is not None
    return text_record_schema(bounds)


def assert_document_complete(events: DocumentEvents, num_pairs: int) -> None:
    """Every chunk started, completed with exactly num_pairs valid pairs, document done once."""
    assert not events.failed, [f.error.message for f in events.failed]
    assert len(events.done) == 1
    chunk_count = events.done[0].chunk_count
    assert sorted(s.chunk_index for s in events.started) == list(range(chunk_count))
    assert sorted(c.chunk_index for c in events.completed) == list(range(chunk_count))
    assert len(events.pairs) == num_pairs * chunk_count
    assert events.done[0].pair_count == len(events.pairs)
    assert events.done[0].completed_chunk_count == chunk_count
    schema = pair_schema(num_pairs)
    for chunk_index in range(chunk_count):
        indexes = sorted(p.pair_index for p in events.pairs if p.chunk_index == chunk_index)
        assert indexes == list(range(num_pairs))
    for pair in events.pairs:
        instance = {"question": pair.question, "answer": pair.answer}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(instance))
        assert not errors, f"pair breaks the schema: {ascii(instance)}: {errors[0].message[:80]}"
    for completed in events.completed:
        assert completed.finish_reason == pb.FINISH_REASON_STOP
        assert completed.pair_count == num_pairs
        assert 0 < completed.generated_token_count <= 512


def jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON Lines file's records. Split at "\\n" only: str.splitlines also splits at U+2028,
    U+0085 and the like, which the tiny model's random text contains and JSON keeps raw."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
