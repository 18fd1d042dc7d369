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
        chunk (`pass_index`) samples with a seed of its own and numbers its records on."""
        options = plan.options
        first_index = pass_index * options.num_pairs
        records = plan.records
        prompt_ids = plan.frame.wrap(
            chunk.token_ids if chunk.numbered_ids is None else chunk.numbered_ids)
        request = SamplingRequest(
            max_tokens=options.max_generation_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=pass_seed(options.seed, pass_index),
            json_schema=records.schema_for(len(chunk.sentences)),
            adapter=plan.adapter,
        )
        parser = RecordStreamParser(records.key)
        # The engine's grammar admits some invalid UTF-8 (overlong forms), which decodes to
        # U+FFFD; when the chunk has none, every one in the output is such a byte, not content.
        drop_replacement = REPLACEMENT_CHARACTER not in chunk.text
        finished = False
        tally = _Tally()
        generated_tokens = 0
        prompt_tokens = len(prompt_ids)
        finish = FinishReason.UNSPECIFIED
        # Records under review, oldest first: each is sent (or dropped) in the order written.
        reviews: deque[asyncio.Task[tuple[RecordGenerated, Verdict]]] = deque()

        def failed(code: FailureCode, message: str) -> ChunkFailed:
            return ChunkFailed(document_id=document_id, chunk_index=chunk.index, code=code,
                               message=message, pair_count=tally.sent,
                               generated_token_count=generated_tokens, finish_reason=finish,
                               counts=tally.counts(), pass_index=pass_index)

        def event_for(record: Record, index: int) -> RecordGenerated:
            return RecordGenerated(document_id=document_id, chunk_index=chunk.index,
                                   record_index=first_index + index, json=record.json,
                                   question=record.question, answer=record.answer,
                                   as_pair=records.as_pairs,
                                   evidence=_evidence(chunk, record.citations),
                                   pass_index=pass_index, cached=hit is not None)

        async def review(event: RecordGenerated, record: Record) -> tuple[RecordGenerated,
                                                                            Verdict]:
            assert curator is not None
            verdict = await curator.review(
                chunk, record, f"{request_id}-judge-{event.record_index}", trace_headers)
            return event, verdict

        def settle(event: RecordGenerated, verdict: Verdict) -> RecordGenerated | None:
            if verdict.drop is Drop.JUDGE:
                tally.dropped_by_judge += 1
                return None
            if verdict.drop is Drop.DUPLICATE:
                tally.duplicates += 1
                return None
            tally.sent += 1
            if verdict.rating is None:
                return event
            return dataclasses.replace(event, rating=verdict.rating.score,
                                       rating_reason=verdict.rating.reason)

        key = self._cache_key(prompt_ids, request)
        hit = await self._cached(key)
        written: list[str] = []
        try:
            if hit is not None:
                stream = _replay(hit)
            else:
                stream = self._engine.generate(prompt_ids, request, request_id, trace_headers)
            # aclosing: leaving early (bad output) closes the stream, which aborts the request.
            async with contextlib.aclosing(stream):
                async for delta in stream:
                    if key is not None and hit is None:
                        written.append(delta.text)
                    generated_tokens += delta.new_token_count
                    prompt_tokens = delta.prompt_token_count
                    if delta.finished:
                        finished = True
                        finish = FinishReason.from_engine(delta.finish_reason)
                    for item in parser.feed(delta.text):
                        tally.generated += 1
                        try:
                            record = records.accept(item, drop_replacement)
                            event = event_for(record, tally.generated - 1)
                        except MalformedRecord:
                            tally.invalid += 1
                            raise
                        if curator is None:
                            tally.sent += 1
                            yield event
                        else:
                            reviews.append(asyncio.create_task(review(event, record)))
                    while reviews and reviews[0].done():
                        if (kept := settle(*reviews.popleft().result())) is not None:
                            yield kept
            while reviews:
                if (kept := settle(*await reviews.popleft())) is not None:
                    yield kept
        except MalformedOutput as error:
            # What broke the output counts as one record written, and invalid.
            tally.generated += 1
            tally.invalid += 1
            yield failed(FailureCode.INTERNAL, f"the model's output could not be parsed: {error}")
            return
        except MalformedRecord as error:
            yield failed(FailureCode.INTERNAL, f"the model's output could not be parsed: {error}")
            return
        except EngineDead:
            yield failed(FailureCode.UNAVAILABLE,
                         f"the engine stopped while generating this chunk, after {tally.sent} "
                         "records; retry the chunk once the server is SERVING again")
            return
        except Exception as error:  # the engine failed this request; other chunks go on
            log.error("engine request %s failed: %s", request_id, type(error).__name__)
            yield failed(FailureCode.INTERNAL,
                         f"the engine could not run this chunk ({type(error).__name__})")
            return
        finally:
            for task in reviews:
                task.cancel()
            await asyncio.gather(*reviews, return_exceptions=True)

        problem = parser.closing_problem()
        whole = problem is None and tally.generated == options.num_pairs
        if not finished or finish is FinishReason.ERROR:
            yield failed(
                FailureCode.INTERNAL,
                "the engine could not run the request (for example, its output grammar failed "
                "to compile); the server log has the engine's error",
            )
        elif finish is FinishReason.LENGTH and not whole:
            # A whole record that hit the limit only lost its end-of-sequence token.
            yield failed(
                FailureCode.RESOURCE_EXHAUSTED,
                f"the output was truncated at max_generation_tokens="
                f"{options.max_generation_tokens} after {tally.generated} of "
                f"{options.num_pairs} records",
            )
        elif finish is FinishReason.ABORT:
            yield failed(FailureCode.ABORTED,
                         f"the engine aborted the request after {tally.sent} records")
        elif problem is not None:
            yield failed(FailureCode.INTERNAL, f"the model's output is malformed: {problem}")
        elif not whole:
            yield failed(
                FailureCode.INTERNAL,
                f"the model returned {tally.generated} records where {options.num_pairs} were "
                "asked for",
            )
        else:
            if key is not None and hit is None:
                await self._store(key, CachedOutput("".join(written), prompt_tokens,
                                                    generated_tokens, finish.value))
            yield ChunkCompleted(document_id=document_id, chunk_index=chunk.index,
                                 prompt_token_count=prompt_tokens,
                                 generated_token_count=generated_tokens, finish_reason=finish,
                                 pair_count=tally.sent, counts=tally.counts(),
                                 pass_index=pass_index, cached=hit is not None)

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
