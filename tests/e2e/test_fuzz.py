"""Hostile input at scale: a stateful property-based fuzzer drives the live server with random
Generate and GenerateDocument streams and checks each against a model of the protocol.

The streams put options anywhere (first, later, twice, missing), send parts out of order (a
continuation for a document never started, more_follows misused, unknown and duplicate ids),
random Unicode with unpaired surrogates as raw bytes (the messages are encoded here by hand,
so invalid UTF-8 reaches the server), garbage and unknown fields, huge and empty fields around
the server's limits, options in and out of bounds, odd chunk_indexes, cancellations (before,
during and after sending) and short deadlines; some run in the background while others go on.

Every stream must end OK or with the status the model predicts (or CANCELLED / DEADLINE_EXCEEDED
where the client cut it short), always a known code with a message and never a traceback; an OK
stream must complete every document it sent exactly once, each chunk with one outcome and pairs
only for started chunks. After every step the server is alive and SERVING; after every example
it is idle (no call, chunk, engine request or held document); its idle memory grows by no more
than RSS_BOUND_MIB over the last three quarters of the run; its log has no new traceback.

`make test` runs SYNTHQA_FUZZ_STREAMS=150 (the default); `make fuzz` runs 5,000. The fuzzer
itself is the package tests/e2e/fuzz/ (wire, strategies, model, harness, machine); this module
is the run: edge cases, then rounds of the state machine, the server's idle memory between
them (bench/synthqa_bench/process_tree.py, the sampler the benchmark and the soak use) and
its log after.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from ..paths import REPO
from .fuzz.harness import Fuzz
from .fuzz.machine import run_rounds
from .fuzz.strategies import edge_cases
from .fuzz.wire import GENERATE, GENERATE_DOCUMENT, DocumentRequest
from .serverproc import ServerProcess

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.process_tree import ProcessTreeSampler, TreeRss  # noqa: E402

STREAMS = int(os.environ.get("SYNTHQA_FUZZ_STREAMS", "150"))
SEED = int(os.environ.get("SYNTHQA_FUZZ_SEED", "1822"))
# Streams run before the memory baseline is taken: every kind of input has been seen by then.
WARM_UP_STREAMS = max(20, STREAMS // 10)
# Server RSS, idle, may grow by this much over the last three quarters of the run. The allocator's
# high-water mark settles in the warm-up and first quarter (the heap it cannot give back depends
# on where the largest documents fell); after that, a leak shows as growth. Measured without
# leaks: +5 MiB over 150 streams, +32 over 5,000 (the leak it caught first: +1,216 over 5,270).
RSS_BOUND_MIB = float(os.environ.get("SYNTHQA_FUZZ_RSS_BOUND_MIB", "48"))
# The server looks for freed heap to give back every 2 s once idle (synthqa.server.heap).
IDLE_TRIM_SECONDS = 2.5

MIB = 1024 * 1024

pytestmark = pytest.mark.timeout(int(300 + 1.5 * STREAMS))


def idle_rss(fuzz: Fuzz, rss: ProcessTreeSampler) -> TreeRss:
    """The server's RSS once idle: it gives freed heap back within seconds of its last call."""
    fuzz.wait_idle()
    time.sleep(IDLE_TRIM_SECONDS)
    return rss.settled()


def test_hostile_streams_at_scale(server: ServerProcess) -> None:
    fuzz = Fuzz(server)
    log_start = server.log_path.stat().st_size
    began = time.monotonic()
    try:
        with ProcessTreeSampler(fuzz.pid, interval=0.5) as rss:
            start = rss.settled()
            for label, spec, end in edge_cases():
                method = GENERATE_DOCUMENT if isinstance(spec, DocumentRequest) else GENERATE
                running = fuzz.prepare(label, method, spec, end)
                fuzz.run(running)
                fuzz.verify(running)
                fuzz.wait_idle()
            run_rounds(fuzz, WARM_UP_STREAMS, SEED)
            checkpoints = [idle_rss(fuzz, rss)]
            warm_up_seconds = time.monotonic() - began
            remaining = STREAMS - fuzz.streams
            for quarter in range(1, 5):
                run_rounds(fuzz, STREAMS - remaining * (4 - quarter) // 4, SEED + 10_000 * quarter)
                checkpoints.append(idle_rss(fuzz, rss))
            fuzz.check_serving()
            baseline, after = checkpoints[1], checkpoints[-1]
        seconds = time.monotonic() - began
        growth = (after.root - baseline.root) / MIB
        print(
            f"\nfuzz: {fuzz.streams} streams in {seconds:.0f} s (warm-up {warm_up_seconds:.0f} s)"
            f": {dict(fuzz.methods)}\n"
            f"  statuses: {dict(fuzz.statuses.most_common())}\n"
            f"  ChunkDocument calls: {dict(fuzz.chunk_calls)}\n"
            f"  {fuzz.documents} documents completed, {fuzz.pairs} pairs, "
            f"{fuzz.chunk_failures} chunks failed (out of tokens); longest stream "
            f"{fuzz.longest_stream:.1f} s, longest wait for idle {fuzz.longest_idle_wait:.2f} s\n"
            f"  server RSS MiB, idle: start {start.root / MIB:.0f}, after the warm-up and each "
            f"quarter {[round(c.root / MIB) for c in checkpoints]}, peak "
            f"{rss.peak_root_rss / MIB:.0f}; last three quarters {growth:+.1f} (bound "
            f"+{RSS_BOUND_MIB:.0f}); whole tree: start {start.tree / MIB:.0f}, baseline "
            f"{baseline.tree / MIB:.0f}, peak {rss.peak_tree_rss / MIB:.0f}, after "
            f"{after.tree / MIB:.0f}")
    finally:
        fuzz.close()
    assert fuzz.streams >= STREAMS
    problems = []
    if growth > RSS_BOUND_MIB:
        problems.append(f"server RSS {after.root / MIB:.0f} MiB after the run, {growth:.1f} MiB "
                        f"over its level after the first quarter (bound {RSS_BOUND_MIB:.0f})")
    with server.log_path.open("rb") as log:
        log.seek(log_start)
        lines = log.read().decode(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or line.startswith("Traceback")
              or line.startswith(("ValueError", "RuntimeError", "AssertionError", "KeyError"))]
    if errors:
        problems.append(f"the server logged {sum(line.startswith('Traceback') for line in lines)} "
                        f"tracebacks during the fuzz ({server.log_path}); first lines: "
                        f"{errors[:6]}")
    assert not problems, "; ".join(problems)
