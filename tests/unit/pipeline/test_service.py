"""The domain facade on a scripted engine: the stream protocol both generation RPCs speak,
warm-up, availability and the drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from synthqa.contract.options import GenerationOptions
from synthqa.server.pipeline.chunking import TOKEN_BYTES
from synthqa.server.pipeline.errors import InvalidArgument, ResourceExhausted, Unavailable
from synthqa.server.pipeline.events import ChunkCompleted, DocumentCompleted, RecordGenerated
from synthqa.server.pipeline.limits import ServiceLimits
from synthqa.server.pipeline.service import GenerationService
from synthqa.server.pipeline.stream import (
    GENERATE_DOCUMENT_PATHS,
    GENERATE_PATHS,
    DocumentPart,
    OptionsMessage,
    StreamMessage,
)
from synthqa.server.text.chunker import tokenize_document

from ..helpers import until, violations
from .scripted import ScriptedEngine, record

TEXT = "Augustin Fresnel presented a new kind of lens in 1822. " * 3


def make_service(tokenizer: Any, text: str = record(2), **engine: Any) -> GenerationService:
    service = GenerationService(ScriptedEngine(text, tokenizer=tokenizer, **engine),
                                GenerationOptions(num_pairs=2),
                                ServiceLimits(max_document_chars=1000))
    service.open()
    return service


async def stream(*messages: StreamMessage) -> AsyncIterator[StreamMessage]:
    for message in messages:
        yield message


async def run(service: GenerationService, *messages: StreamMessage,
              paths: Any = GENERATE_PATHS) -> list[object]:
    return [event async for event in service.generate(stream(*messages), paths)]


async def test_documents_in_parts_come_back_as_whole_documents(tokenizer: Any) -> None:
    service = make_service(tokenizer)
    events = await run(service, OptionsMessage(),
                       DocumentPart("a", TEXT[:20], more_follows=True), DocumentPart("b", TEXT),
                       DocumentPart("a", TEXT[20:]))
    done = {e.document_id: e for e in events if isinstance(e, DocumentCompleted)}
    assert set(done) == {"a", "b"} and all(d.pair_count == 2 for d in done.values())
    assert sum(isinstance(e, RecordGenerated) for e in events) == 4


async def test_the_first_message_must_be_options(tokenizer: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await run(make_service(tokenizer), DocumentPart("a", TEXT))
    assert list(violations(caught.value)) == ["options"]
    with pytest.raises(InvalidArgument) as caught:
        await run(make_service(tokenizer), OptionsMessage(), OptionsMessage())
    assert list(violations(caught.value)) == ["options"]


async def test_field_paths_follow_the_rpc(tokenizer: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await run(make_service(tokenizer), OptionsMessage(), DocumentPart("a", "  "))
    assert list(violations(caught.value)) == ["document.text"]
    with pytest.raises(InvalidArgument) as caught:
        await run(make_service(tokenizer), OptionsMessage(), DocumentPart("a", "  "),
                  paths=GENERATE_DOCUMENT_PATHS)
    assert list(violations(caught.value)) == ["text"]
    with pytest.raises(InvalidArgument) as caught:
        await run(make_service(tokenizer), OptionsMessage({"num_pairs": 0}),
                  DocumentPart("a", TEXT), paths=GENERATE_DOCUMENT_PATHS)
    assert list(violations(caught.value)) == ["options.num_pairs"]


async def test_an_unfinished_document_at_the_end_is_an_error(tokenizer: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await run(make_service(tokenizer), OptionsMessage(),
                  DocumentPart("a", TEXT, more_follows=True))
    assert list(violations(caught.value)) == ["document.more_follows"]


async def test_a_document_over_the_limit_is_resource_exhausted(tokenizer: Any) -> None:
    with pytest.raises(ResourceExhausted):
        await run(make_service(tokenizer), OptionsMessage(), DocumentPart("a", "x" * 1001))


async def test_an_empty_stream_ends_without_events(tokenizer: Any) -> None:
    assert await run(make_service(tokenizer)) == []
    assert await run(make_service(tokenizer), OptionsMessage()) == []


async def test_calls_are_refused_until_open_and_while_draining(tokenizer: Any) -> None:
    service = GenerationService(ScriptedEngine(record(2), tokenizer=tokenizer),
                                GenerationOptions(num_pairs=2), ServiceLimits())
    with pytest.raises(Unavailable, match="warming up"):
        await run(service, OptionsMessage())
    service.open()
    assert await service.drain(1.0, asyncio.Event()) is True
    with pytest.raises(Unavailable, match="shutting down"):
        await service.chunk_document({}, TEXT)


async def test_warm_up_runs_one_real_generation(tokenizer: Any) -> None:
    engine = ScriptedEngine(record(2), tokenizer=tokenizer)
    service = GenerationService(engine, GenerationOptions(num_pairs=2), ServiceLimits())
    await service.warm_up()
    assert engine.requests == ["synthqa-warm-up"]


async def test_warm_up_fails_when_the_engine_cannot_generate(tokenizer: Any) -> None:
    for engine in (ScriptedEngine("", finish_reason="error", tokenizer=tokenizer),
                   ScriptedEngine('{"pairs":[42]}', tokenizer=tokenizer)):
        service = GenerationService(engine, GenerationOptions(num_pairs=2), ServiceLimits())
        with pytest.raises(RuntimeError, match="warm-up generation failed"):
            await service.warm_up()


async def test_warm_up_accepts_a_random_model_running_out_of_tokens(tokenizer: Any) -> None:
    text = record(2)
    engine = ScriptedEngine(text[: text.index("Question 1")], "length", tokenizer=tokenizer)
    service = GenerationService(engine, GenerationOptions(num_pairs=2), ServiceLimits())
    await service.warm_up()  # a truncated record proves the engine and grammar work
    assert engine.requests == ["synthqa-warm-up"]


async def test_drain_waits_for_calls_and_a_force_ends_the_wait(tokenizer: Any) -> None:
    service = make_service(tokenizer, delay=0.2)
    call = asyncio.create_task(run(service, OptionsMessage(), DocumentPart("a", TEXT)))
    await until(lambda: service.load.in_flight_chunks == 1)
    assert await service.drain(0.05, asyncio.Event()) is False, "the call is still running"
    force = asyncio.Event()
    force.set()
    assert await service.drain(60.0, force) is False
    events = await call
    assert isinstance(events[-1], DocumentCompleted), "a drain lets the call finish"
    assert any(isinstance(e, ChunkCompleted) for e in events)
    assert await service.drain(60.0, asyncio.Event()) is True


async def test_a_chunk_reply_that_would_not_fit_a_message_is_refused_first(tokenizer: Any) -> None:
    service = GenerationService(ScriptedEngine(record(2), tokenizer=tokenizer),
                                GenerationOptions(num_pairs=2),
                                ServiceLimits(max_message_bytes=20_000))
    service.open()
    text = "Lighthouse keepers trimmed the wicks every night. " * 100  # ~5,000 characters
    assert len((await service.chunk_document({"max_chunk_tokens": 200}, text)).chunks) > 1
    with pytest.raises(ResourceExhausted) as caught:
        # Each chunk repeats 190 of its 200 tokens: twenty times the text.
        await service.chunk_document({"max_chunk_tokens": 200, "chunk_overlap_tokens": 190}, text)
    assert caught.value.subject == "reply size"
    assert "chunk_overlap_tokens=190" in caught.value.description


async def test_a_document_that_alone_needs_more_than_the_budget_is_refused_without_retry(
    tokenizer: Any,
) -> None:
    english = "Fresnel lenses bent the light of every lamp. " * 200  # 9,000 characters
    tokens = tokenize_document(tokenizer, english).token_count
    # Room for the text, its tokens, and its chunks' tokens twice over.
    service = memory_service(tokenizer, len(english) + 3 * tokens * TOKEN_BYTES)
    assert (await service.chunk_document({}, english)).chunks
    assert service.memory.held == 0, "the budget is given back"
    # As many characters of another script: three tokens a character for this tokenizer.
    with pytest.raises(ResourceExhausted) as caught:
        await service.chunk_document({}, "灯台は夜に船を導く" * 1000)
    assert caught.value.subject == "document memory"
    assert caught.value.retry_after_seconds is None, "it would not fit an idle server either"
    assert "max_held_document_bytes" in caught.value.description
    assert service.memory.held == 0
    assert (await service.chunk_document({}, english)).chunks


def memory_service(tokenizer: Any, budget: int) -> GenerationService:
    service = GenerationService(ScriptedEngine(record(2), tokenizer=tokenizer),
                                GenerationOptions(num_pairs=2),
                                ServiceLimits(max_document_chars=20_000,
                                              max_held_document_bytes=budget))
    service.open()
    return service


async def test_chunk_indexes_are_bounded_checked_and_counted(tokenizer: Any) -> None:
    service = make_service(tokenizer)

    async def refusal(*indexes: Any) -> str:
        with pytest.raises(InvalidArgument) as caught:
            await run(service, OptionsMessage(), *indexes)
        assert service.memory.held == 0
        return violations(caught.value)["document.chunk_indexes"]

    too_many = range(ServiceLimits().max_chunks_per_document + 1)
    assert "a document makes at most 20000 chunks" in await refusal(
        DocumentPart("a", TEXT, chunk_indexes=too_many))
    assert "chunk index 1 is given twice" in await refusal(
        DocumentPart("a", TEXT, chunk_indexes=(0, 1, 1)))
    assert "given twice" in await refusal(
        DocumentPart("a", TEXT, more_follows=True, chunk_indexes=(0,)),
        DocumentPart("a", TEXT, chunk_indexes=(0,)))
    assert "start at 0" in await refusal(DocumentPart("a", TEXT, chunk_indexes=(-1,)))
    assert "out of range" in await refusal(DocumentPart("a", TEXT, chunk_indexes=(5,)))
    events = await run(service, OptionsMessage(), DocumentPart("a", TEXT, chunk_indexes=(0,)))
    assert [e.chunk_count for e in events if isinstance(e, DocumentCompleted)] == [1]


async def test_a_cancelled_chunking_stops_early_and_holds_its_memory_until_it_has(
    tokenizer: Any,
) -> None:
    service = GenerationService(ScriptedEngine(record(2), tokenizer=tokenizer),
                                GenerationOptions(num_pairs=2),
                                ServiceLimits(max_document_chars=4_000_000))
    service.open()
    text = "Lighthouse keepers trimmed the wicks every night. " * 60_000  # 3 M characters
    started = asyncio.get_running_loop().time()
    await service.chunk_document({"max_chunk_tokens": 1000}, text)
    whole = asyncio.get_running_loop().time() - started

    call = asyncio.create_task(service.chunk_document({"max_chunk_tokens": 1000}, text))
    await until(lambda: service.memory.held > len(text))  # tokens counted as they come
    cancelled = asyncio.get_running_loop().time()
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert service.memory.held > 0, "counted until its thread has stopped"
    await until(lambda: service.memory.held == 0, within=whole * 2)
    # Side by side in one run: stopped at its next batch, not after the whole document.
    assert asyncio.get_running_loop().time() - cancelled < whole / 2


async def test_unfinished_documents_of_all_calls_share_the_memory_budget(tokenizer: Any) -> None:
    service = memory_service(tokenizer, 25_000)
    send_rest = asyncio.Event()

    async def parked_document() -> AsyncIterator[StreamMessage]:
        yield OptionsMessage()
        yield DocumentPart("parked", "Lens " * 4000, more_follows=True)  # 20,000 bytes
        await send_rest.wait()

    async def collect(messages: AsyncIterator[StreamMessage]) -> list[object]:
        return [event async for event in service.generate(messages, GENERATE_PATHS)]

    parked = asyncio.create_task(collect(parked_document()))
    await until(lambda: service.memory.held == 20_000)
    assert service.info().held_document_bytes == 20_000
    with pytest.raises(ResourceExhausted) as caught:
        await run(service, OptionsMessage(), DocumentPart("other", "Fresnel lens. " * 36))
    assert caught.value.subject == "server memory" and caught.value.retry_after_seconds
    assert service.memory.held == 20_000, "the refused call held nothing"

    # A call that ends early (here cancelled mid-document) gives its memory back.
    parked.cancel()
    await asyncio.gather(parked, return_exceptions=True)
    assert service.memory.held == 0
    done = [e for e in await run(service, OptionsMessage(),
                                 DocumentPart("other", "Fresnel lens. " * 36))
            if isinstance(e, DocumentCompleted)]
    assert done and done[0].pair_count > 0
    assert service.memory.held == 0, "a finished call gives its memory back"
