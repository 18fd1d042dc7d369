"""Generates one chunk's records on the engine, parsing them as the tokens stream in."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping

from ..engine.types import EngineDead, GenerationEngine, SamplingRequest
from ..text.chunker import Chunk
from ..text.record_parser import MalformedOutput, RecordStreamParser
from ..text.records import REPLACEMENT_CHARACTER, MalformedRecord
from .events import (
    ChunkCompleted,
    ChunkFailed,
    EvidenceSpan,
    FailureCode,
    FinishReason,
    RecordGenerated,
)
from .planner import GenerationPlan

log = logging.getLogger(__name__)

ChunkEvent = RecordGenerated | ChunkCompleted | ChunkFailed


class ChunkGenerator:
    def __init__(self, engine: GenerationEngine) -> None:
        self._engine = engine

    async def generate(
        self, document_id: str, chunk: Chunk, plan: GenerationPlan, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[ChunkEvent, None]:
        """Yield each pair as it is parsed, then exactly one ChunkCompleted or ChunkFailed."""
        options = plan.options
        records = plan.records
        prompt_ids = plan.frame.wrap(
            chunk.token_ids if chunk.numbered_ids is None else chunk.numbered_ids)
        request = SamplingRequest(
            max_tokens=options.max_generation_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=options.seed,
            json_schema=records.schema_for(len(chunk.sentences)),
        )
        parser = RecordStreamParser(records.key)
        # The engine's grammar admits some invalid UTF-8 (overlong forms), which decodes to
        # U+FFFD; when the chunk has none, every one in the output is such a byte, not content.
        drop_replacement = REPLACEMENT_CHARACTER not in chunk.text
        finished = False
        pairs = 0
        generated = 0
        prompt_tokens = len(prompt_ids)
        finish = FinishReason.UNSPECIFIED

        def failed(code: FailureCode, message: str) -> ChunkFailed:
            return ChunkFailed(document_id, chunk.index, code, message, pairs, generated, finish)

        try:
            stream = self._engine.generate(prompt_ids, request, request_id, trace_headers)
            # aclosing: leaving early (bad output) closes the stream, which aborts the request.
            async with contextlib.aclosing(stream):
                async for delta in stream:
                    generated += delta.new_token_count
                    prompt_tokens = delta.prompt_token_count
                    if delta.finished:
                        finished = True
                        finish = FinishReason.from_engine(delta.finish_reason)
                    for item in parser.feed(delta.text):
                        record = records.accept(item, drop_replacement)
                        yield RecordGenerated(document_id, chunk.index, pairs, record.json,
                                              record.question, record.answer, records.as_pairs,
                                              _evidence(chunk, record.citations))
                        pairs += 1
        except (MalformedOutput, MalformedRecord) as error:
            yield failed(FailureCode.INTERNAL, f"the model's output could not be parsed: {error}")
            return
        except EngineDead:
            yield failed(FailureCode.UNAVAILABLE,
                         f"the engine stopped while generating this chunk, after {pairs} pairs; "
                         "retry the chunk once the server is SERVING again")
            return
        except Exception as error:  # the engine failed this request; other chunks go on
            log.error("engine request %s failed: %s", request_id, type(error).__name__)
            yield failed(FailureCode.INTERNAL,
                         f"the engine could not run this chunk ({type(error).__name__})")
            return

        problem = parser.closing_problem()
        whole = problem is None and pairs == options.num_pairs
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
                f"{options.max_generation_tokens} after {pairs} of {options.num_pairs} records",
            )
        elif finish is FinishReason.ABORT:
            yield failed(FailureCode.ABORTED, f"the engine aborted the request after {pairs} pairs")
        elif problem is not None:
            yield failed(FailureCode.INTERNAL, f"the model's output is malformed: {problem}")
        elif not whole:
            yield failed(
                FailureCode.INTERNAL,
                f"the model returned {pairs} records where {options.num_pairs} were asked for",
            )
        else:
            yield ChunkCompleted(document_id, chunk.index, prompt_tokens, generated, finish, pairs)


def _evidence(chunk: Chunk, citations: tuple[int, ...]) -> tuple[EvidenceSpan, ...]:
    """Cited sentence numbers as spans of the document."""
    spans = []
    for number in citations:
        if not 1 <= number <= len(chunk.sentences):
            raise MalformedRecord(f"a record cites sentence {number}, which the chunk lacks")
        sentence = chunk.sentences[number - 1]
        spans.append(EvidenceSpan(number, chunk.char_start + sentence.start,
                                  chunk.char_start + sentence.end))
    return tuple(spans)
