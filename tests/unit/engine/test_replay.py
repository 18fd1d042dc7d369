"""The replay engine on a small hand-made recording, the recording engine on a stand-in, and
that no server flag can reach either."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from synthqa.server.engine.replay import (
    FORMAT_VERSION,
    HEADER_KEY,
    Recording,
    RecordingEngine,
    ReplayEngine,
    read_lines,
    request_key,
    schema_kind,
    write_recording,
)
from synthqa.server.engine.types import (
    EngineDelta,
    EngineLayout,
    EngineRequestFailed,
    SamplingRequest,
)
from tests.paths import REPO, TINY_MODEL

FACT = {"type": "object", "properties": {"fact": {"type": "string", "maxLength": 40}},
        "required": ["fact"], "additionalProperties": False}
OTHER = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
REQUEST = SamplingRequest(max_tokens=32, temperature=0.7, top_p=0.95, seed=7, json_schema=FACT)
HEADER = {HEADER_KEY: FORMAT_VERSION, "model": "tiny", "max_model_len": 2048, "device": "cpu"}
PROMPT_A = [1, 2, 3]
PROMPT_B = [4, 5, 6, 7]


def line(prompt: list[int], deltas: list[list[Any]], request: SamplingRequest = REQUEST,
         ) -> dict[str, Any]:
    return {"key": request_key(prompt, request), "kind": schema_kind(request.json_schema),
            "prompt_token_count": len(prompt), "sampling": {}, "deltas": deltas}


A_DELTAS = [['{"fact":', 8, False, None], ['"Lights guide', 8, False, None],
            [' ships."}', 3, True, "stop"]]
B_DELTAS = [['{"fact":"Fog', 8, False, None], [' horns."', 8, True, "length"]]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "fact.jsonl.gz"
    write_recording(path, HEADER, [line(PROMPT_A, A_DELTAS), line(PROMPT_B, B_DELTAS)])
    return path


def engine_for(path: Path, **options: Any) -> ReplayEngine:
    return ReplayEngine(Recording.load([path]), tokenizer=None, **options)


async def collect(stream: AsyncGenerator[EngineDelta, None]) -> list[EngineDelta]:
    async with contextlib.aclosing(stream):
        return [delta async for delta in stream]


def as_lists(deltas: list[EngineDelta]) -> list[list[Any]]:
    return [[d.text, d.new_token_count, d.finished, d.finish_reason] for d in deltas]


async def test_a_recorded_request_gets_its_deltas_in_order(recording: Path) -> None:
    engine = engine_for(recording)
    deltas = await collect(engine.generate(PROMPT_A, REQUEST, "r1"))
    assert as_lists(deltas) == A_DELTAS
    assert {d.prompt_token_count for d in deltas} == {len(PROMPT_A)}
    assert json.loads("".join(d.text for d in deltas)) == {"fact": "Lights guide ships."}
    deltas = await collect(engine.generate(PROMPT_B, REQUEST, "r2"))
    assert as_lists(deltas) == B_DELTAS  # its finish reason too
    assert (engine.exact, engine.by_schema) == (2, 0)
    assert engine.layout == EngineLayout(device="replay", executor="replay")
    assert (engine.model_name, engine.max_model_len) == ("tiny", 2048)


async def test_a_missing_key_gets_its_schemas_outputs_in_turn(recording: Path) -> None:
    first, second = engine_for(recording), engine_for(recording)
    outputs = []
    for engine in (first, second):
        seen = []
        for seed in range(5):
            request = SamplingRequest(32, 0.7, 0.95, 100 + seed, FACT)
            deltas = await collect(engine.generate([9, 9, seed], request, f"m{seed}"))
            seen.append("".join(d.text for d in deltas))
            assert deltas[-1].prompt_token_count == 3  # this prompt's, not the recorded one's
        outputs.append(seen)
    a, b = ("".join(d[0] for d in A_DELTAS), "".join(d[0] for d in B_DELTAS))
    assert outputs[0] == outputs[1] == [a, b, a, b, a]
    assert (first.exact, first.by_schema) == (0, 5)


async def test_a_schema_never_recorded_fails_the_request(recording: Path) -> None:
    engine = engine_for(recording)
    request = SamplingRequest(32, 0.7, 0.95, None, OTHER)
    with pytest.raises(EngineRequestFailed, match="no output of this request's schema"):
        await collect(engine.generate(PROMPT_A, request, "x"))
    assert engine.unfinished_requests == 0


async def test_a_key_recorded_twice_gives_its_outputs_in_turn(tmp_path: Path) -> None:
    path = tmp_path / "twice.jsonl"
    write_recording(path, HEADER, [line(PROMPT_A, A_DELTAS), line(PROMPT_A, B_DELTAS)])
    engine = engine_for(path)
    runs = [as_lists(await collect(engine.generate(PROMPT_A, REQUEST, f"r{n}")))
            for n in range(3)]
    assert runs == [A_DELTAS, B_DELTAS, A_DELTAS]


async def test_abort_ends_a_request_with_an_abort_delta(recording: Path) -> None:
    engine = engine_for(recording)
    stream = engine.generate(PROMPT_A, REQUEST, "r1")
    async with contextlib.aclosing(stream):
        first = await anext(stream)
        assert first.text == A_DELTAS[0][0]
        assert engine.unfinished_requests == 1
        await engine.abort(["r1", "not-running"])
        rest = [delta async for delta in stream]
    assert [(d.text, d.new_token_count, d.finished, d.finish_reason) for d in rest] == [
        ("", 0, True, "abort")]
    assert engine.unfinished_requests == 0


async def test_unfinished_requests_counts_open_streams(recording: Path) -> None:
    engine = engine_for(recording)
    streams = [engine.generate(PROMPT_A, REQUEST, f"r{n}") for n in range(3)]
    assert engine.unfinished_requests == 0  # not started until read
    for stream in streams:
        await anext(stream)
    assert engine.unfinished_requests == 3
    await streams[0].aclose()  # a consumer that leaves early
    assert engine.unfinished_requests == 2
    for stream in streams[1:]:
        await collect(stream)
    assert engine.unfinished_requests == 0


async def test_concurrent_requests_take_turns(recording: Path) -> None:
    engine = engine_for(recording)
    order: list[str] = []

    async def run(name: str, prompt: list[int]) -> None:
        async for delta in engine.generate(prompt, REQUEST, name):
            order.append(f"{name}:{delta.text}")

    await asyncio.gather(run("a", PROMPT_A), run("b", PROMPT_B))
    assert order == ['a:{"fact":', 'b:{"fact":"Fog', 'a:"Lights guide', 'b: horns."',
                     'a: ships."}']


async def test_without_yielding_one_request_runs_to_its_end(recording: Path) -> None:
    engine = engine_for(recording, yield_between_deltas=False)
    order: list[str] = []

    async def run(name: str, prompt: list[int]) -> None:
        async for _ in engine.generate(prompt, REQUEST, name):
            order.append(name)

    await asyncio.gather(run("a", PROMPT_A), run("b", PROMPT_B))
    assert order == ["a", "a", "a", "b", "b"]


def test_recordings_of_other_models_do_not_mix(recording: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    write_recording(other, {**HEADER, "max_model_len": 4096}, [])
    with pytest.raises(ValueError, match="recorded with"):
        Recording.load([recording, other])
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"key": "x"}\n')
    with pytest.raises(ValueError, match="not a synthqa replay recording"):
        Recording.load([plain])
    older = tmp_path / "older.jsonl"
    write_recording(older, {**HEADER, "synthqa_replay": 1}, [])
    with pytest.raises(ValueError, match="format 1; this engine reads format 2: record it"):
        Recording.load([older])
    assert Recording.load([recording, recording]).output_count == 4


class StandIn:
    """The real engine's side of a recording: a fixed output in deltas."""

    model_name = "stand-in"
    max_model_len = 1024
    layout = EngineLayout(device="cpu")
    tokenizer = None
    unfinished_requests = 0

    def __init__(self, deltas: list[list[Any]]) -> None:
        self.deltas = deltas
        self.aborted: list[str] = []
        self.shut_down = False

    async def generate(self, prompt_ids: list[int], request: SamplingRequest, request_id: str,
                       trace_headers: Mapping[str, str] | None = None,
                       ) -> AsyncGenerator[EngineDelta, None]:
        for text, count, finished, reason in self.deltas:
            yield EngineDelta(text, count, len(prompt_ids), finished, reason)

    async def abort(self, request_ids: Iterable[str]) -> None:
        self.aborted.extend(request_ids)

    async def check_health(self) -> None:
        pass

    async def shutdown(self) -> None:
        self.shut_down = True


async def test_what_is_recorded_replays_as_it_was_streamed(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    real = StandIn(A_DELTAS)
    recorder = RecordingEngine(real, path)
    stream = recorder.generate(PROMPT_A, REQUEST, "r1")
    seen = []
    async with contextlib.aclosing(stream):
        async for delta in stream:
            if delta.finished:  # the output is in the file before its end is seen
                assert len(list(read_lines(path))) == 2
            seen.append(delta)
    # An output cut short (its consumer left) is not recorded.
    cut = recorder.generate(PROMPT_B, REQUEST, "r2")
    await anext(cut)
    await cut.aclose()
    await recorder.abort(["r2"])
    await recorder.shutdown()
    assert real.aborted == ["r2"] and real.shut_down
    lines = list(read_lines(path))
    assert lines[0] == {HEADER_KEY: FORMAT_VERSION, "model": "stand-in", "max_model_len": 1024,
                        "device": "cpu"}
    assert len(lines) == 2
    replayed = await collect(engine_for(path).generate(PROMPT_A, REQUEST, "again"))
    assert replayed == seen
    # A restarted engine appends to the same file, without a second header.
    RecordingEngine(StandIn(B_DELTAS), path)._file.close()
    assert len(list(read_lines(path))) == 2


async def test_the_replay_engine_tokenizes_as_the_model_does(recording: Path) -> None:
    assert (TINY_MODEL / "config.json").exists(), "run `make setup` to build the tiny model"
    engine = ReplayEngine.open([recording], str(TINY_MODEL), model_name="served-name")
    assert engine.model_name == "served-name"
    assert engine.tokenizer.decode(engine.tokenizer.encode("a lighthouse",
                                                           add_special_tokens=False)) == (
        "a lighthouse")


def test_nothing_in_the_server_imports_the_replay_engine() -> None:
    from tests.unit.test_layers import SERVER, imports

    users = set()
    for path in SERVER.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names = imports(path)
        if ("synthqa.server.engine.replay" in names or "from .replay import" in text
                or "from .engine.replay import" in text or "from ..engine.replay import" in text
                or "import replay" in text):
            users.add(str(path.relative_to(SERVER)))
    assert users == set()
    # The server that runs it is the bench's.
    assert (REPO / "bench" / "synthqa_bench" / "replay_server.py").exists()
    assert not list(SERVER.rglob("*replay_server*"))


def test_synthqa_server_has_no_replay_or_recording_flag() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from synthqa.server.config import build_parser

    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    engines = FlexibleArgumentParser()
    AsyncEngineArgs.add_cli_args(engines)
    vllms = {flag for action in engines._actions for flag in action.option_strings}
    # vLLM's own (--enable-trace-replay, say) are vLLM's business; synthqa adds none, and its
    # record flags are about records (--default-record-shape), not recordings.
    assert not {flag for flag in flags - vllms if "replay" in flag or "recording" in flag}
    assert not {"--recording", "--record", "--replay-without-yielding"} & flags
