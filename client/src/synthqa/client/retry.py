"""Retrying the chunks that failed with UNAVAILABLE (the engine died under them), so a long run
ends complete across an engine restart. The caller sees one stream: each chunk starts once,
ends once, and no pair index of a chunk arrives twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from synthqa.v1 import synthqa_pb2 as pb

from .documents import Document

DEFAULT_RETRIES = 2
# How long a retry waits for the server to be SERVING again (a new engine loading).
DEFAULT_RETRY_WAIT_SECONDS = 600.0

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


@dataclass
class _Tally:
    """One document's chunks as the caller has seen them."""

    document: Document
    completed: int = 0
    failed: int = 0
    pairs: int = 0
    chunk_count: int = 0
    token_count: int = 0
    retried: bool = False
    # Per chunk still running: pairs the caller already has (a retry skips them).
    delivered: dict[int, int] = field(default_factory=dict)
    to_retry: set[int] = field(default_factory=set)


class ChunkRetries:
    """Follows the events of a call and of its retries. `max_retries` rounds at most."""

    def __init__(self, max_retries: int) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._max_retries = max_retries
        self._round = 0
        self._tallies: dict[str, _Tally] = {}

    def track(self, documents: Iterator[Document]) -> Iterator[Document]:
        """Pass documents through, remembering each until it is done."""
        for document in documents:
            self.sent(document)
            yield document

    def sent(self, document: Document) -> Document:
        self._tallies[document.document_id] = _Tally(document)
        return document

    @property
    def pending(self) -> bool:
        """Chunks wait for another round."""
        return any(tally.to_retry for tally in self._tallies.values())

    def next_round(self) -> list[Document]:
        """The documents to send again, each with only the chunks to retry."""
        self._round += 1
        documents = []
        for tally in self._tallies.values():
            if tally.to_retry:
                documents.append(Document(tally.document.document_id, tally.document.text,
                                          tuple(sorted(tally.to_retry))))
                tally.to_retry.clear()
        return documents

    def filter(self, event: pb.GenerateResponse) -> pb.GenerateResponse | None:
        """The event to hand the caller, or None for one it must not see (a retried chunk's
        second start, a pair it already has, a failure about to be retried)."""
        kind = event.WhichOneof("event")
        message = getattr(event, kind) if kind else None
        tally = self._tallies.get(message.document_id) if message is not None else None
        if tally is None:
            return event
        if kind == "chunk_started":
            index = event.chunk_started.chunk_index
            if index in tally.delivered:
                return None  # the caller saw this chunk start before its retry
            tally.delivered[index] = 0
            return event
        if kind == "qa_pair":
            pair = event.qa_pair
            if pair.pair_index < tally.delivered.get(pair.chunk_index, 0):
                return None
            tally.delivered[pair.chunk_index] = pair.pair_index + 1
            tally.pairs += 1
            return event
        if kind == "chunk_completed":
            tally.delivered.pop(event.chunk_completed.chunk_index, None)
            tally.completed += 1
            return event
        if kind == "chunk_failed":
            failed = event.chunk_failed
            if failed.error.code == _UNAVAILABLE and self._round < self._max_retries:
                tally.to_retry.add(failed.chunk_index)
                tally.retried = True
                return None
            tally.delivered.pop(failed.chunk_index, None)
            tally.failed += 1
            return event
        if kind == "document_completed":
            return self._document_completed(tally, event.document_completed, event)
        return event

    def _document_completed(
        self, tally: _Tally, done: pb.DocumentCompleted, event: pb.GenerateResponse
    ) -> pb.GenerateResponse | None:
        if not tally.chunk_count:  # the first round's count covers every chunk asked for
            tally.chunk_count = done.chunk_count
            tally.token_count = done.token_count
        if tally.to_retry:
            return None  # not done yet: it ends after its retry
        del self._tallies[done.document_id]
        if not tally.retried:
            return event
        return pb.GenerateResponse(document_completed=pb.DocumentCompleted(
            document_id=done.document_id,
            chunk_count=tally.chunk_count,
            completed_chunk_count=tally.completed,
            failed_chunk_count=tally.failed,
            pair_count=tally.pairs,
            token_count=tally.token_count,
        ))
