"""Two replicas on the tiny model: the CLI spreads documents over both, one is SIGKILLed mid-run
and every document is finished, once, on the other; the asyncio client's one stream survives
its replica's death the same way; a CLI SIGKILLed mid-run finishes with --resume, writing no
pair twice."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synthqa.client import AsyncSynthQAClient, Document, SynthQAClient
from synthqa.v1 import synthqa_pb2 as pb

from ..paths import REPO
from .helpers import SAMPLE, TOLERATED_CHUNK_FAILURES, jsonl
from .prometheus import scraped
from .serverproc import (
    ServerProcess,
    alive,
    assert_all_gone,
    free_port,
    serving,
    serving_until_killed,
)

NUM_PAIRS = 2
CHUNK_TOKENS = 128
DOCUMENTS = 8


def metrics_port(server: ServerProcess) -> int:
    return int(server.extra_args[server.extra_args.index("--metrics-port") + 1])


def metric(server: ServerProcess, name: str, label: str = "") -> float:
    """The sum of a metric's samples (those with `label` in their labels); NaN, which no
    condition holds for, when the scrape times out (two busy replicas share two cores)."""
    try:
        return scraped(f"127.0.0.1:{metrics_port(server)}", name, label)
    except (TimeoutError, urllib.error.URLError):
        return math.nan


def replica(name: str) -> ServerProcess:
    # A small per-call window: the CLI's calls take documents only as they have room, so
    # both replicas stay busy for the whole (short) run.
    port = free_port()
    # A log per server: a test that starts a replica again must not overwrite the last one's.
    return ServerProcess(port=port, log_path=REPO / "out" / f"test-replica-{name}-{port}.log",
                         extra_args=["--metrics-port", str(free_port()),
                                     "--max-in-flight-chunks-per-call", "4"])


@pytest.fixture(scope="module")
def survivor(tiny_model_path: str) -> Iterator[ServerProcess]:
    yield from serving(replica("b"))


@pytest.fixture
def doomed(tiny_model_path: str, survivor: ServerProcess) -> Iterator[ServerProcess]:
    """A replica the test kills; stopped cleanly if it is still alive at the end."""
    yield from serving_until_killed(replica("a"))


def write_inputs(folder: Path, characters: int) -> list[Path]:
    paths = []
    text = SAMPLE * 3
    for n in range(DOCUMENTS):
        path = folder / f"doc{n:02}.txt"
        start = (n * 397) % len(SAMPLE)
        path.write_text(text[start:start + characters], encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    return write_inputs(tmp_path, 1100)


@pytest.fixture
def long_inputs(tmp_path: Path) -> list[Path]:
    """Several chunks each: the run lasts long enough to be killed in the middle."""
    # 6,600 characters: at 3,300 a run once ended before the test saw the doomed replica busy.
    return write_inputs(tmp_path, 6600)


def cli(target: str, inputs: list[Path], out: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "synthqa.client.cli", "--target", target, "--retry-wait",
            "120", "generate", *map(str, inputs), "--out", str(out), "--num-pairs",
            str(NUM_PAIRS), "--max-chunk-tokens", str(CHUNK_TOKENS), *more]


def assert_every_pair_once(out: Path, inputs: list[Path], server: ServerProcess,
                           failed: Callable[[str, int], bool] = lambda d, c: False) -> None:
    assert_every_pair_once_in(jsonl(out), inputs, server,
                              failed)


def assert_every_pair_once_in(records: list[dict[str, Any]], inputs: list[Path],
                              server: ServerProcess,
                              failed: Callable[[str, int], bool] = lambda d, c: False) -> None:
    """Every pair of every chunk written exactly once; a chunk `failed` says failed (the tiny
    model's output could not be used) may lack some of its pairs, never add any."""
    written = [(r["document_id"], r["chunk_index"], r["record_index"]) for r in records]
    assert len(written) == len(set(written)), "a pair was written twice"
    expected = set()
    with SynthQAClient(server.target, timeout=60) as client:
        for path in inputs:
            chunks = client.chunk(path.read_text(encoding="utf-8"),
                                  max_chunk_tokens=CHUNK_TOKENS).chunks
            # The inputs share a folder: each document's id is its file's name.
            expected |= {(path.name, chunk.index, pair)
                         for chunk in chunks for pair in range(NUM_PAIRS)}
    assert set(written) <= expected
    assert {(d, c, p) for d, c, p in expected - set(written) if not failed(d, c)} == set()


def wait_for(condition: object, within: float, what: str,
             run: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None,
             poll_seconds: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        if run is not None and run.poll() is not None:
            raise AssertionError(f"the CLI ended ({run.returncode}) before: {what}")
        time.sleep(poll_seconds)


@pytest.mark.timeout(900)
def test_a_replica_killed_mid_run_leaves_every_document_to_the_other(
    doomed: ServerProcess, survivor: ServerProcess, long_inputs: list[Path], tmp_path: Path
) -> None:
    # Long documents: with short ones, a replica's call could end before the other's first pair.
    inputs = long_inputs
    for attempt in range(4):
        out = tmp_path / f"pairs-{attempt}.jsonl"
        run = subprocess.Popen(cli(f"{doomed.target},{survivor.target}", inputs, out),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO)
        try:
            if not calls_reach_the_doomed_replica(run, doomed, survivor):
                # round_robin placed every call on the survivor (it was the only replica
                # connected when they started), and the calls live the whole run: nothing here
                # would be killed. Stop the CLI and run it again.
                run.kill()
                run.communicate()
                continue
            children = doomed.descendants()
            assert doomed.process is not None
            os.killpg(doomed.process.pid, signal.SIGKILL)
            _, errors = run.communicate(timeout=600)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, errors
        assert not alive_process(doomed)
        assert_every_pair_once(out, inputs, survivor)
        # The engine core follows its server within a second or two, and the kernel ends the
        # worker with it (before, vLLM's shutdown in the worker held its GIL for a minute and
        # more, and it outlived its core while the other replica worked).
        assert_all_gone(children, within=30)
        return
    raise AssertionError("in 4 runs, the CLI never placed a call on the replica to be killed")


def calls_reach_the_doomed_replica(run: subprocess.Popen[str], doomed: ServerProcess,
                                   survivor: ServerProcess, within: float = 300) -> bool:
    """True once the doomed replica is mid-call: its first pairs out, its documents not done.
    (Not "both replicas have pairs": on two shared cores, one replica's call can finish
    before the other's first pair.) False once the survivor has streamed pairs while the
    doomed replica held no call for 3 s: every call went to the survivor."""
    survivor_pairs = metric(survivor, "synthqa_pairs_total")
    deadline = time.monotonic() + within
    idle_since: float | None = None
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(f"the CLI ended ({run.returncode}) before either replica "
                                 "was seen mid-call")
        doomed_calls = metric(doomed, "synthqa_active_calls")
        if doomed_calls >= 1 and metric(doomed, "synthqa_pairs_total") > 0:
            return True
        if doomed_calls == 0 and metric(survivor, "synthqa_pairs_total") > survivor_pairs:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3:
                return False
        else:
            idle_since = None
        time.sleep(0.05)
    raise TimeoutError("no pairs from either replica")


@pytest.mark.timeout(900)
def test_the_async_client_finishes_a_stream_whose_replica_died_on_the_other(
    doomed: ServerProcess, survivor: ServerProcess, inputs: list[Path]
) -> None:
    documents = [Document(path.name, path.read_text(encoding="utf-8")) for path in inputs]

    async def scenario() -> list[pb.GenerateResponse]:
        async with AsyncSynthQAClient([doomed.target, survivor.target], timeout=600,
                                      retry_wait=120) as client:
            await client.wait_ready()
            for _ in range(5):
                # round_robin takes the ready replicas in turn: once a call has gone to the
                # survivor, the next, the stream, goes to the replica about to die. (A replica
                # slow to answer on two busy cores can be passed over: then try again.)
                for _ in range(10):
                    before = metric(survivor, "synthqa_rpcs_total", 'method="GetServerInfo"')
                    await client.server_info()
                    if metric(survivor, "synthqa_rpcs_total", 'method="GetServerInfo"') > before:
                        break
                events: list[pb.GenerateResponse] = []
                killed = False
                async for event in client.generate(documents, num_pairs=NUM_PAIRS,
                                                   max_chunk_tokens=CHUNK_TOKENS):
                    events.append(event)
                    if not killed and event.HasField("document_completed"):
                        if metric(doomed, "synthqa_active_calls") != 1:
                            break  # on the survivor: cancel it and place the stream again
                        assert doomed.process is not None
                        os.killpg(doomed.process.pid, signal.SIGKILL)
                        killed = True
                if killed:
                    return events
        raise AssertionError("the stream never went to the replica to be killed")

    events = asyncio.run(scenario())
    written = [(e.qa_pair.document_id, e.qa_pair.chunk_index, e.qa_pair.pair_index)
               for e in events if e.HasField("qa_pair")]
    assert len(written) == len(set(written)), "a pair arrived twice"
    completed = [e.document_completed.document_id for e in events
                 if e.HasField("document_completed")]
    assert sorted(completed) == sorted(d.document_id for d in documents)
    out = [{"document_id": d, "chunk_index": c, "record_index": p} for d, c, p in written]
    assert_every_pair_once_in(out, inputs, survivor)


def alive_process(server: ServerProcess) -> bool:
    import psutil

    assert server.process is not None
    server.process.poll()
    try:
        return alive(psutil.Process(server.process.pid))
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(900)
def test_a_cli_killed_mid_run_finishes_with_resume_writing_no_pair_twice(
    survivor: ServerProcess, long_inputs: list[Path], tmp_path: Path
) -> None:
    inputs = long_inputs
    out = tmp_path / "pairs.jsonl"
    partial = out.with_name("pairs.jsonl.partial")
    journal = out.with_name("pairs.jsonl.partial.done")
    run = subprocess.Popen(cli(survivor.target, inputs, out), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        # Killed once a document is done and others are halfway (its header, then a line per
        # document done). At the first: the whole run can take only a few seconds here.
        wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 2,
                 300, "a document finished", run, poll_seconds=0.01)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert not out.exists()
    done_before = len(journal.read_text().splitlines()) - 1
    assert 0 < done_before < DOCUMENTS
    # Documents done before the kill, with how many of their chunks failed.
    done = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    resumed = subprocess.run(cli(survivor.target, inputs, out, "--resume"), capture_output=True,
                             text=True, timeout=600, cwd=REPO)
    # The tiny model writes random text: now and then a chunk's output cannot be used (out of
    # tokens, or only undecodable bytes). The CLI then names it and exits 3; that is allowed.
    failures = re.findall(r"^  failed: (.+) chunk (\d+): (.*)$", resumed.stderr, re.MULTILINE)
    failed_before = {d["done"] for d in done if d["failed_chunks"]}
    assert all(any(words in message for words in TOLERATED_CHUNK_FAILURES)
               for _, _, message in failures), resumed.stderr
    assert resumed.returncode == (3 if failures or failed_before else 0), resumed.stderr
    assert f"resuming: {done_before} of {DOCUMENTS} document(s) done" in resumed.stderr
    assert not partial.exists() and not journal.exists()
    failed_chunks = {(document, int(chunk)) for document, chunk, _ in failures}
    assert_every_pair_once(out, inputs, survivor, lambda d, c: (d, c) in failed_chunks
                           or d in failed_before)
