"""`python -m synthqa_bench.chunker_memory`: what chunking a document costs in memory, by
script: the resident memory a process gains while it tokenizes a document (peak) and while it
holds the tokens and then the chunks, per token, next to the factors the server's memory
budget counts (pipeline/chunking.py). Each case runs in a process of its own, so one case's
freed heap does not hide the next one's growth. Writes JSON to bench/results/."""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from synthqa.server.pipeline.chunking import CHUNK_TOKEN_BYTES, TOKEN_BYTES
from synthqa.server.text.chunker import chunk_document, tokenize_document

from .runner import load_tokenizer

SCRIPTS = {
    "english": "Lighthouse keepers trimmed the wicks and wound the clockwork every night. ",
    "cjk": "灯台守は毎晩灯心を整え時計仕掛けを巻いた。",
    "emoji": "🏝️🌊💡⚓",
}
SIZES = (1_000_000, 4_000_000, 16_000_000)
MIB = 2**20


def _resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def measure(model: str, script: str, size: int, budget: int) -> dict[str, Any]:
    """One case, in this process."""
    tokenizer = load_tokenizer(model)
    text = (SCRIPTS[script] * (size // len(SCRIPTS[script]) + 1))[:size]
    tokenize_document(tokenizer, "warm up " * 10_000)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    start = peak = _resident()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _resident())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    document = tokenize_document(tokenizer, text)
    seconds = time.perf_counter() - began
    tokenized = _resident() - start
    chunks = chunk_document(document, budget, 64)
    with_chunks = _resident() - start
    done.set()
    sampler.join()
    tokens = document.token_count
    return {
        "script": script, "characters": size, "tokens": tokens,
        "tokens_per_character": round(tokens / size, 3), "tokenize_seconds": round(seconds, 2),
        "chunks": len(chunks), "peak_mib": round((peak - start) / MIB, 1),
        "held_bytes_per_token": round(tokenized / tokens, 1),
        "chunk_bytes_per_token": round((with_chunks - tokenized) / tokens, 1),
        "budget_token_bytes": TOKEN_BYTES, "budget_chunk_token_bytes": CHUNK_TOKEN_BYTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--scripts", nargs="*", default=list(SCRIPTS))
    parser.add_argument("--chunk-tokens", type=int, default=1900)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # script:size, run in a child
    args = parser.parse_args()
    if args.case:
        script, size = args.case.split(":")
        print(json.dumps(measure(args.model, script, int(size), args.chunk_tokens)))
        return
    rows = []
    for script in args.scripts:
        for size in args.sizes:
            child = subprocess.run(
                [sys.executable, "-m", "synthqa_bench.chunker_memory", "--model", args.model,
                 "--chunk-tokens", str(args.chunk_tokens), "--case", f"{script}:{size}"],
                check=True, capture_output=True, text=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{script:8s} {size:>11,} chars {row['tokens']:>11,} tokens "
                  f"peak {row['peak_mib']:7.1f} MiB, held {row['held_bytes_per_token']:5.1f} "
                  f"B/token, chunks {row['chunk_bytes_per_token']:5.1f} B/token", flush=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("bench/results") / f"{stamp}-chunker-memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
