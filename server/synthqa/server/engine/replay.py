"""An engine with the model taken out, for benchmarks and tests: `ReplayEngine` serves outputs
the real engine produced earlier, recorded by `RecordingEngine`, as fast as the consumer takes
them, in the deltas vLLM streamed them in and with their finish reasons.

Nothing in the server imports this module (tests/unit/engine/test_replay.py checks that): no
flag of `synthqa-server` can start it. The bench's `synthqa_bench.replay_server` builds a
server on it through `ServerLifecycle`'s `start_engine` argument.

A recording is JSON Lines, gzip-compressed when its name ends in `.gz`: a header line, then
one line per finished request:

    {"synthqa_replay": 2, "model": ..., "max_model_len": ..., "device": ...}
    {"key": ..., "kind": ..., "prompt_token_count": ..., "sampling": {...},
     "deltas": [[text, new_token_count, finished, finish_reason], ...]}

`key` is `request_key(prompt ids, request)`; `kind` is `schema_kind(json_schema)`. A request
whose key was recorded gets that output (several outputs of one key in turn: an unseeded
prompt sent twice got two); any other gets the recorded outputs of its schema in turn, the
n-th such request of a schema the n-th of them, round again when they run out. That keeps the
output valid for the schema (the server's checks pass), but its records are about another
chunk. A schema never recorded fails the request (EngineRequestFailed).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .supervisor import ManagedEngine
from .types import EngineDelta, EngineLayout, EngineRequestFailed, SamplingRequest

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
HEADER_KEY = "synthqa_replay"
ABORT = "abort"


def schema_kind(json_schema: Mapping[str, Any]) -> str:
    """What outputs a request may be given in place of its own: those of the same schema."""
    # A call's requests share one schema object: its kind is worked out once, not per request
    # (the canonical JSON of a schema was a measurable part of the replay ceiling's CPU).
    # The object is kept with its kind, so its id is never another schema's.
    known = _KINDS.get(id(json_schema))
    if known is not None and known[0] is json_schema:
        return known[1]
    canonical = json.dumps(json_schema, sort_keys=True, separators=(",", ":"))
    kind = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    if len(_KINDS) >= _KINDS_KEPT:
        _KINDS.clear()
    _KINDS[id(json_schema)] = (json_schema, kind)
    return kind


_KINDS: dict[int, tuple[Mapping[str, Any], str]] = {}
_KINDS_KEPT = 256


def request_key(prompt_ids: Sequence[int], request: SamplingRequest) -> str:
    """A request's identity: its prompt, its sampling and its schema. Stable across processes
    (no Python hash), so a recording made by one server serves another. The prompt is hashed
    as its ids' bytes: its JSON text cost the replay server 5-10% of its CPU, counted as the
    front end's (format 1 hashed that)."""
    digest = hashlib.sha256(array.array("q", prompt_ids).tobytes())
    rest = [sampling_of(request), schema_kind(request.json_schema)]
    digest.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:32]


def sampling_of(request: SamplingRequest) -> dict[str, Any]:
    return {"max_tokens": request.max_tokens, "temperature": request.temperature,
            "top_p": request.top_p, "seed": request.seed,
            "adapter": None if request.adapter is None else request.adapter.name}


Delta = tuple[str, int, bool, str | None]


@dataclass(frozen=True)
class RecordedOutput:
    key: str
    kind: str
    prompt_token_count: int
    # (text, new_token_count, finished, finish_reason), as the engine streamed them.
    deltas: tuple[Delta, ...]

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> RecordedOutput:
        deltas = tuple((str(text), int(count), bool(finished), reason)
                       for text, count, finished, reason in line["deltas"])
        if not deltas or not deltas[-1][2]:
            raise ValueError(f"recorded output {line['key']} does not finish")
        return cls(str(line["key"]), str(line["kind"]), int(line["prompt_token_count"]), deltas)


@dataclass
class Recording:
    """Recorded outputs by request key and by schema kind, and the header's facts."""

    header: dict[str, Any]
    by_key: dict[str, list[RecordedOutput]] = field(default_factory=dict)
    by_kind: dict[str, list[RecordedOutput]] = field(default_factory=dict)

    def add(self, output: RecordedOutput) -> None:
        self.by_key.setdefault(output.key, []).append(output)
        self.by_kind.setdefault(output.kind, []).append(output)

    @property
    def output_count(self) -> int:
        return sum(len(outputs) for outputs in self.by_key.values())

    @classmethod
    def load(cls, paths: Iterable[Path | str]) -> Recording:
        """One recording from several files; their headers must name the same model and
        max_model_len (prompts and chunks depend on both)."""
        recording: Recording | None = None
        for path in paths:
            lines = iter(read_lines(Path(path)))
            header = next(lines, None)
            if header is None or HEADER_KEY not in header:
                raise ValueError(f"{path} is not a synthqa replay recording")
            if header[HEADER_KEY] != FORMAT_VERSION:
                raise ValueError(f"{path} is a replay recording of format {header[HEADER_KEY]}; "
                                 f"this engine reads format {FORMAT_VERSION}: record it again "
                                 f"(make bench-record)")
            if recording is None:
                recording = cls(header)
            elif _facts(header) != _facts(recording.header):
                raise ValueError(f"{path} was recorded with {_facts(header)}, another file "
                                 f"with {_facts(recording.header)}")
            for line in lines:
                recording.add(RecordedOutput.from_line(line))
        if recording is None:
            raise ValueError("no recording given")
        return recording


def _facts(header: Mapping[str, Any]) -> tuple[Any, Any]:
    return header.get("model"), header.get("max_model_len")


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


class ReplayEngine:
    """A `ManagedEngine` that serves a recording. Between deltas it yields to the event loop
    (`await asyncio.sleep(0)`, unless `yield_between_deltas` is False): requests in flight
    together then take turns, as they do on a real engine, instead of the first one running to
    its end before the next starts; no delta ever waits for time to pass."""

    def __init__(self, recording: Recording, tokenizer: Any, *, model_name: str | None = None,
                 max_model_len: int | None = None, yield_between_deltas: bool = True) -> None:
        self._recording = recording
        self.tokenizer = tokenizer
        self.model_name = model_name or str(recording.header.get("model", "replay"))
        self.max_model_len = int(max_model_len or recording.header["max_model_len"])
        self.layout = EngineLayout(device="replay", executor="replay")
        self._yield = yield_between_deltas
        self._turns: Counter[str] = Counter()
        self._running: dict[str, bool] = {}  # request id: aborted
        self.exact = 0
        self.by_schema = 0

    @classmethod
    def open(cls, paths: Iterable[Path | str], model: str, **options: Any) -> ReplayEngine:
        """The engine for recordings `paths`, with `model`'s Hugging Face tokenizer."""
        from transformers import AutoTokenizer

        return cls(Recording.load(paths), AutoTokenizer.from_pretrained(model), **options)

    @property
    def unfinished_requests(self) -> int:
        return len(self._running)

    def pick(self, prompt_ids: Sequence[int], request: SamplingRequest) -> RecordedOutput:
        """The recorded output for this request: its own if recorded, else one of its schema's
        in turn. Raises EngineRequestFailed for a schema never recorded."""
        key = request_key(prompt_ids, request)
        own = self._recording.by_key.get(key)
        if own:
            self.exact += 1
            return self._next(key, own)
        kind = schema_kind(request.json_schema)
        alike = self._recording.by_kind.get(kind)
        if not alike:
            raise EngineRequestFailed(f"the recording has no output of this request's schema "
                                      f"(kind {kind}); record this feature first")
        self.by_schema += 1
        return self._next("kind:" + kind, alike)

    def _next(self, turn: str, outputs: list[RecordedOutput]) -> RecordedOutput:
        index = self._turns[turn] % len(outputs)
        self._turns[turn] += 1
        return outputs[index]

    async def generate(
        self, prompt_ids: list[int], request: SamplingRequest, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[EngineDelta, None]:
        output = self.pick(prompt_ids, request)
        if request_id in self._running:
            raise EngineRequestFailed(f"request id {request_id} is already running")
        self._running[request_id] = False
        prompt_tokens = len(prompt_ids)  # what vLLM reports for this prompt
        try:
            for text, count, finished, reason in output.deltas:
                if self._running[request_id]:  # aborted: vLLM's last output says so
                    yield EngineDelta("", 0, prompt_tokens, True, ABORT)
                    return
                yield EngineDelta(text, count, prompt_tokens, finished, reason)
                if self._yield and not finished:
                    await asyncio.sleep(0)
        finally:
            del self._running[request_id]

    async def abort(self, request_ids: Iterable[str]) -> None:
        for request_id in request_ids:
            if request_id in self._running:
                self._running[request_id] = True

    async def check_health(self) -> None:
        """Never dies."""

    async def shutdown(self) -> None:
        log.info("replayed %d requests: %d with their own output, %d with another of their "
                 "schema", self.exact + self.by_schema, self.exact, self.by_schema)


class RecordingEngine:
    """A `ManagedEngine` that passes everything to `engine` and appends each request's output
    to `path` (plain JSON Lines, a line per finished request, flushed at once) before its last
    delta goes on: whoever sees a request end finds its output in the file. Aborted and broken
    requests are not recorded."""

    def __init__(self, engine: ManagedEngine, path: Path) -> None:
        self._engine = engine
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed at shutdown)
        if path.stat().st_size == 0:  # a restarted engine appends to its predecessor's file
            self._write({HEADER_KEY: FORMAT_VERSION, "model": engine.model_name,
                         "max_model_len": engine.max_model_len,
                         "device": engine.layout.device})
        self.recorded = 0

    @property
    def model_name(self) -> str:
        return self._engine.model_name

    @property
    def max_model_len(self) -> int:
        return self._engine.max_model_len

    @property
    def layout(self) -> EngineLayout:
        return self._engine.layout

    @property
    def tokenizer(self) -> Any:
        return self._engine.tokenizer

    @property
    def unfinished_requests(self) -> int:
        return self._engine.unfinished_requests

    async def generate(
        self, prompt_ids: list[int], request: SamplingRequest, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[EngineDelta, None]:
        deltas: list[list[Any]] = []
        prompt_tokens = len(prompt_ids)
        stream = self._engine.generate(prompt_ids, request, request_id, trace_headers)
        async with contextlib.aclosing(stream):
            async for delta in stream:
                deltas.append([delta.text, delta.new_token_count, delta.finished,
                               delta.finish_reason])
                prompt_tokens = delta.prompt_token_count
                if delta.finished and delta.finish_reason != ABORT:
                    self._write({"key": request_key(prompt_ids, request),
                                 "kind": schema_kind(request.json_schema),
                                 "prompt_token_count": prompt_tokens,
                                 "sampling": sampling_of(request), "deltas": deltas})
                    self.recorded += 1
                yield delta

    def _write(self, line: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    async def abort(self, request_ids: Iterable[str]) -> None:
        await self._engine.abort(request_ids)

    async def check_health(self) -> None:
        await self._engine.check_health()

    async def shutdown(self) -> None:
        try:
            await self._engine.shutdown()
        finally:
            self._file.close()
            log.info("recorded %d outputs to %s", self.recorded, self.path)


def write_recording(path: Path, header: Mapping[str, Any],
                    lines: Iterable[Mapping[str, Any]]) -> int:
    """Write a recording file (gzip when `path` ends in .gz); the number of outputs in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    buffer = io.StringIO()
    buffer.write(json.dumps(dict(header), ensure_ascii=False, separators=(",", ":")) + "\n")
    for line in lines:
        buffer.write(json.dumps(dict(line), ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    data = buffer.getvalue().encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)  # the same outputs make the same file
    path.write_bytes(data)
    return count

