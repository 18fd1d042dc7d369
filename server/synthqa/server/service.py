"""The service's domain facade: options, chunking and sessions over one engine. The gRPC
servicer is a thin translation layer on top of this."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from . import __version__
from .chunker import Chunk, TokenizedDocument, chunk_document, tokenize_document
from .engine import Engine
from .errors import InvalidArgument, ResourceExhausted, Unavailable
from .generator import ChunkGenerator
from .options import GenerationOptions, OptionOverrides, apply_overrides
from .planner import GenerationPlan, Planner
from .prompts import PromptBuilder
from .session import GenerateSession, SessionLoad


@dataclass(frozen=True)
class ServiceLimits:
    max_message_bytes: int = 64 * 1024 * 1024
    max_document_chars: int = 16_000_000
    max_num_pairs: int = 50
    max_in_flight_chunks_per_call: int = 32
    max_in_flight_chunks: int = 256
    max_chunks_per_document: int = 20_000


@dataclass(frozen=True)
class ServerInfo:
    model: str
    max_model_len: int
    max_chunk_tokens: int
    prompt_template_tokens: int
    defaults: GenerationOptions
    version: str
    limits: ServiceLimits
    active_calls: int
    in_flight_chunks: int
    engine_requests: int


@dataclass(frozen=True)
class ChunkedDocument:
    document: TokenizedDocument
    chunks: list[Chunk]


class QAService:
    def __init__(self, engine: Engine, defaults: GenerationOptions, limits: ServiceLimits) -> None:
        self.engine = engine
        self.limits = limits
        # Fail at start-up, not on the first call, if the defaults are out of range or cannot
        # work with this model.
        self.defaults = apply_overrides(
            defaults, OptionOverrides(), max_num_pairs=limits.max_num_pairs,
            field_prefix="defaults",
        )
        self.planner = Planner(PromptBuilder(engine.tokenizer), engine.max_model_len)
        self.generator = ChunkGenerator(engine)
        self.load = SessionLoad(limits.max_in_flight_chunks)
        self.ready = False
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.default_plan = self.planner.plan(defaults, field_prefix="defaults")

    def check_available(self) -> None:
        if self.draining:
            raise Unavailable("the server is shutting down")
        if self.engine.is_dead:
            raise Unavailable("the engine has stopped")
        if not self.ready:
            raise Unavailable("the engine is warming up")

    def plan(self, overrides: OptionOverrides, field_prefix: str = "options") -> GenerationPlan:
        options = apply_overrides(
            self.defaults,
            overrides,
            max_num_pairs=self.limits.max_num_pairs,
            field_prefix=field_prefix,
        )
        return self.planner.plan(options, field_prefix=field_prefix)

    def check_document_size(self, text: str, subject: str) -> None:
        if len(text) > self.limits.max_document_chars:
            raise ResourceExhausted(
                subject,
                f"{len(text)} characters is more than the limit of "
                f"{self.limits.max_document_chars}",
            )

    async def chunk(self, text: str, plan: GenerationPlan, field_path: str) -> ChunkedDocument:
        _validate_text(text, field_path)
        # Tokenizing and windowing a large document takes a while: keep the loop serving others.
        chunked = await asyncio.to_thread(self._chunk_now, text, plan)
        if not chunked.chunks:
            raise InvalidArgument.single(
                field_path, "the document has no tokens for this model's tokenizer"
            )
        if len(chunked.chunks) > self.limits.max_chunks_per_document:
            raise ResourceExhausted(
                "chunks per document",
                f"the document makes {len(chunked.chunks)} chunks under these options, more "
                f"than the limit of {self.limits.max_chunks_per_document}; use larger chunks "
                "(max_chunk_tokens) or split the document",
            )
        return chunked

    def _chunk_now(self, text: str, plan: GenerationPlan) -> ChunkedDocument:
        document = tokenize_document(self.engine.tokenizer, text)
        chunks = chunk_document(
            document, plan.chunk_token_budget, plan.options.chunk_overlap_tokens
        )
        return ChunkedDocument(document, chunks)

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Counts a call from its first moment to its last, so a drain waits for all of it."""
        self.load.active_calls += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.load.active_calls -= 1
            if self.load.active_calls == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def session(self, plan: GenerationPlan) -> AsyncIterator[GenerateSession]:
        """A generation; on exit, for any reason, its engine requests are aborted."""
        session = GenerateSession(
            self.generator, plan, self.load, window=self.limits.max_in_flight_chunks_per_call
        )
        try:
            yield session
        finally:
            try:
                await session.cancel()
            finally:
                # Whatever the cancellation did not reach is aborted by id, even if this
                # clean-up is itself cancelled.
                await asyncio.shield(self.engine.abort(session.open_request_ids))

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def info(self) -> ServerInfo:
        return ServerInfo(
            model=self.engine.model_name,
            max_model_len=self.engine.max_model_len,
            max_chunk_tokens=self.default_plan.chunk_token_budget,
            prompt_template_tokens=self.default_plan.frame.token_count,
            defaults=self.defaults,
            version=__version__,
            limits=self.limits,
            active_calls=self.load.active_calls,
            in_flight_chunks=self.load.in_flight_chunks,
            engine_requests=self.engine.unfinished_requests,
        )


def _validate_text(text: str, field_path: str) -> None:
    if not text.strip():
        raise InvalidArgument.single(
            field_path, "the document is empty or only whitespace; there is nothing to ask about"
        )
