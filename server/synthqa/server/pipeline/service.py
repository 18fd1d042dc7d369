"""The domain facade: every RPC calls one method here. It owns the options and their plans,
chunking, the Generate stream protocol, sessions and the service's own lifecycle (warm-up,
opening for calls, draining)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from synthqa.contract.options import GenerationOptions

from .. import __version__
from ..engine.grammar import GrammarCheck
from ..engine.types import Adapter, EngineLayout, GenerationEngine
from ..quality.curator import Curator
from ..quality.judge import Judge
from ..results.cache import ResultCache
from ..text.prompts import PromptBuilder
from .assembler import FieldPaths
from .availability import RETRY_AFTER_SECONDS, AvailabilityState
from .budget import DocumentMemory, text_bytes
from .chunking import ChunkedDocument, DocumentChunker
from .errors import InvalidArgument, ResourceExhausted, Unavailable
from .events import ChunkFailed, FailureCode, GenerationEvent
from .generator import ChunkGenerator
from .limits import ServiceLimits
from .options import Overrides, resolve_options
from .planner import GenerationPlan, Planner
from .session import CallSession, ServerLoad
from .stream import StreamMessage, read_options, whole_documents
from .telemetry import CallTelemetry, Telemetry

WARM_UP_TEXT = "Lighthouses guide ships at night with bright, distinctive lights."


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
    engine_restarts: int
    held_document_bytes: int
    engine_layout: EngineLayout
    adapters: tuple[str, ...] = ()
    # The tokenizer's chat template and the special tokens it may name; None without one.
    chat_template: ChatTemplate | None = None


@dataclass(frozen=True)
class ChatTemplate:
    template: str
    special_tokens: Mapping[str, str]

    @staticmethod
    def of(tokenizer: Any) -> ChatTemplate | None:
        template = getattr(tokenizer, "chat_template", None)
        if not isinstance(template, str) or not template:
            return None
        tokens = {name: value for name in _TEMPLATE_TOKENS
                  if isinstance(value := getattr(tokenizer, name, None), str)}
        return ChatTemplate(template, tokens)


# The special tokens transformers hands a chat template by name.
_TEMPLATE_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")


class GenerationService:
    def __init__(
        self,
        engine: GenerationEngine,
        defaults: GenerationOptions,
        limits: ServiceLimits,
        telemetry: Telemetry | None = None,
        cache: ResultCache | None = None,
        adapters: tuple[Adapter, ...] = (),
    ) -> None:
        self._engine = engine
        self.adapters = {adapter.name: adapter for adapter in adapters}
        self._telemetry = telemetry or Telemetry()
        self.limits = limits
        self._limit_values = limits.as_dict()
        # Fail at start-up, not on the first call, if the defaults are out of range or cannot
        # work with this model.
        self.defaults = resolve_options(defaults, {}, limits=self._limit_values,
                                        field_prefix="defaults")
        self._judge = Judge(engine)
        self._planner = Planner(PromptBuilder(engine.tokenizer), engine.max_model_len,
                                self._judge)
        self._grammar_check = GrammarCheck(engine.tokenizer)
        self._generator = ChunkGenerator(engine, cache)
        self.load = ServerLoad(limits.max_in_flight_chunks)
        self.memory = DocumentMemory(limits.max_held_document_bytes)
        self._chunker = DocumentChunker(engine.tokenizer, self.memory,
                                        limits.max_chunks_per_document)
        self.availability = AvailabilityState()
        self.engine_restarts = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sessions: set[CallSession] = set()
        self.default_plan = self._planner.plan(self.defaults, field_prefix="defaults")

    # Lifecycle ---------------------------------------------------------------------------

    async def warm_up(self) -> None:
        """One real generation: compiles the default grammar and proves the engine works.
        Raises RuntimeError if it does not."""
        plan = self.default_plan
        async with self._chunker.chunked(WARM_UP_TEXT, plan, "warm-up") as chunked:
            chunk = chunked.chunks[0]
        async for event in self._generator.generate("warm-up", chunk, plan, "synthqa-warm-up"):
            # A random model may run out of tokens (RESOURCE_EXHAUSTED); anything else means
            # the engine or its grammar backend is broken.
            if isinstance(event, ChunkFailed) and event.code is not FailureCode.RESOURCE_EXHAUSTED:
                raise RuntimeError(f"warm-up generation failed: {event.message}")

    def open(self) -> None:
        """Take calls from now on."""
        self.availability.move("open")

    def engine_down(self) -> None:
        """The engine died and a new one is starting: open calls wait for it, new calls are
        turned away."""
        self.availability.move("engine_down")

    def engine_up(self) -> None:
        self.availability.move("engine_up")
        self.engine_restarts += 1

    def engine_died(self) -> None:
        """The engine is gone for good."""
        self.availability.move("engine_died")

    async def drain(self, grace: float, force: asyncio.Event) -> bool:
        """Refuse new calls and wait up to `grace` seconds, or until `force` is set, for the
        calls in flight. True if they all finished. Open streams take no new documents: those
        they have finish, then the stream ends UNAVAILABLE."""
        self.availability.move("drain")
        for session in list(self._sessions):
            session.stop_taking(Unavailable(
                "the server is shutting down: documents sent after this point were not taken "
                "(those without DocumentCompleted); send them to another server",
                retry_after_seconds=RETRY_AFTER_SECONDS))
        idle = asyncio.create_task(self._idle.wait())
        forced = asyncio.create_task(force.wait())
        done, _ = await asyncio.wait({idle, forced}, timeout=grace,
                                     return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        forced.cancel()
        return idle in done

    def check_available(self) -> None:
        self.availability.check()

    # Calls --------------------------------------------------------------------------------

    def info(self) -> ServerInfo:
        return ServerInfo(
            model=self._engine.model_name,
            max_model_len=self._engine.max_model_len,
            max_chunk_tokens=self.default_plan.chunk_token_budget,
            prompt_template_tokens=self.default_plan.frame.token_count,
            defaults=self.defaults,
            version=__version__,
            limits=self.limits,
            active_calls=self.load.active_calls,
            in_flight_chunks=self.load.in_flight_chunks,
            engine_requests=self._engine.unfinished_requests,
            engine_restarts=self.engine_restarts,
            held_document_bytes=self.memory.held,
            engine_layout=self._engine.layout,
            adapters=tuple(sorted(self.adapters)),
            chat_template=ChatTemplate.of(self._engine.tokenizer),
        )

    async def chunk_document(self, overrides: Overrides, text: str) -> ChunkedDocument:
        """The ChunkDocument RPC: the chunks Generate would make of `text`."""
        self.check_available()
        async with self._call():
            plan = await self._plan(overrides, "options")
            self._check_document_size(text, "text")
            with self.memory.holding(text_bytes(text)):
                # The reply carries every chunk's text: overlap can multiply the document's size.
                async with self._chunker.chunked(
                        text, plan, "text",
                        reply_limit_bytes=self.limits.max_message_bytes) as chunked:
                    return chunked

    async def generate(
        self, messages: AsyncIterator[StreamMessage], paths: FieldPaths
    ) -> AsyncIterator[GenerationEvent]:
        """generate_batches, one event at a time."""
        async with contextlib.aclosing(self.generate_batches(messages, paths, 1)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    async def generate_batches(
        self, messages: AsyncIterator[StreamMessage], paths: FieldPaths, events_per_batch: int
    ) -> AsyncGenerator[list[GenerationEvent], None]:
        """Both generation RPCs: options, then documents, in; events for all of them out, as
        work completes, in batches of what is ready when the reader asks (at most
        `events_per_batch`). Ends once the input has ended and every document is done."""
        self.check_available()
        async with self._call():
            overrides = await read_options(messages, paths)
            if overrides is None:
                return  # the client sent nothing: nothing to do
            plan = await self._plan(overrides, paths.options)
            telemetry = self._telemetry.call(plan.options)
            async with self._session(plan, telemetry) as session:
                feeder = self._feed(messages, paths, plan, session, telemetry)
                async with _beside(feeder, session):
                    async for batch in session.event_batches(events_per_batch):
                        yield batch

    async def _feed(
        self,
        messages: AsyncIterator[StreamMessage],
        paths: FieldPaths,
        plan: GenerationPlan,
        session: CallSession,
        telemetry: CallTelemetry,
    ) -> None:
        text_path = paths.in_document("text")
        documents = whole_documents(messages, paths, self.limits.max_document_chars, self.memory,
                                    max_chunk_indexes=self.limits.max_chunks_per_document)
        taken = 0
        # aclosing: a failed or cancelled call gives its documents' memory back at once.
        async with contextlib.aclosing(documents):
            async for document in documents:
                if taken == self.limits.max_documents_per_call:
                    session.stop_taking(ResourceExhausted(
                        "documents per call",
                        f"a call may send {taken} documents; {document.document_id!r} and any "
                        "after it were not taken: send them on a new call"))
                    return
                taken += 1
                telemetry.document_received(document.document_id, len(document.text))
                async with self._chunker.chunked(
                        document.text, plan, text_path, indexes=document.chunk_indexes,
                        indexes_path=paths.in_document("chunk_indexes"),
                        with_sentences=plan.records.evidence) as chunked:
                    # Held in the budget until every chunk is admitted to the engine.
                    await session.add_document(document.document_id, chunked.token_count,
                                               chunked.chunks, total_chunks=chunked.chunk_count)
        session.close_input()

    # Internals ----------------------------------------------------------------------------

    async def _plan(self, overrides: Overrides, field_prefix: str) -> GenerationPlan:
        options = resolve_options(self.defaults, overrides, limits=self._limit_values,
                                  field_prefix=field_prefix)
        client_set = frozenset(name for name, value in overrides.items() if value is not None)
        adapter = None
        if options.adapter is not None:
            adapter = self.adapters.get(options.adapter)
            if adapter is None:
                known = ", ".join(sorted(self.adapters)) or "none (start it with --lora-modules)"
                raise InvalidArgument.single(
                    f"{field_prefix}.adapter",
                    f"unknown adapter {options.adapter!r}; the server has {known}")
        plan = self._planner.plan(options, field_prefix=field_prefix, client_set=client_set)
        plan = dataclasses.replace(plan, adapter=adapter)
        option = plan.records.custom_option
        if option is not None:
            problem = await self._grammar_check.problem(plan.records.schema)
            if problem is not None:
                raise InvalidArgument.single(f"{field_prefix}.{option}", problem)
        return plan

    def _check_document_size(self, text: str, subject: str) -> None:
        if len(text) > self.limits.max_document_chars:
            raise ResourceExhausted(
                subject,
                f"{len(text)} characters is more than the limit of "
                f"{self.limits.max_document_chars}",
            )

    @contextlib.asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        """Counts a call from its first moment to its last, so a drain waits for all of it."""
        self.load.active_calls += 1
        self.load.calls_begun += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.load.active_calls -= 1
            if self.load.active_calls == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def _session(
        self, plan: GenerationPlan, telemetry: CallTelemetry
    ) -> AsyncIterator[CallSession]:
        """A generation; on exit, for any reason, its engine requests are aborted and its
        telemetry is ended."""
        curator = Curator(plan.options, self._judge) if Curator.active(plan.options) else None
        session = CallSession(
            self._generator, plan, self.load, window=self.limits.max_in_flight_chunks_per_call,
            telemetry=telemetry, curator=curator)
        error: BaseException | None = None
        self._sessions.add(session)
        try:
            yield session
        except BaseException as raised:
            error = raised
            raise
        finally:
            try:
                await session.cancel()
            finally:
                try:
                    # Whatever the cancellation did not reach is aborted by id, even if this
                    # clean-up is itself cancelled.
                    await asyncio.shield(self._engine.abort(session.open_request_ids))
                finally:
                    self._sessions.discard(session)
                    telemetry.ended(error)


@contextlib.asynccontextmanager
async def _beside(work: Coroutine[Any, Any, None], session: CallSession) -> AsyncIterator[None]:
    """Run `work` (feeding documents in) beside the event stream; its error ends the stream."""

    async def guarded() -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            session.fail(error)

    task = asyncio.create_task(guarded())
    session.feeder = task
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        work.close()  # a no-op once it ran; stops a "never awaited" warning if it did not
