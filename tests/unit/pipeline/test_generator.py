"""One chunk on the engine: pairs as they parse, then exactly one outcome with a reason."""

from __future__ import annotations

from synthqa.server.engine.types import EngineDead, EngineRequestFailed
from synthqa.server.pipeline.events import ChunkCompleted, ChunkFailed, FailureCode, RecordGenerated
from synthqa.server.pipeline.generator import ChunkGenerator

from .scripted import ScriptedEngine, chunks, make_plan, record


async def run_chunk(engine: ScriptedEngine, num_pairs: int = 3) -> list[object]:
    generator = ChunkGenerator(engine)
    return [e async for e in generator.generate("doc", chunks(1)[0], make_plan(num_pairs), "r")]


async def test_complete_output_yields_every_pair_then_completion() -> None:
    events = await run_chunk(ScriptedEngine(record(3)))
    assert [type(e) for e in events] == [RecordGenerated] * 3 + [ChunkCompleted]
    assert [e.record_index for e in events[:3]] == [0, 1, 2]  # type: ignore[attr-defined]
    completed = events[-1]
    assert isinstance(completed, ChunkCompleted)
    assert completed.pair_count == 3 and completed.prompt_token_count == 5


async def test_truncated_output_reports_the_pairs_it_kept() -> None:
    text = record(3)
    events = await run_chunk(ScriptedEngine(text[: text.index("Question 2")], "length"))
    assert [type(e) for e in events] == [RecordGenerated] * 2 + [ChunkFailed]
    failure = events[-1]
    assert isinstance(failure, ChunkFailed)
    assert failure.code is FailureCode.RESOURCE_EXHAUSTED
    assert failure.pair_count == 2 and "truncated" in failure.message


async def test_malformed_output_fails_the_chunk() -> None:
    events = await run_chunk(ScriptedEngine('{"pairs":[42]}'))
    assert len(events) == 1 and isinstance(events[0], ChunkFailed)
    assert events[0].code is FailureCode.INTERNAL


async def test_too_few_pairs_fail_the_chunk() -> None:
    events = await run_chunk(ScriptedEngine(record(2)), num_pairs=3)
    assert isinstance(events[-1], ChunkFailed) and events[-1].pair_count == 2


async def test_a_request_the_engine_fails_fails_only_that_chunk_as_internal() -> None:
    events = await run_chunk(ScriptedEngine(record(3), fail=EngineRequestFailed("bad request")))
    failure = events[-1]
    assert isinstance(failure, ChunkFailed) and failure.code is FailureCode.INTERNAL
    assert "EngineRequestFailed" in failure.message


async def test_a_dead_engine_is_unavailable_with_advice_to_retry() -> None:
    events = await run_chunk(ScriptedEngine(record(3), fail=EngineDead("gone")))
    failure = events[-1]
    assert isinstance(failure, ChunkFailed) and failure.code is FailureCode.UNAVAILABLE
    # The message makes sense without the server's log.
    assert "retry" in failure.message and "stack trace" not in failure.message


async def test_engine_error_finish_fails_the_chunk_with_a_reason() -> None:
    events = await run_chunk(ScriptedEngine("", finish_reason="error"))
    assert len(events) == 1 and isinstance(events[0], ChunkFailed)
    assert events[0].code is FailureCode.INTERNAL and "could not run" in events[0].message


class _OrderedCurator:
    """Reviews records out of order (later ones first) and drops by question."""

    def __init__(self, verdicts: dict[str, object]) -> None:
        self.verdicts = verdicts

    async def review(self, chunk: object, record: object, request_id: str,
                     trace_headers: object = None) -> object:
        import asyncio

        question = record.question  # type: ignore[attr-defined]
        await asyncio.sleep(0.03 * (3 - int(question.split()[1][0])))
        return self.verdicts[question]


async def test_reviewed_records_go_out_in_written_order_with_their_counts() -> None:
    from synthqa.server.quality.curator import Drop, Verdict
    from synthqa.server.quality.judge import Rating

    curator = _OrderedCurator({
        "Question 0?": Verdict(None, Rating(9, "good")),
        "Question 1?": Verdict(Drop.JUDGE, Rating(2, "poor")),
        "Question 2?": Verdict(Drop.DUPLICATE),
        "Question 3?": Verdict(None, Rating(7, "fine")),
    })
    generator = ChunkGenerator(ScriptedEngine(record(4)))
    events = [e async for e in generator.generate("doc", chunks(1)[0], make_plan(4), "r",
                                                  curator=curator)]  # type: ignore[arg-type]
    kept = [e for e in events if isinstance(e, RecordGenerated)]
    assert [(e.record_index, e.rating, e.rating_reason) for e in kept] == [
        (0, 9, "good"), (3, 7, "fine")]
    completed = events[-1]
    assert isinstance(completed, ChunkCompleted) and completed.pair_count == 2
    counts = completed.counts
    assert (counts.generated, counts.invalid, counts.dropped_by_judge, counts.duplicates) == (
        4, 0, 1, 1)


async def test_closing_the_chunk_cancels_its_reviews() -> None:
    import asyncio

    started: list[str] = []

    class Slow:
        async def review(self, chunk: object, record: object, request_id: str,
                         trace_headers: object = None) -> object:
            started.append(request_id)
            await asyncio.sleep(30)

    generator = ChunkGenerator(ScriptedEngine(record(3)))
    stream = generator.generate("doc", chunks(1)[0], make_plan(3), "r",
                                curator=Slow())  # type: ignore[arg-type]
    waiter = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.2)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await stream.aclose()
    assert started == ["r-judge-0", "r-judge-1", "r-judge-2"]
    assert not [t for t in asyncio.all_tasks()
                if getattr(t.get_coro(), "__qualname__", "").endswith("<locals>.review")]
