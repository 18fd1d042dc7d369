"""A call's session: documents merged into one stream, the per-call window, the server-wide
cap, backpressure from a slow reader, and cancellation that reaches the engine."""

from __future__ import annotations

import asyncio

from synthqa.server.pipeline.events import (
    ChunkCompleted,
    ChunkStarted,
    DocumentCompleted,
    RecordGenerated,
)
from synthqa.server.pipeline.generator import ChunkGenerator
from synthqa.server.pipeline.session import CallSession, ServerLoad

from ..helpers import until
from .scripted import ScriptedEngine, chunks, make_plan, record


async def collect(session: CallSession, documents: dict[str, int]) -> list[object]:
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
    session = CallSession(ChunkGenerator(engine), make_plan(), ServerLoad(100),
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
            assert kinds == [ChunkStarted] + [RecordGenerated] * 3 + [ChunkCompleted]
        last_of_document = max(i for i, e in enumerate(events)
                               if getattr(e, "document_id", None) == document_id)
        assert isinstance(events[last_of_document], DocumentCompleted)


async def test_server_wide_cap_spans_sessions() -> None:
    engine = ScriptedEngine(record(3), delay=0.001)
    load = ServerLoad(2)
    sessions = [CallSession(ChunkGenerator(engine), make_plan(), load, window=8)
                for _ in range(3)]
    await asyncio.gather(*(collect(s, {"d": 4}) for s in sessions))
    assert engine.peak == 2


async def test_cancel_stops_every_generation() -> None:
    engine = ScriptedEngine(record(3), delay=0.5)
    session = CallSession(ChunkGenerator(engine), make_plan(), ServerLoad(100),
                              window=4)
    await session.add_document("a", 8, chunks(4))
    await until(lambda: engine.active == 4)
    await session.cancel()
    assert engine.active == 0 and len(engine.cancelled) == 4
    assert len(session.open_request_ids) == 4, "kept for the abort by id"


async def test_a_slow_reader_holds_back_new_chunks_but_not_the_engine() -> None:
    engine = ScriptedEngine(record(3))
    load = ServerLoad(2)
    idle_reader = CallSession(ChunkGenerator(engine), make_plan(), load,
                                  window=2)
    adding = asyncio.create_task(idle_reader.add_document("a", 20, chunks(10)))
    # Nobody reads: two chunks run, finish and wait to be read; the third waits for a slot.
    await until(lambda: len(engine.requests) == 2 and engine.active == 0)
    await asyncio.sleep(0.05)  # room for a wrongly admitted third chunk to show up
    assert not adding.done() and len(engine.requests) == 2
    assert load.in_flight_chunks == 0, "finished chunks do not hold engine slots"
    # Another call still gets the engine.
    other = CallSession(ChunkGenerator(engine), make_plan(), load, window=2)
    events = await asyncio.wait_for(collect(other, {"b": 3}), timeout=5)
    assert sum(isinstance(e, DocumentCompleted) for e in events) == 1
    adding.cancel()
    await idle_reader.cancel()


async def test_one_document_completion_even_when_the_reader_lags() -> None:
    engine = ScriptedEngine(record(2), delay=0.001)
    session = CallSession(ChunkGenerator(engine), make_plan(2), ServerLoad(10),
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
    engine = ScriptedEngine(record(3), delay=0.5)
    session = CallSession(ChunkGenerator(engine), make_plan(), ServerLoad(10),
                              window=3)
    await session.add_document("a", 6, chunks(3))
    await until(lambda: engine.active == 3)  # mid-generation, nobody reading
    await session.cancel()
    assert engine.active == 0, "every engine stream is closed by the time cancel returns"
    assert sorted(session.open_request_ids) == sorted(engine.cancelled)


async def test_batches_hold_what_was_ready_in_order_and_no_more_than_asked() -> None:
    engine = ScriptedEngine(record(3))
    session = CallSession(ChunkGenerator(engine), make_plan(), ServerLoad(10), window=4)
    await session.add_document("a", 8, chunks(4))
    session.close_input()
    await until(lambda: len(engine.requests) == 4 and engine.active == 0)
    batches = [batch async for batch in session.event_batches(7)]
    assert [len(batch) for batch in batches] == [7, 7, 7], "all 21 were ready at once"
    events = [event for batch in batches for event in batch]
    for index in range(4):
        kinds = [type(e) for e in events if getattr(e, "chunk_index", None) == index]
        assert kinds == [ChunkStarted] + [RecordGenerated] * 3 + [ChunkCompleted]
    assert isinstance(events[-1], DocumentCompleted)


async def test_a_slot_freed_behind_a_batched_event_opens_only_once_the_batch_is_handed_over(
) -> None:
    # Backpressure as one event at a time: the next chunk may start only when the reader
    # comes back for more after the chunk before it was handed over whole.
    engine = ScriptedEngine(record(2))
    session = CallSession(ChunkGenerator(engine), make_plan(2), ServerLoad(10), window=1)
    adding = asyncio.create_task(session.add_document("a", 6, chunks(3)))
    await until(lambda: len(engine.requests) == 1 and engine.active == 0)
    batches = session.event_batches(100)
    first = await anext(batches)
    assert [type(e) for e in first] == [ChunkStarted, RecordGenerated, RecordGenerated,
                                        ChunkCompleted]
    await asyncio.sleep(0.05)  # room for a chunk started too early to show up
    assert len(engine.requests) == 1, "the batch is not handed over yet"
    second = await anext(batches)
    assert len(engine.requests) == 2
    # Only what is ready: the next chunk has started, its records are still to come.
    assert isinstance(second[0], ChunkStarted) and second[0].chunk_index == 1
    assert all(getattr(e, "chunk_index", None) == 1 for e in second)
    adding.cancel()
    await session.cancel()
    await batches.aclose()


async def test_a_failure_after_ready_events_ends_the_batches_after_them() -> None:
    engine = ScriptedEngine(record(2))
    session = CallSession(ChunkGenerator(engine), make_plan(2), ServerLoad(10), window=1)
    await session.add_document("a", 2, chunks(1))
    await until(lambda: len(engine.requests) == 1 and engine.active == 0)
    session.fail(RuntimeError("the call broke"))
    batches = session.event_batches(100)
    first = await anext(batches)
    assert [type(e) for e in first] == [ChunkStarted, RecordGenerated, RecordGenerated,
                                        ChunkCompleted, DocumentCompleted]
    try:
        await anext(batches)
    except RuntimeError as error:
        assert str(error) == "the call broke"
    else:
        raise AssertionError("the failure was not raised")
