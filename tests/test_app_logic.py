"""Start-up and shutdown decisions of the server, on stand-ins for gRPC and the engine. The
lifecycle tests run the real thing; these cover what a real engine cannot be made to do."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from synthqa.server.app import SynthQAServer, _warm_up
from synthqa.server.chunker import chunk_document, tokenize_document
from synthqa.server.config import parse
from synthqa.server.events import ChunkCompleted, ChunkFailed, FailureCode, FinishReason
from synthqa.server.options import GenerationOptions
from synthqa.server.planner import Planner
from synthqa.server.prompts import PromptBuilder

from .serverproc import TINY_MODEL


def service_whose_generation_ends_with(outcome):
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    plan = Planner(PromptBuilder(tokenizer), 2048).plan(GenerationOptions())

    class Generator:
        async def generate(self, document_id, chunk, plan, request_id):
            yield outcome

    async def chunk(text, plan, field_path):
        document = tokenize_document(tokenizer, text)
        return SimpleNamespace(chunks=chunk_document(document, plan.chunk_token_budget, 0))

    return SimpleNamespace(default_plan=plan, chunk=chunk, generator=Generator())


def failure(code: FailureCode) -> ChunkFailed:
    return ChunkFailed("warm-up", 0, code, "broken", 0, 0, FinishReason.UNSPECIFIED)


def test_warm_up_fails_when_the_engine_cannot_generate() -> None:
    for code in (FailureCode.INTERNAL, FailureCode.UNAVAILABLE):
        with pytest.raises(RuntimeError, match="warm-up generation failed"):
            asyncio.run(_warm_up(service_whose_generation_ends_with(failure(code))))


def test_warm_up_accepts_a_random_model_running_out_of_tokens() -> None:
    asyncio.run(_warm_up(service_whose_generation_ends_with(
        failure(FailureCode.RESOURCE_EXHAUSTED))))
    asyncio.run(_warm_up(service_whose_generation_ends_with(
        ChunkCompleted("warm-up", 0, 10, 10, FinishReason.STOP, 5))))


def test_a_second_signal_skips_the_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test process's own children (a test server) are not this stand-in server's to stop.
    monkeypatch.setattr("synthqa.server.app.terminate_children", lambda pid: 0)
    engine_args, settings = parse(["--model", str(TINY_MODEL), "--shutdown-grace", "30"])

    class Busy:
        draining = False

        async def wait_idle(self) -> None:
            await asyncio.Event().wait()  # a call that never finishes

    class GrpcServer:
        async def stop(self, grace):
            return None

    async def scenario() -> float:
        server = SynthQAServer(engine_args, settings)
        engine = SimpleNamespace(shutdown=lambda: None)
        started = time.monotonic()
        server.request_stop()
        asyncio.get_running_loop().call_later(0.2, server.request_stop)
        await server._shut_down(GrpcServer(), Busy(), engine)  # type: ignore[arg-type]
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5
