"""Generates one chunk's records on the engine, parsing them as the tokens stream in."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Mapping

from ..engine.types import EngineDead, EngineDelta, GenerationEngine, SamplingRequest
from ..quality.curator import Curator, Drop, Verdict
from ..results.cache import CachedOutput, ResultCache, cache_key
from ..text.chunker import Chunk
from ..text.record_parser import MalformedOutput, RecordStreamParser
from ..text.records import REPLACEMENT_CHARACTER, MalformedRecord, Record
from .events import (
    ChunkCompleted,
    ChunkFailed,
    EvidenceSpan,
    FailureCode,
    FinishReason,
    RecordCounts,
    RecordGenerated,
)
from .planner import GenerationPlan

log = logging.getLogger(__name__)

ChunkEvent = RecordGenerated | ChunkCompleted | ChunkFailed


class ChunkGenerator:
    def __init__(self, engine: GenerationEngine, cache: ResultCache | None = None) -> None:
        self._engine = engine
        self._cache = cache

    async def generate(
        self, document_id: str, chunk: Chunk, plan: GenerationPlan, request_id: str,
        trace_headers: Mapping[str, str] | None = None, curator: Curator | None = None,
        pass_index: int = 0,
    ) -> AsyncGenerator[ChunkEvent, None]:
        """Yield each record as it is parsed (and, with a curator, once it is reviewed; in the
        order written), then exactly one ChunkCompleted or ChunkFailed. A later pass over the
        chunk (`pass_index`) samples with a seed of its own and numbers its records on.

        The steps: the request and its cache lookup; the output, replayed or streamed from the
        engine, parsed into records as it arrives (`_ChunkRun.records`); the chunk's outcome
        from how the output ended (`_ChunkRun.outcome`); the output stored when it is whole."""
        run = _ChunkRun(document_id, chunk, plan, request_id, trace_headers, curator,
                        pass_index)
        key = self._cache_key(run.prompt_ids, run.request)
        run.hit = await self._cached(key)
        if run.hit is not None:
            stream = _replay(run.hit)
        else:
            stream = self._engine.generate(run.prompt_ids, run.request, request_id,
                                           trace_headers)
        try:
            async for event in run.records(stream, keep_text=key is not None):
                yield event
        except Exception as error:  # bad output or a failed request: this chunk fails alone
            yield run.broken(error)
            return
        finally:
            await run.stop_reviews()
        outcome = run.outcome()
        if isinstance(outcome, ChunkCompleted) and key is not None and run.hit is None:
            await self._store(key, run.output())
        yield outcome

    def _cache_key(self, prompt_ids: list[int], request: SamplingRequest) -> str | None:
        """The cache key of a seeded request (only those are reproducible), or None."""
        if self._cache is None or request.seed is None:
            return None
        sampling = {"max_tokens": request.max_tokens, "temperature": request.temperature,
                    "top_p": request.top_p, "seed": request.seed,
                    "adapter": None if request.adapter is None else [request.adapter.name,
                                                                       request.adapter.path]}
        return cache_key(self._engine.model_name, prompt_ids, json.dumps(request.json_schema),
                         sampling)

    async def _cached(self, key: str | None) -> CachedOutput | None:
        if key is None or self._cache is None:
            return None
        try:
            return await self._cache.get(key)
        except Exception as error:  # a broken cache costs engine time, never a chunk
            log.warning("result cache read failed: %s", type(error).__name__)
            return None

    async def _store(self, key: str, output: CachedOutput) -> None:
        assert self._cache is not None
        try:
            await self._cache.put(key, output)
        except Exception as error:
            log.warning("result cache write failed: %s", type(error).__name__)


async def _replay(output: CachedOutput) -> AsyncGenerator[EngineDelta, None]:
    """A cached output as the engine's single, final delta."""
    yield EngineDelta(output.text, output.generated_token_count, output.prompt_token_count,
                      True, output.finish_reason)


_SEED_RANGE = 2**63 - 1


def pass_seed(seed: int | None, pass_index: int) -> int | None:
    """The seed of a pass: the call's for the first, a new one derived from it for each later
    one (still reproducible); unseeded stays unseeded."""
    if seed is None or pass_index == 0:
        return seed
    derived = (seed * 1_000_003 + pass_index * 7_919) % _SEED_RANGE
    return derived if derived != -1 else 0


@dataclasses.dataclass
class _Tally:
    generated: int = 0
    invalid: int = 0
    dropped_by_judge: int = 0
    duplicates: int = 0
    sent: int = 0

    def counts(self) -> RecordCounts:
        return RecordCounts(generated=self.generated, invalid=self.invalid,
                            dropped_by_judge=self.dropped_by_judge, duplicates=self.duplicates)


class _ChunkRun:
    """One chunk's generation: its request, what the output has given so far, and the events
    made from it."""

    def __init__(self, document_id: str, chunk: Chunk, plan: GenerationPlan, request_id: str,
                 trace_headers: Mapping[str, str] | None, curator: Curator | None,
                 pass_index: int) -> None:
        self.document_id, self.chunk, self.plan = document_id, chunk, plan
        self.request_id, self.trace_headers, self.curator = request_id, trace_headers, curator
        self.pass_index = pass_index
        options = plan.options
        self.first_index = pass_index * options.num_pairs
        self.prompt_ids = plan.frame.wrap(
            chunk.token_ids if chunk.numbered_ids is None else chunk.numbered_ids)
        self.request = SamplingRequest(
            max_tokens=options.max_generation_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=pass_seed(options.seed, pass_index),
            json_schema=plan.records.schema_for(len(chunk.sentences)),
            adapter=plan.adapter,
        )
        self.parser = RecordStreamParser(plan.records.key)
        # The engine's grammar admits some invalid UTF-8 (overlong forms), which decodes to
        # U+FFFD; when the chunk has none, every one in the output is such a byte, not content.
        self.drop_replacement = REPLACEMENT_CHARACTER not in chunk.text
        self.hit: CachedOutput | None = None
        self.tally = _Tally()
        self.finished = False
        self.finish = FinishReason.UNSPECIFIED
        self.generated_tokens = 0
        self.prompt_tokens = len(self.prompt_ids)
        self.written: list[str] = []
        # Records under review, oldest first: each is sent (or dropped) in the order written.
        self.reviews: deque[asyncio.Task[tuple[RecordGenerated, Verdict]]] = deque()

    async def records(self, stream: AsyncGenerator[EngineDelta, None],
                      keep_text: bool) -> AsyncGenerator[RecordGenerated, None]:
        """The records of the output as they close (reviewed first, with a curator)."""
        # aclosing: leaving early (bad output) closes the stream, which aborts the request.
        async with contextlib.aclosing(stream):
            async for delta in stream:
                self._count(delta, keep_text)
                for item in self.parser.feed(delta.text):
                    event, record = self._accept(item)
                    if self.curator is None:
                        self.tally.sent += 1
                        yield event
                    else:
                        self.reviews.append(asyncio.create_task(self._review(event, record)))
                while self.reviews and self.reviews[0].done():
                    if (kept := self._settle(*self.reviews.popleft().result())) is not None:
                        yield kept
        while self.reviews:
            if (kept := self._settle(*await self.reviews.popleft())) is not None:
                yield kept

    def _count(self, delta: EngineDelta, keep_text: bool) -> None:
        if keep_text and self.hit is None:
            self.written.append(delta.text)
        self.generated_tokens += delta.new_token_count
        self.prompt_tokens = delta.prompt_token_count
        if delta.finished:
            self.finished = True
            self.finish = FinishReason.from_engine(delta.finish_reason)

    def _accept(self, item: object) -> tuple[RecordGenerated, Record]:
        """The parsed record and its event; raises MalformedRecord (counted invalid)."""
        self.tally.generated += 1
        try:
            record = self.plan.records.accept(item, self.drop_replacement)
            return self._event_for(record, self.tally.generated - 1), record
        except MalformedRecord:
            self.tally.invalid += 1
            raise

    def _event_for(self, record: Record, index: int) -> RecordGenerated:
        return RecordGenerated(document_id=self.document_id, chunk_index=self.chunk.index,
                               record_index=self.first_index + index, json=record.json,
                               question=record.question, answer=record.answer,
                               as_pair=self.plan.records.as_pairs,
                               evidence=_evidence(self.chunk, record.citations),
                               pass_index=self.pass_index, cached=self.hit is not None)

    async def _review(self, event: RecordGenerated,
                      record: Record) -> tuple[RecordGenerated, Verdict]:
        assert self.curator is not None
        verdict = await self.curator.review(
            self.chunk, record, f"{self.request_id}-judge-{event.record_index}",
            self.trace_headers)
        return event, verdict

    def _settle(self, event: RecordGenerated, verdict: Verdict) -> RecordGenerated | None:
        if verdict.drop is Drop.JUDGE:
            self.tally.dropped_by_judge += 1
            return None
        if verdict.drop is Drop.DUPLICATE:
            self.tally.duplicates += 1
            return None
        self.tally.sent += 1
        if verdict.rating is None:
            return event
        return dataclasses.replace(event, rating=verdict.rating.score,
                                   rating_reason=verdict.rating.reason)

    async def stop_reviews(self) -> None:
        for task in self.reviews:
            task.cancel()
        await asyncio.gather(*self.reviews, return_exceptions=True)

    def broken(self, error: BaseException) -> ChunkFailed:
        """The chunk's failure when its output or its engine request broke off."""
        if isinstance(error, MalformedOutput):
            # What broke the output counts as one record written, and invalid.
            self.tally.generated += 1
            self.tally.invalid += 1
            return self.failed(FailureCode.INTERNAL,
                               f"the model's output could not be parsed: {error}")
        if isinstance(error, MalformedRecord):
            return self.failed(FailureCode.INTERNAL,
                               f"the model's output could not be parsed: {error}")
        if isinstance(error, EngineDead):
            return self.failed(
                FailureCode.UNAVAILABLE,
                f"the engine stopped while generating this chunk, after {self.tally.sent} "
                "records; retry the chunk once the server is SERVING again")
        # The engine failed this request; other chunks go on.
        log.error("engine request %s failed: %s", self.request_id, type(error).__name__)
        return self.failed(FailureCode.INTERNAL,
                           f"the engine could not run this chunk ({type(error).__name__})")

    def outcome(self) -> ChunkCompleted | ChunkFailed:
        """The chunk's end, from how its output ended."""
        options = self.plan.options
        problem = self.parser.closing_problem()
        whole = problem is None and self.tally.generated == options.num_pairs
        if not self.finished or self.finish is FinishReason.ERROR:
            return self.failed(
                FailureCode.INTERNAL,
                "the engine could not run the request (for example, its output grammar failed "
                "to compile); the server log has the engine's error")
        if self.finish is FinishReason.LENGTH and not whole:
            # A whole record that hit the limit only lost its end-of-sequence token.
            return self.failed(
                FailureCode.RESOURCE_EXHAUSTED,
                f"the output was truncated at max_generation_tokens="
                f"{options.max_generation_tokens} after {self.tally.generated} of "
                f"{options.num_pairs} records")
        if self.finish is FinishReason.ABORT:
            return self.failed(FailureCode.ABORTED,
                               f"the engine aborted the request after {self.tally.sent} records")
        if problem is not None:
            return self.failed(FailureCode.INTERNAL, f"the model's output is malformed: {problem}")
        if not whole:
            return self.failed(
                FailureCode.INTERNAL,
                f"the model returned {self.tally.generated} records where {options.num_pairs} "
                "were asked for")
        return ChunkCompleted(document_id=self.document_id, chunk_index=self.chunk.index,
                              prompt_token_count=self.prompt_tokens,
                              generated_token_count=self.generated_tokens,
                              finish_reason=self.finish, pair_count=self.tally.sent,
                              counts=self.tally.counts(), pass_index=self.pass_index,
                              cached=self.hit is not None)

    def failed(self, code: FailureCode, message: str) -> ChunkFailed:
        return ChunkFailed(document_id=self.document_id, chunk_index=self.chunk.index,
                           code=code, message=message, pair_count=self.tally.sent,
                           generated_token_count=self.generated_tokens,
                           finish_reason=self.finish, counts=self.tally.counts(),
                           pass_index=self.pass_index)

    def output(self) -> CachedOutput:
        """The whole output, as the cache keeps it."""
        return CachedOutput("".join(self.written), self.prompt_tokens, self.generated_tokens,
                            self.finish.value)


def _evidence(chunk: Chunk, citations: tuple[int, ...]) -> tuple[EvidenceSpan, ...]:
    """Cited sentence numbers as spans of the document."""
    spans = []
    for number in citations:
        if not 1 <= number <= len(chunk.sentences):
            raise MalformedRecord(f"a record cites sentence {number}, which the chunk lacks")
        sentence = chunk.sentences[number - 1]
        spans.append(EvidenceSpan(sentence=number, char_start=chunk.char_start + sentence.start,
                                  char_end=chunk.char_start + sentence.end))
    return tuple(spans)
