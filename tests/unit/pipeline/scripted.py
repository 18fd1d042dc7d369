"""A scripted stand-in engine and plain plans for the pipeline's logic tests. The end-to-end
tests run the real engine; this covers what a random model cannot be made to do on demand:
truncated, malformed and failing outputs, and exact concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from synthqa.contract.options import GenerationOptions
from synthqa.server.engine.types import EngineDead, EngineDelta, EngineLayout, SamplingRequest
from synthqa.server.pipeline.planner import GenerationPlan
from synthqa.server.text.chunker import Chunk
from synthqa.server.text.prompts import PromptFrame
from synthqa.server.text.records import record_format


def record(num_pairs: int) -> str:
    pairs = [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(num_pairs)]
    return json.dumps({"pairs": pairs}, separators=(",", ":"))


class ScriptedEngine:
    """Replays a text in small deltas; tracks concurrency and aborted requests. `fail` raises
    on the third delta: an exception instance, or True for a generic engine error."""

    model_name = "scripted"
    max_model_len = 2048
    layout = EngineLayout(device="scripted")

    def __init__(self, text: str, finish_reason: str = "stop", fail: bool | Exception = False,
                 delay: float = 0.0, tokenizer: Any = None) -> None:
        self.text, self.finish_reason, self.fail, self.delay = text, finish_reason, fail, delay
        self.tokenizer = tokenizer
        self.active = 0
        self.peak = 0
        self.requests: list[str] = []
        self.cancelled: list[str] = []
        self.aborted: list[str] = []
        self.trace_headers: list[Mapping[str, str] | None] = []

    @property
    def unfinished_requests(self) -> int:
        return self.active

    async def generate(self, prompt_ids: list[int], request: SamplingRequest,
                       request_id: str, trace_headers: Mapping[str, str] | None = None,
                       ) -> AsyncIterator[EngineDelta]:
        self.requests.append(request_id)
        self.trace_headers.append(trace_headers)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            pieces = [self.text[i:i + 7] for i in range(0, len(self.text), 7)] or [""]
            for n, piece in enumerate(pieces):
                await asyncio.sleep(self.delay)
                if self.fail and n == 2:
                    raise self.fail if isinstance(self.fail, Exception) else RuntimeError("boom")
                last = n == len(pieces) - 1
                yield EngineDelta(piece, 2, len(prompt_ids), last,
                                  self.finish_reason if last else None)
        except asyncio.CancelledError:
            self.cancelled.append(request_id)
            raise
        finally:
            self.active -= 1

    async def abort(self, request_ids: Iterable[str]) -> None:
        self.aborted.extend(request_ids)


def make_plan(num_pairs: int = 3) -> GenerationPlan:
    options = GenerationOptions(num_pairs=num_pairs, max_chunk_tokens=10, chunk_overlap_tokens=0)
    return GenerationPlan(options, record_format(options, frozenset()), PromptFrame((1, 2), (3,)),
                          10)


def chunks(count: int) -> list[Chunk]:
    return [Chunk(i, f"text {i}", (10 + i, 11 + i), 6 * i, 6 * i + 6) for i in range(count)]


__all__ = ["EngineDead", "ScriptedEngine", "chunks", "make_plan", "record"]
