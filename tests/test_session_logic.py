"""Session and generator logic around the engine, on a scripted stand-in engine.

The end-to-end tests run the real engine; this file covers what a random model cannot be made
to do on demand: truncated, malformed and failing outputs, and the concurrency window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from synthqa.server.chunker import Chunk
from synthqa.server.engine import EngineDelta, SamplingRequest
from synthqa.server.events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    FailureCode,
    PairGenerated,
)
from synthqa.server.generator import ChunkGenerator
from synthqa.server.options import GenerationOptions
from synthqa.server.planner import GenerationPlan
from synthqa.server.prompts import PromptFrame
from synthqa.server.schema import pair_bounds, qa_schema
from synthqa.server.session import GenerateSession, SessionLoad


def record(num_pairs: int) -> str:
    pairs = [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(num_pairs)]
    return json.dumps({"pairs": pairs}, separators=(",", ":"))


class ScriptedEngine:
    """Replays a text in small deltas; tracks concurrency and aborted requests."""

    def __init__(self, text: str, finish_reason: str = "stop", fail: bool = False,
                 delay: float = 0.0) -> None:
        self.text, self.finish_reason, self.fail, self.delay = text, finish_reason, fail, delay
        self.active = 0
        self.peak = 0
        self.cancelled: list[str] = []
        self.is_dead = False

    async def generate(self, prompt_ids: list[int], request: SamplingRequest,
                       request_id: str) -> AsyncIterator[EngineDelta]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            pieces = [self.text[i:i + 7] for i in range(0, len(self.text), 7)] or [""]
            for n, piece in enumerate(pieces):
                await asyncio.sleep(self.delay)
                if self.fail and n == 2:
                    raise RuntimeError("engine step failed")
                last = n == len(pieces) - 1
                yield EngineDelta(piece, 2, len(prompt_ids), last,
                                  self.finish_reason if last else None)
        except asyncio.CancelledError:
            self.cancelled.append(request_id)
            raise
        finally:
            self.active -= 1


def make_plan(num_pairs: int = 3) -> GenerationPlan:
    options = GenerationOptions(num_pairs=num_pairs, max_chunk_tokens=10, chunk_overlap_tokens=0)
    bounds = pair_bounds(num_pairs, options.max_generation_tokens)
    assert bounds is not None
    return GenerationPlan(options, bounds, PromptFrame((1, 2), (3,)), 10,
                          qa_schema(num_pairs, bounds))


def chunks(count: int) -> list[Chunk]:
    return [Chunk(i, f"text {i}", (10 + i, 11 + i), 6 * i, 6 * i + 6) for i in range(count)]


async def run_chunk(engine: ScriptedEngine, num_pairs: int = 3) -> list[object]:
    generator = ChunkGenerator(engine)  # type: ignore[arg-type]
    return [e async for e in generator.generate("doc", chunks(1)[0], make_plan(num_pairs), "r")]


async def test_complete_output_yields_every_pair_then_completion() -> None:
    events = await run_chunk(ScriptedEngine(record(3)))
    assert [type(e) for e in events] == [PairGenerated] * 3 + [ChunkCompleted]
    assert [e.pair_index for e in events[:3]] == [0, 1, 2]
    assert events[-1].pair_count == 3 and events[-1].prompt_token_count == 5


async def test_truncated_output_reports_the_pairs_it_kept() -> None:
    text = record(3)
    events = await run_chunk(ScriptedEngine(text[: text.index("Question 2")], "length"))
    assert [type(e) for e in events] == [PairGenerated] * 2 + [ChunkFailed]
    failure = events[-1]
    assert failure.code is FailureCode.RESOURCE_EXHAUSTED
    assert failure.pair_count == 2 and "truncated" in failure.message


async def test_malformed_output_fails_the_chunk() -> None:
    events = await run_chunk(ScriptedEngine('{"pairs":[42]}'))
    assert len(events) == 1 and isinstance(events[0], ChunkFailed)
    assert events[0].code is FailureCode.INTERNAL


async def test_too_few_pairs_fail_the_chunk() -> None:
    events = await run_chunk(ScriptedEngine(record(2)), num_pairs=3)
    assert isinstance(events[-1], ChunkFailed) and events[-1].pair_count == 2


async def test_engine_error_fails_only_that_chunk() -> None:
    events = await run_chunk(ScriptedEngine(record(3), fail=True))
    assert isinstance(events[-1], ChunkFailed) and "engine failed" in events[-1].message


async def collect(session: GenerateSession, documents: dict[str, int]) -> list[object]:
    async def feed() -> None:
        for document_id, count in documents.items():
            await session.add_document(document_id, 2 * count, chunks(count))
        session.close_input()

    feeder = asyncio.create_task(feed())
    events = [e async for e in session.events()]
    await feeder
    return events


async def test_session_merges_documents_and_respects_the_window() -> None:
    engine = ScriptedEngine(record(3), delay=0.001)
    session = GenerateSession(ChunkGenerator(engine), make_plan(), SessionLoad(100),  # type: ignore[arg-type]
                              window=3)
    events = await collect(session, {"a": 5, "b": 2})
    assert engine.peak == 3, "no more than the window in the engine at once"
    done = {e.document_id: e for e in events if isinstance(e, DocumentCompleted)}
    assert done["a"].pair_count == 15 and done["b"].pair_count == 6
    assert done["a"].completed_chunk_count == 5 and done["a"].token_count == 10
    for document_id, count in (("a", 5), ("b", 2)):
        for index in range(count):
            kinds = [type(e) for e in events
                     if getattr(e, "document_id", None) == document_id
                     and getattr(e, "chunk_index", None) == index]
            assert kinds == [ChunkStarted] + [PairGenerated] * 3 + [ChunkCompleted]
        last_of_document = max(i for i, e in enumerate(events)
                               if getattr(e, "document_id", None) == document_id)
        assert isinstance(events[last_of_document], DocumentCompleted)


async def test_server_wide_cap_spans_sessions() -> None:
    engine = ScriptedEngine(record(3), delay=0.001)
    load = SessionLoad(2)
    sessions = [GenerateSession(ChunkGenerator(engine), make_plan(), load, window=8)  # type: ignore[arg-type]
                for _ in range(3)]
    await asyncio.gather(*(collect(s, {"d": 4}) for s in sessions))
    assert engine.peak == 2


async def test_cancel_stops_every_generation() -> None:
    engine = ScriptedEngine(record(3), delay=0.05)
    session = GenerateSession(ChunkGenerator(engine), make_plan(), SessionLoad(100),  # type: ignore[arg-type]
                              window=4)
    await session.add_document("a", 8, chunks(4))
    await asyncio.sleep(0.02)
    assert engine.active == 4
    await session.cancel()
    assert engine.active == 0 and len(engine.cancelled) == 4
    assert len(session.open_request_ids) == 4, "kept for the abort by id"


async def test_a_slow_reader_holds_back_new_chunks_but_not_the_engine() -> None:
    engine = ScriptedEngine(record(3))
    load = SessionLoad(2)
    idle_reader = GenerateSession(ChunkGenerator(engine), make_plan(), load,  # type: ignore[arg-type]
                                  window=2)
    adding = asyncio.create_task(idle_reader.add_document("a", 20, chunks(10)))
    await asyncio.sleep(0.05)
    # Nobody reads: two chunks ran and wait to be read; the third waits for a window slot.
    assert not adding.done() and engine.peak <= 2
    assert load.in_flight_chunks == 0, "finished chunks do not hold engine slots"
    # Another call still gets the engine.
    other = GenerateSession(ChunkGenerator(engine), make_plan(), load, window=2)  # type: ignore[arg-type]
    events = await asyncio.wait_for(collect(other, {"b": 3}), timeout=5)
    assert sum(isinstance(e, DocumentCompleted) for e in events) == 1
    adding.cancel()
    await idle_reader.cancel()


async def test_one_document_completion_even_when_the_reader_lags() -> None:
    engine = ScriptedEngine(record(2), delay=0.001)
    session = GenerateSession(ChunkGenerator(engine), make_plan(2), SessionLoad(10),  # type: ignore[arg-type]
                              window=4)

    async def feed() -> None:
        await session.add_document("a", 8, chunks(4))
        session.close_input()

    feeder = asyncio.create_task(feed())
    events = []
    async for event in session.events():
        events.append(event)
        await asyncio.sleep(0.01)  # a slow reader: chunks finish while it lags
    await feeder
    done = [e for e in events if isinstance(e, DocumentCompleted)]
    assert len(done) == 1 and done[0].pair_count == 8 and events[-1] is done[0]


async def test_cancel_aborts_chunks_waiting_for_their_reader() -> None:
    engine = ScriptedEngine(record(3), delay=0.02)
    session = GenerateSession(ChunkGenerator(engine), make_plan(), SessionLoad(10),  # type: ignore[arg-type]
                              window=3)
    await session.add_document("a", 6, chunks(3))
    await asyncio.sleep(0.05)  # mid-generation, nobody reading
    assert engine.active == 3
    await session.cancel()
    assert engine.active == 0, "every engine stream is closed by the time cancel returns"
    assert sorted(session.open_request_ids) == sorted(engine.cancelled)


async def test_engine_error_finish_fails_the_chunk_with_a_reason() -> None:
    events = await run_chunk(ScriptedEngine("", finish_reason="error"))
    assert len(events) == 1 and isinstance(events[0], ChunkFailed)
    assert events[0].code is FailureCode.INTERNAL and "could not run" in events[0].message
