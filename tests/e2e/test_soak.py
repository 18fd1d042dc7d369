"""Soak: many concurrent Generate streams for minutes on one server, some cancelled at random,
through the real asyncio client. Every pair arrives exactly once (each document, chunk and
pair index once over the whole run), every chunk of every document not cancelled ends with
one outcome and every such document with one document_completed; the server's RSS is sampled
every second and reported (start, peak, end).

    python -m tests.e2e.test_soak --seconds 300 --streams 32    (`make soak`, SOAK_SECONDS)

starts a server of its own and writes out/soak-<timestamp>.json. The test below runs a short
version (8 streams for 20 s) on the session server as part of the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from synthqa.client import AsyncSynthQAClient, Document, SynthQAError
from synthqa.v1 import synthqa_pb2 as pb

from ..paths import REPO
from .helpers import SAMPLE
from .serverproc import ServerProcess, free_port, serving

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.process_tree import tree_rss  # noqa: E402

MIB = 1024 * 1024
OUT_OF_TOKENS = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]
UNPARSABLE_OUTPUT = "the model's output could not be parsed"
CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
# Texts wrap around the sample, so any start gives a full-length document.
LOOPED = SAMPLE * 2


@dataclass
class SoakConfig:
    seconds: float = 300.0
    streams: int = 32
    min_documents: int = 2
    max_documents: int = 5
    # Share of streams the client cancels part-way (after some events, or after some time).
    cancel_share: float = 0.15
    seed: int = 1822


@dataclass
class Tally:
    streams: Counter[str] = field(default_factory=Counter)
    documents: int = 0
    chunks_completed: int = 0
    chunk_failures: Counter[str] = field(default_factory=Counter)
    pairs: int = 0
    # (document, chunk, pair index) of every pair over the run.
    seen: set[tuple[str, int, int]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def check_stream(events: list[pb.GenerateResponse], documents: list[Document], num_pairs: int,
                 complete: bool, tally: Tally) -> None:
    """Add the stream's events to the tally; note every broken promise in tally.violations."""
    ids = {d.document_id for d in documents}
    started: dict[tuple[str, int], int] = {}
    outcomes: dict[tuple[str, int], str] = {}
    pairs: Counter[tuple[str, int]] = Counter()
    done: Counter[str] = Counter()
    bad = tally.violations.append
    for event in events:
        kind = event.WhichOneof("event")
        message = getattr(event, kind) if kind else None
        if message is None or message.document_id not in ids:
            bad(f"an event for no document of the stream: {event}")
            continue
        document = message.document_id
        if done[document]:
            bad(f"{kind} for {document} after its document_completed")
        if kind == "document_completed":
            done[document] += 1
            mine = [k for k in outcomes if k[0] == document]
            if message.chunk_count != len(mine) or message.pair_count != sum(
                    pairs[k] for k in mine):
                bad(f"{document}: document_completed {message} disagrees with its chunks")
            tally.documents += 1
            continue
        chunk = (document, message.chunk_index)
        if kind == "chunk_started":
            if chunk in started:
                bad(f"chunk {chunk} started twice")
            started[chunk] = message.chunk_count
        elif chunk not in started or chunk in outcomes:
            bad(f"{kind} for chunk {chunk} not running")
        elif kind == "qa_pair":
            pair = (document, message.chunk_index, message.pair_index)
            if pair in tally.seen or not 0 <= message.pair_index < num_pairs:
                bad(f"pair {pair} twice or out of range")
            tally.seen.add(pair)
            pairs[chunk] += 1
            tally.pairs += 1
        elif kind == "chunk_completed":
            outcomes[chunk] = kind
            tally.chunks_completed += 1
            if message.pair_count != pairs[chunk] or pairs[chunk] != num_pairs:
                bad(f"chunk {chunk} completed with {pairs[chunk]} of {num_pairs} pairs")
        else:
            outcomes[chunk] = kind
            tally.chunk_failures[CODE_NAMES.get(message.error.code, str(message.error.code))] += 1
            # A random model may run out of tokens, or write a pair of nothing but invalid
            # bytes (dropped, the pair is empty: the server fails the chunk and says so);
            # nothing else may fail a chunk.
            model_failure = message.error.code == OUT_OF_TOKENS or (
                message.error.code == INTERNAL
                and message.error.message.startswith(UNPARSABLE_OUTPUT))
            if not model_failure or message.pair_count != pairs[chunk]:
                bad(f"chunk {chunk} failed: {message.error}")
    if not complete:
        return
    for document in ids:
        counts = {count for (d, _), count in started.items() if d == document}
        indexes = sorted(i for d, i in started if d == document)
        if done[document] != 1 or len(counts) != 1 or indexes != list(range(counts.pop())):
            bad(f"{document}: {done[document]} document_completed, chunks started {indexes}")
        elif any((document, i) not in outcomes for i in indexes):
            bad(f"{document}: chunks without an outcome")


def random_stream(rng: random.Random, worker: int, number: int,
                  config: SoakConfig) -> tuple[list[Document], dict[str, Any]]:
    documents = []
    for k in range(rng.randint(config.min_documents, config.max_documents)):
        start = rng.randrange(len(SAMPLE))
        text = LOOPED[start:start + rng.randint(200, 3000)]
        documents.append(Document(f"w{worker}-s{number}-d{k}", text))
    num_pairs = rng.choice([1, 2])
    options = {
        "num_pairs": num_pairs,
        "max_generation_tokens": 96 if num_pairs == 1 else 128,
        "max_chunk_tokens": rng.choice([0, 128, 256]),
        "chunk_overlap_tokens": rng.choice([0, 16]),
        "seed": rng.randrange(2**31),
    }
    return documents, options


async def read(client: AsyncSynthQAClient, documents: list[Document], options: dict[str, Any],
               events: list[pb.GenerateResponse], after_events: int | None) -> bool:
    """Read a stream into `events`; True if the client cut it after `after_events`."""
    async with contextlib.aclosing(client.generate(documents, **options)) as stream:
        async for event in stream:
            events.append(event)
            if after_events is not None and len(events) >= after_events:
                return True  # leaving the block closes the stream, which cancels the call
    return False


async def run_worker(client: AsyncSynthQAClient, worker: int, config: SoakConfig,
                     deadline: float, tally: Tally) -> None:
    rng = random.Random(config.seed * 1000 + worker)
    number = 0
    while time.monotonic() < deadline:
        documents, options = random_stream(rng, worker, number, config)
        number += 1
        cancel = rng.random() < config.cancel_share
        after_events = rng.randint(1, 40) if cancel and rng.random() < 0.5 else None
        after_seconds = rng.uniform(0.01, 5.0) if cancel and after_events is None else None
        events: list[pb.GenerateResponse] = []
        cancelled = False
        began = time.monotonic()
        try:
            cancelled = await asyncio.wait_for(
                read(client, documents, options, events, after_events), timeout=after_seconds)
        except TimeoutError:
            cancelled = True
        except SynthQAError as error:
            tally.streams["failed"] += 1
            tally.errors.append(f"w{worker}-s{number - 1}: {error}")
            check_stream(events, documents, options["num_pairs"], False, tally)
            continue
        tally.streams["cancelled" if cancelled else "completed"] += 1
        if not cancelled:
            tally.latencies.append(time.monotonic() - began)
        check_stream(events, documents, options["num_pairs"], not cancelled, tally)


class RssSamples:
    """The server process's RSS (and its whole tree's) and load, every second."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[dict[str, float]] = []
        self.began = time.monotonic()

    def take(self, load: pb.ServerLoad | None) -> None:
        rss = tree_rss(self.process)
        sample = {"t": round(time.monotonic() - self.began, 1),
                  "rss_mib": round(rss.root / MIB, 1), "tree_rss_mib": round(rss.tree / MIB, 1)}
        if load is not None:
            sample |= {"active_calls": load.active_calls,
                       "in_flight_chunks": load.in_flight_chunks,
                       "engine_requests": load.engine_requests}
        self.samples.append(sample)

    async def run(self, client: AsyncSynthQAClient) -> None:
        while True:
            self.take((await client.server_info()).load)
            await asyncio.sleep(1.0)

    def summary(self, key: str) -> dict[str, float]:
        values = [s[key] for s in self.samples]
        quarter = values[len(values) // 4]
        return {"start": values[0], "after_first_quarter": quarter, "peak": max(values),
                "end": values[-1], "end_minus_start": round(values[-1] - values[0], 1),
                "end_minus_first_quarter": round(values[-1] - quarter, 1)}


async def wait_idle(client: AsyncSynthQAClient, within: float) -> float:
    began = time.monotonic()
    while True:
        load = (await client.server_info()).load
        if (load.active_calls == load.in_flight_chunks == load.engine_requests
                == load.held_document_bytes == 0):
            return time.monotonic() - began
        if time.monotonic() - began > within:
            raise AssertionError(f"the server is not idle {within} s after the soak: {load}")
        await asyncio.sleep(0.05)


async def soak(target: str, pid: int, config: SoakConfig) -> dict[str, Any]:
    tally = Tally()
    samples = RssSamples(pid)
    clients = [AsyncSynthQAClient(target, timeout=600, retries=0)
               for _ in range(config.streams)]
    observer = AsyncSynthQAClient(target, timeout=30)
    began = time.monotonic()
    try:
        await observer.wait_ready()
        samples.take(None)
        sampler = asyncio.create_task(samples.run(observer))
        deadline = began + config.seconds
        await asyncio.gather(*(run_worker(client, worker, config, deadline, tally)
                               for worker, client in enumerate(clients)))
        idle_after = await wait_idle(observer, within=10.0)
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        samples.take((await observer.server_info()).load)
    finally:
        for client in [*clients, observer]:
            await client.close()
    elapsed = time.monotonic() - began
    latencies = sorted(tally.latencies) or [0.0]
    return {
        "config": vars(config),
        "elapsed_seconds": round(elapsed, 1),
        "streams": dict(tally.streams),
        "documents_completed": tally.documents,
        "chunks_completed": tally.chunks_completed,
        "chunk_failures": dict(tally.chunk_failures),
        "pairs": tally.pairs,
        "pairs_per_second": round(tally.pairs / elapsed, 2),
        "stream_seconds": {"median": round(latencies[len(latencies) // 2], 2),
                           "max": round(latencies[-1], 2)},
        "idle_seconds_after": round(idle_after, 2),
        "rss_mib": samples.summary("rss_mib"),
        "tree_rss_mib": samples.summary("tree_rss_mib"),
        "violations": tally.violations[:50],
        "violation_count": len(tally.violations),
        "errors": tally.errors[:50],
        "samples": samples.samples,
    }


def describe(summary: dict[str, Any]) -> str:
    rss, tree = summary["rss_mib"], summary["tree_rss_mib"]
    return (
        f"soak: {summary['config']['streams']} concurrent streams for "
        f"{summary['elapsed_seconds']} s: {summary['streams']}; "
        f"{summary['documents_completed']} documents, {summary['chunks_completed']} chunks, "
        f"{summary['pairs']} pairs ({summary['pairs_per_second']}/s), chunk failures "
        f"{summary['chunk_failures']}; stream seconds {summary['stream_seconds']}\n"
        f"  server RSS MiB: start {rss['start']}, after the first quarter "
        f"{rss['after_first_quarter']}, peak {rss['peak']}, end {rss['end']}; whole tree: "
        f"start {tree['start']}, peak {tree['peak']}, end {tree['end']}\n"
        f"  violations: {summary['violation_count']} {summary['violations'][:5]}; "
        f"errors: {summary['errors'][:5]}")


def ok(summary: dict[str, Any]) -> bool:
    return not summary["violation_count"] and not summary["errors"]


def test_short_soak(server: ServerProcess) -> None:
    assert server.process is not None
    config = SoakConfig(seconds=float(os.environ.get("SYNTHQA_SHORT_SOAK_SECONDS", "20")),
                        streams=8)
    summary = asyncio.run(soak(server.target, server.process.pid, config))
    print("\n" + describe(summary))
    assert ok(summary), describe(summary)
    assert summary["streams"].get("completed", 0) >= config.streams


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", "300")))
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1822)
    parser.add_argument("--out", type=Path, default=REPO / "out")
    arguments = parser.parse_args()
    config = SoakConfig(seconds=arguments.seconds, streams=arguments.streams,
                        seed=arguments.seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    process = ServerProcess(port=free_port(), log_path=arguments.out / f"soak-{stamp}-server.log")
    with contextlib.contextmanager(serving)(process) as server:
        assert server.process is not None
        summary = asyncio.run(soak(server.target, server.process.pid, config))
    summary["server_log"] = str(process.log_path)
    path = arguments.out / f"soak-{stamp}.json"
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(describe(summary))
    print(f"  written to {path}")
    return 0 if ok(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
