"""The `replay` arm: synthqa's ceiling with the model taken out. The bench's replay server
serves the recordings of every feature (qa, cot, custom, evidence, judge, dedup:
`bench/replay/<feature>.jsonl.gz`, made by `make bench-record`) as fast as they are read, and,
feature by feature, the async client streams the recorded workload's documents through it,
`laps` times over under fresh ids, with `concurrency` documents in flight. Everything but the
engine is real: RPC in, chunking, prompts, parsing, checks, judge and dedup where on, events,
protobuf, gRPC out, the client.

Its figures are per run: output tokens, records and events per second, and the front end's CPU
per output token (the server's main process, where all of synthqa's per-token work runs), and
of its main thread alone (the event loop: its other threads, the tokenizer's and gRPC's, can
run on other cores). The one-core ceiling is output tokens per CPU-second of that process: the
token rate one front-end process would sustain if it had a whole core and the engine were
never the limit. Every run
also checks that each record arrived once and each chunk ended once."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthqa.client import AsyncSynthQAClient, Document
from synthqa.server.engine.replay import read_lines

from .record_replay import FEATURES, feature_calls
from .servers import BenchServer, _grpc_serving, checkout_first, free_port
from .workload import Workload, build_workload

RECORDINGS = Path(__file__).resolve().parents[1] / "replay"


@dataclass(frozen=True)
class Extent:
    """How much of the recorded workload a run replays: `laps` times over its first
    `documents` documents (None: all). Enough that a run at saturation lasts seconds."""

    laps: int
    documents: int | None = None


# By the bench's --workload: smoke is the test suite's, a few documents once.
EXTENTS = {"smoke": Extent(1, 4), "straggle": Extent(3), "quick": Extent(3), "full": Extent(6)}


def recorded_workload(features: list[str], folder: Path = RECORDINGS) -> Workload:
    """The workload the recordings were made on (their header says which): only its own
    documents find their own recorded outputs."""
    names = {next(read_lines(recording_path(f, folder)))["workload"] for f in features}
    if len(names) != 1:
        raise ValueError(f"the recordings were made on different workloads: {sorted(names)}")
    return build_workload(names.pop())


def recording_path(feature: str, folder: Path = RECORDINGS) -> Path:
    return folder / f"{feature}.jsonl.gz"


def replay_server(model: str, features: list[str], log_dir: Path,
                  recordings: Path = RECORDINGS,
                  checkout: Path | None = None) -> tuple[BenchServer, str]:
    """The real server on the features' recordings (one server for all: each request finds
    its own recorded output by its prompt and schema). No engine flags: the recording fixes
    max_model_len, and no engine runs. No cache: every lap is generated (replayed) again.
    With `checkout`: that checkout's server and replay engine, ahead of this one's on the
    import path."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "synthqa_bench.replay_server", "--recording",
               *(str(recording_path(feature, recordings)) for feature in features),
               "--model", model, "--host", "127.0.0.1", "--port", str(port), "--no-cache"]
    name, env = "replay", {}
    if checkout is not None:
        name = "replay-baseline"
        env = checkout_first(checkout, "bench")
    return (BenchServer(name, command, lambda: _grpc_serving(target),
                        log_dir / f"{name}-server-{port}.log", env), target)


@dataclass
class ReplayTally:
    """What a replayed run delivered, event by event, and whether it was each thing once."""

    output_tokens: int = 0
    records: int = 0
    events: int = 0
    documents_completed: int = 0
    chunks_completed: int = 0
    chunks_failed: int = 0
    records_repeated: int = 0
    chunks_ended_twice: int = 0
    _records: set[tuple[str, int, int]] = field(default_factory=set)
    _chunks_expected: dict[str, int] = field(default_factory=dict)
    _chunks_ended: set[tuple[str, int]] = field(default_factory=set)

    def add(self, event: Any) -> bool:
        """Count one event; True when it completes a document."""
        self.events += 1
        kind = event.WhichOneof("event")
        if kind in ("record", "qa_pair"):
            message = getattr(event, kind)
            index = message.record_index if kind == "record" else message.pair_index
            key = (message.document_id, message.chunk_index, index)
            if key in self._records:
                self.records_repeated += 1
            self._records.add(key)
            self.records += 1
        elif kind == "chunk_started":
            started = event.chunk_started
            self._chunks_expected[started.document_id] = started.chunk_count
        elif kind in ("chunk_completed", "chunk_failed"):
            done = getattr(event, kind)
            key = (done.document_id, done.chunk_index)
            if key in self._chunks_ended:
                self.chunks_ended_twice += 1
            self._chunks_ended.add(key)
            if kind == "chunk_completed":
                self.chunks_completed += 1
                self.output_tokens += done.generated_token_count
            else:
                self.chunks_failed += 1
                self.output_tokens += done.generated_token_count
        elif kind == "document_completed":
            self.documents_completed += 1
            return True
        return False

    def chunks_unended(self) -> int:
        expected = sum(self._chunks_expected.values())
        return expected - len(self._chunks_ended)


def feature_documents(workload: Workload, feature: str,
                      extent: Extent) -> list[tuple[dict[str, Any], list[Document]]]:
    """The feature's calls (options and documents), `laps` times over, each lap its own calls
    under its own ids: the recorded prompts again, never one document twice, and a call's
    dedup sees the repeats it saw when recorded, not those of other laps."""
    if extent.documents:
        workload = dataclasses.replace(workload, documents=workload.documents[:extent.documents])
    calls = list(feature_calls(workload, feature))
    return [(options, [Document(f"{d.document_id}~{lap}", d.text) for d in documents])
            for lap in range(extent.laps) for options, documents in calls]


async def replay_run(target: str | list[str], calls: list[tuple[dict[str, Any], list[Document]]],
                     concurrency: int, open_calls: int = 4) -> tuple[ReplayTally, float]:
    """Every call's documents through one stream each, `concurrency` documents in flight in
    all, at most `open_calls` streams open at once (in order, so the next lap's stream fills
    in while the last one's tail finishes; the server limits each client's calls); the tally
    and the wall seconds."""
    tally = ReplayTally()
    slots = asyncio.Semaphore(concurrency)
    streams = asyncio.Semaphore(open_calls)
    loop = asyncio.get_running_loop()
    async with AsyncSynthQAClient(target, timeout=3600, retries=0) as client:
        await client.wait_ready()

        async def documents(group: list[Document]) -> AsyncIterator[Document]:
            for document in group:
                await slots.acquire()
                yield document

        async def stream(options: dict[str, Any], group: list[Document]) -> None:
            async with streams:
                async for event in client.generate(documents(group), **options):
                    if tally.add(event):
                        slots.release()

        started = loop.time()
        await asyncio.gather(*(stream(options, group) for options, group in calls))
        return tally, loop.time() - started


def figures(tally: ReplayTally, wall: float, front_end_cpu: float, server_cpu: float,
            client_cpu: float, feature: str, documents: int,
            front_end_loop_cpu: float | None = None) -> dict[str, Any]:
    tokens = tally.output_tokens

    def per_token(cpu: float | None) -> float | None:
        return cpu / tokens * 1e6 if tokens and cpu is not None else None

    return {
        "feature": feature,
        "wall_seconds": wall,
        "documents": documents,
        "documents_completed": tally.documents_completed,
        "output_tokens": tokens,
        "records": tally.records,
        "events": tally.events,
        "chunks_completed": tally.chunks_completed,
        "chunks_failed": tally.chunks_failed,
        "records_repeated": tally.records_repeated,
        "chunks_ended_twice": tally.chunks_ended_twice,
        "chunks_unended": tally.chunks_unended(),
        "output_tokens_per_second": tokens / wall,
        "records_per_second": tally.records / wall,
        "events_per_second": tally.events / wall,
        "server_cpu_seconds": server_cpu,
        "server_main_cpu_seconds": front_end_cpu,
        "server_loop_cpu_seconds": front_end_loop_cpu,
        "client_cpu_seconds": client_cpu,
        "front_end_cpu_us_per_token": per_token(front_end_cpu),
        "front_end_loop_cpu_us_per_token": per_token(front_end_loop_cpu),
        "client_cpu_us_per_token": per_token(client_cpu),
        "one_core_ceiling_tokens_per_second": tokens / front_end_cpu if front_end_cpu else None,
    }


def missing_recordings(features: list[str], folder: Path = RECORDINGS) -> list[str]:
    return [f for f in features if not recording_path(f, folder).exists()]


REPLAY_FEATURES = tuple(FEATURES)
