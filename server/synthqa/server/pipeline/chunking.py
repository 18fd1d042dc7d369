"""Chunking a document off the event loop: tokenizing, windows and (under evidence) numbered
sentences in a pool of threads of its own, so a large document never delays cache lookups or
other calls' work in the default pool; the work's memory counted in the server's budget as it
grows; the work stopped between batches once its call is cancelled, its memory held until the
thread has really stopped. How many chunks a document makes, and the reply's size, are known
from the token count before a chunk is built, and a document over a limit is refused then."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..text.chunker import (
    Chunk,
    OffsetTokenizer,
    TokenizedDocument,
    Windows,
    chunk_document,
    number_sentences,
    tokenize_document,
    utf8_length,
)
from .budget import DocumentMemory, Reservation, text_bytes
from .errors import InvalidArgument, ResourceExhausted
from .planner import GenerationPlan

# Bytes a token of a tokenized document holds (ids and offsets in int arrays): measured at 20
# (CJK, emoji) to 50 (English) for 4 M characters on these machines (make
# bench-chunker-memory). Not counted: the tokenizer's working memory for the batch at hand,
# about 30 MiB whatever the document's size, for each of the pool's threads at most.
TOKEN_BYTES = 48
# Bytes a token of a chunk holds: a tuple slot and an int object.
CHUNK_TOKEN_BYTES = 40
# Share of the message cap that chunk text may fill; the rest is field overhead.
_REPLY_TEXT_SHARE = 0.9


@dataclass(frozen=True)
class ChunkedDocument:
    token_count: int
    # The chunks asked for (all of them unless the call chose some).
    chunks: list[Chunk]
    # How many chunks the whole document makes.
    chunk_count: int
    # The largest chunk, in tokens, under the call's options.
    chunk_token_budget: int


class _Stopped(Exception):
    """The call that wanted the chunks is gone."""


class DocumentChunker:
    def __init__(self, tokenizer: OffsetTokenizer, memory: DocumentMemory,
                 max_chunks_per_document: int, threads: int | None = None) -> None:
        self._tokenizer = tokenizer
        self._memory = memory
        self._max_chunks = max_chunks_per_document
        # Tokenizing spreads a batch over the cores itself: a few documents at once suffice.
        self._pool = ThreadPoolExecutor(threads or min(4, max(2, os.cpu_count() or 2)),
                                        thread_name_prefix="synthqa-chunking")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @contextlib.asynccontextmanager
    async def chunked(
        self, text: str, plan: GenerationPlan, field_path: str, *,
        indexes: Sequence[int] = (), indexes_path: str = "chunk_indexes",
        reply_limit_bytes: int | None = None, with_sentences: bool = False,
    ) -> AsyncIterator[ChunkedDocument]:
        """The document's chunks (those at `indexes`, if any; with their sentences numbered
        for evidence if asked), held in the budget until the block ends. Raises
        InvalidArgument or ResourceExhausted."""
        if not text.strip():
            raise InvalidArgument.single(
                field_path,
                "the document is empty or only whitespace; there is nothing to ask about")
        reservation = Reservation(self._memory, alongside=text_bytes(text))
        stop = threading.Event()
        work = asyncio.get_running_loop().run_in_executor(
            self._pool, self._chunk_now, text, plan, indexes, indexes_path, reply_limit_bytes,
            with_sentences, reservation, stop)
        try:
            chunked = await asyncio.shield(work)
        except asyncio.CancelledError:
            # The thread stops at its next batch; what it holds stays counted until then.
            stop.set()
            work.add_done_callback(lambda done: _settle(done, reservation))
            raise
        except BaseException:
            reservation.release()
            raise
        try:
            if not chunked.chunk_count:
                raise InvalidArgument.single(
                    field_path, "the document has no tokens for this model's tokenizer")
            yield chunked
        finally:
            reservation.release()

    def _chunk_now(
        self, text: str, plan: GenerationPlan, indexes: Sequence[int], indexes_path: str,
        reply_limit_bytes: int | None, with_sentences: bool, reservation: Reservation,
        stop: threading.Event,
    ) -> ChunkedDocument:
        def progress(tokens: int, batch_limit: int) -> None:
            if stop.is_set():
                raise _Stopped
            reservation.resize(tokens * TOKEN_BYTES)

        document = tokenize_document(self._tokenizer, text, progress)
        budget = plan.chunk_token_budget
        windows = Windows(document.token_count, budget, plan.options.chunk_overlap_tokens)
        if len(windows) > self._max_chunks:
            raise ResourceExhausted(
                "chunks per document",
                f"the document makes {len(windows)} chunks under these options, more than the "
                f"limit of {self._max_chunks}; use larger chunks (max_chunk_tokens) or split the "
                "document")
        if indexes and indexes[-1] >= len(windows):
            raise InvalidArgument.single(
                indexes_path,
                f"chunk index {indexes[-1]} is out of range: the document makes {len(windows)} "
                "chunks under this call's options (indexes match only with the same text and "
                "options as the call they came from)")
        if reply_limit_bytes is not None:
            _check_reply_size(document, windows, plan, reply_limit_bytes)
        chosen = indexes or range(len(windows))
        chunk_tokens = (windows.total_tokens if not indexes
                        else sum(end - start for start, end in map(windows.__getitem__, chosen)))
        chunk_text = text_bytes(text) * chunk_tokens // max(document.token_count, 1)
        reservation.resize(document.token_count * TOKEN_BYTES
                           + chunk_tokens * CHUNK_TOKEN_BYTES + chunk_text)
        chunks = chunk_document(document, budget, plan.options.chunk_overlap_tokens,
                                indexes or None)
        if stop.is_set():
            raise _Stopped
        if with_sentences:
            chunks = [number_sentences(self._tokenizer, chunk, plan.prompt_room)
                      for chunk in chunks]
        # The document's tokens go with this frame: only the chunks stay (twice over with
        # their numbered sentences).
        reservation.resize(chunk_tokens * CHUNK_TOKEN_BYTES * (2 if with_sentences else 1)
                           + chunk_text)
        return ChunkedDocument(document.token_count, chunks, len(windows), budget)


def _settle(done: asyncio.Future[Any], reservation: Reservation) -> None:
    reservation.release()
    if not done.cancelled():
        done.exception()  # retrieved: nobody waits for the work of a cancelled call


def _check_reply_size(document: TokenizedDocument, windows: Windows, plan: GenerationPlan,
                      limit: int) -> None:
    """Refuse, before building it, a chunk list whose text would not fit one message."""
    chars = sum(document.offsets[end - 1][1] - document.offsets[start][0]
                for start, end in windows)
    bytes_per_char = utf8_length(document.text) / len(document.text)
    estimate = int(chars * bytes_per_char)
    if estimate > limit * _REPLY_TEXT_SHARE:
        overlap = plan.options.chunk_overlap_tokens
        raise ResourceExhausted(
            "reply size",
            f"the {len(windows)} chunks would carry about {estimate} bytes of text, more than "
            f"fits the {limit}-byte message limit; chunk_overlap_tokens={overlap} repeats text "
            f"in every chunk of {plan.chunk_token_budget} tokens: lower chunk_overlap_tokens, "
            "raise max_chunk_tokens, or send a shorter document")
