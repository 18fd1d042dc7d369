"""`python -m synthqa_bench.slow_reader`: the server's memory while a client reads its events
slowly. One bidi stream offers documents without pause for `--seconds` while reading one
event every `--read-delay` seconds; the server's RSS (engine included) is sampled throughout.
A fast reader on the same server is the baseline. Bounded means the slow reader's RSS stops
growing once the call's window of chunks is full, however long it runs."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import shlex
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil

from synthqa.client import AsyncSynthQAClient, Document

from .process_tree import tree_rss
from .servers import TINY_MODEL_ENGINE_ARGS, synthqa_server
from .workload import build_workload


async def read_for(target: str, seconds: float, read_delay: float, pid: int,
                   options: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    events = 0
    offered = 0
    started = time.monotonic()

    async def documents() -> AsyncIterator[Document]:
        nonlocal offered
        for number in itertools.count():
            offered = number + 1
            yield Document(f"doc-{number}", texts[number % len(texts)])

    async def sample() -> None:
        while True:
            samples.append((time.monotonic() - started, tree_rss(server).tree))
            await asyncio.sleep(0.5)

    server = psutil.Process(pid)
    sampler = asyncio.create_task(sample())
    async with AsyncSynthQAClient(target, retries=0) as client:
        stream = client.generate(documents(), **options)
        try:
            async for _ in stream:
                events += 1
                if time.monotonic() - started > seconds:
                    break
                if read_delay:
                    await asyncio.sleep(read_delay)
        finally:
            await stream.aclose()
    sampler.cancel()
    half = [rss for t, rss in samples if t >= seconds / 2]
    return {"read_delay_seconds": read_delay, "seconds": seconds, "events_read": events,
            "documents_offered": offered, "peak_rss_bytes": max(r for _, r in samples),
            "peak_rss_second_half_bytes": max(half) if half else None,
            "peak_rss_first_half_bytes": max(r for t, r in samples if t < seconds / 2),
            "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthqa-bench-slow-reader", description=__doc__)
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--engine-args", default=TINY_MODEL_ENGINE_ARGS)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--read-delay", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    server, target = synthqa_server(args.model, shlex.split(args.engine_args),
                                    args.out / "logs" / stamp)
    workload = build_workload("quick")
    texts = [d.text for d in workload.documents]
    server.start()
    try:
        idle = tree_rss(psutil.Process(server.pid)).tree
        runs = [asyncio.run(read_for(target, args.seconds, delay, server.pid,
                                     workload.options, texts))
                for delay in (0.0, args.read_delay)]
    finally:
        server.stop()
    result = {"model": args.model, "idle_rss_bytes": idle, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}-slow-reader.json").write_text(json.dumps(result, indent=2))
    mib = 2 ** 20
    print(f"idle server: {idle / mib:.0f} MiB")
    for run in runs:
        print(f"read delay {run['read_delay_seconds']:.2f} s: {run['events_read']} events read, "
              f"{run['documents_offered']} documents pulled from the iterator; peak RSS first half "
              f"{run['peak_rss_first_half_bytes'] / mib:.0f} MiB, second half "
              f"{run['peak_rss_second_half_bytes'] / mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
