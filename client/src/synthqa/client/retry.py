"""Retrying lost work, so a long run ends complete across an engine restart, a server restart
or a replica's death: the chunks that failed with UNAVAILABLE (the engine died under them),
and every unfinished chunk of a call that broke with UNAVAILABLE (the server went away). The
caller sees one stream: each chunk starts once, ends once, and no pair index of a chunk
arrives twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from synthqa.v1 import synthqa_pb2 as pb

from .documents import Document

DEFAULT_RETRIES = 2
# How long a retry waits for the server to be SERVING again (a new engine loading).
DEFAULT_RETRY_WAIT_SECONDS = 600.0
# A call that broke before the server answered anything attempted no chunk (a chunk is
# announced before it reaches the engine), so it spends no retry round. It happens when a
# replica has just died but its connection still looks ready to the channel, and the round
# after the failover is sent to it: such calls are tried again after doubling pauses, so
# the channel sees the connection gone, up to this many in a row.
MAX_UNANSWERED_CALLS = 6
FIRST_UNANSWERED_PAUSE_SECONDS = 0.25

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


@dataclass
class _Tally:
    """One document's chunks as the caller has seen them."""

    document: Document
    completed: int = 0
    failed: int = 0
    pairs: int = 0
    token_count: int = 0
    # Chunks in the whole document, once a chunk_started has said.
    document_chunks: int = 0
    retried: bool = False
    # Per chunk still running: pairs the caller already has (a retry skips them).
    delivered: dict[int, int] = field(default_factory=dict)
    # Chunks whose final outcome the caller has.
    finished: set[int] = field(default_factory=set)
    to_retry: set[int] = field(default_factory=set)
    # Lost before any chunk started: send it again as first asked.
    resend_whole: bool = False

    @property
    def waiting(self) -> bool:
        return bool(self.to_retry) or self.resend_whole

    def unfinished_chunks(self) -> set[int]:
        asked = self.document.chunk_indexes or range(self.document_chunks)
        return set(asked) - self.finished


class ChunkRetries:
    """Follows the events of a call and of its retries. `max_retries` rounds at most."""

    def __init__(self, max_retries: int) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._max_retries = max_retries
        self._round = 0
        self._unanswered_in_a_row = 0
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
        return any(tally.waiting for tally in list(self._tallies.values()))

    @property
    def can_retry(self) -> bool:
        return self._round < self._max_retries

    def may_retry_lost_call(self, answered: bool) -> bool:
        """Whether a call that broke with UNAVAILABLE gets another round; `answered`: the
        server sent it at least one event. One that got none attempted nothing: the next call
        makes the same attempt again."""
        if answered:
            return self.can_retry
        return self._max_retries > 0 and self._unanswered_in_a_row < MAX_UNANSWERED_CALLS

    @property
    def pause_seconds(self) -> float:
        """How long to wait before the next round: after calls that broke unanswered, long
        enough for the channel to notice a dead connection; otherwise none."""
        if not self._unanswered_in_a_row:
            return 0.0
        return FIRST_UNANSWERED_PAUSE_SECONDS * 2.0 ** (self._unanswered_in_a_row - 1)

    @property
    def unfinished(self) -> list[str]:
        """Documents sent whose document_completed the caller has not had."""
        return list(self._tallies)

    def next_round(self, answered: bool = True) -> list[Document]:
        """The documents to send again, each with only the chunks to retry. `answered`: the
        round that ended got at least one event; one that got none is not counted."""
        if answered:
            self._round += 1
            self._unanswered_in_a_row = 0
        else:
            self._unanswered_in_a_row += 1
        documents = []
        for tally in list(self._tallies.values()):
            if tally.resend_whole:
                documents.append(tally.document)
            elif tally.to_retry:
                documents.append(Document(tally.document.document_id, tally.document.text,
                                          tuple(sorted(tally.to_retry))))
            tally.to_retry.clear()
            tally.resend_whole = False
        return documents

    def call_lost(self, document_ids: list[str]) -> list[pb.GenerateResponse]:
        """A call broke (UNAVAILABLE) with these documents on it: their unfinished chunks wait
        for the next round. Returns the document_completed events of documents that had
        nothing left but their summary."""
        summaries = []
        for document_id in document_ids:
            tally = self._tallies.get(document_id)
            if tally is None:
                continue  # its document_completed came through
            tally.retried = True
            if not tally.document_chunks:
                tally.resend_whole = True
                continue
            tally.to_retry |= tally.unfinished_chunks()
            if not tally.waiting:
                del self._tallies[document_id]
                summaries.append(self._summary(tally))
        return summaries

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
            tally.document_chunks = event.chunk_started.chunk_count
            if index in tally.delivered:
                return None  # the caller saw this chunk start before its retry
            tally.delivered[index] = 0
            return event
        if kind in ("qa_pair", "record"):
            chunk_index = message.chunk_index  # type: ignore[union-attr]
            index = (event.qa_pair.pair_index if kind == "qa_pair"
                     else event.record.record_index)
            if index < tally.delivered.get(chunk_index, 0):
                return None
            tally.delivered[chunk_index] = index + 1
            tally.pairs += 1
            return event
        if kind == "chunk_completed":
            tally.delivered.pop(event.chunk_completed.chunk_index, None)
            tally.finished.add(event.chunk_completed.chunk_index)
            tally.completed += 1
            return event
        if kind == "chunk_failed":
            failed = event.chunk_failed
            if failed.error.code == _UNAVAILABLE and self.can_retry:
                tally.to_retry.add(failed.chunk_index)
                tally.retried = True
                return None
            tally.delivered.pop(failed.chunk_index, None)
            tally.finished.add(failed.chunk_index)
            tally.failed += 1
            return event
        if kind == "document_completed":
            return self._document_completed(tally, event.document_completed, event)
        return event

    def _document_completed(
        self, tally: _Tally, done: pb.DocumentCompleted, event: pb.GenerateResponse
    ) -> pb.GenerateResponse | None:
        tally.token_count = tally.token_count or done.token_count
        if tally.waiting:
            return None  # not done yet: it ends after its retry
        del self._tallies[done.document_id]
        if not tally.retried:
            return event
        return self._summary(tally)

    @staticmethod
    def _summary(tally: _Tally) -> pb.GenerateResponse:
        """The document's summary over every round it took."""
        return pb.GenerateResponse(document_completed=pb.DocumentCompleted(
            document_id=tally.document.document_id,
            chunk_count=tally.completed + tally.failed,
            completed_chunk_count=tally.completed,
            failed_chunk_count=tally.failed,
            pair_count=tally.pairs,
            token_count=tally.token_count,
        ))
