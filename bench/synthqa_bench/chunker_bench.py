"""`python -m synthqa_bench.chunker_bench`: synthqa's chunker (tokenize with offsets, then
window) against the fast tokenizer's own encode, on documents from 10 thousand characters up
to the largest the server accepts. Writes JSON and a plot of throughput against size."""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Any

from synthqa.server.pipeline.limits import ServiceLimits
from synthqa.server.text.chunker import chunk_document, tokenize_document

from .runner import load_tokenizer
from .workload import CORPUS, sample_document, sentences

SIZES = (10_000, 100_000, 1_000_000, 4_000_000, ServiceLimits().max_document_chars)


def raw_encode(tokenizer: Any, text: str) -> int:
    """The Rust tokenizer alone: ids and offsets, as few Python objects as it can make."""
    return len(tokenizer.backend_tokenizer.encode_batch([text], add_special_tokens=False)[0].ids)


def synthqa_chunk(tokenizer: Any, text: str, budget: int) -> int:
    return len(chunk_document(tokenize_document(tokenizer, text), budget, 0))


def best_of(repeats: int, work: Any) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    import random

    parser = argparse.ArgumentParser(prog="synthqa-bench-chunker", description=__doc__)
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--max-chars", type=int, default=SIZES[-1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(args.model)
    pool = sentences(CORPUS.read_text(encoding="utf-8"))
    text = sample_document(random.Random(1), pool, args.max_chars)
    rows = []
    for size in [s for s in SIZES if s <= args.max_chars]:
        document = text[:size]
        repeats = args.repeats if size <= 4_000_000 else 1
        raw = best_of(repeats, lambda d=document: raw_encode(tokenizer, d))
        ours = best_of(repeats, lambda d=document: synthqa_chunk(tokenizer, d, 512))
        rows.append({"chars": size, "raw_encode_seconds": raw, "synthqa_chunk_seconds": ours,
                     "raw_chars_per_second": size / raw, "synthqa_chars_per_second": size / ours,
                     "synthqa_vs_raw": raw / ours})
        print(f"{size:>12,} chars: raw encode {size / raw / 1e6:6.2f} M chars/s, synthqa "
              f"{size / ours / 1e6:6.2f} M chars/s, {raw / ours:.2f}× raw", flush=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "rows": rows,
              "median_vs_raw": statistics.median(r["synthqa_vs_raw"] for r in rows)}
    (args.out / f"{stamp}-chunker.json").write_text(json.dumps(result, indent=2))
    plot(rows, args.out / f"{stamp}-chunker.png")
    return 0


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    sizes = [r["chars"] for r in rows]
    axes.plot(sizes, [r["raw_chars_per_second"] / 1e6 for r in rows], marker="o",
              label="fast tokenizer encode")
    axes.plot(sizes, [r["synthqa_chars_per_second"] / 1e6 for r in rows], marker="o",
              label="synthqa chunker (offsets + windows)")
    axes.set_xscale("log")
    axes.set_xlabel("document size, characters")
    axes.set_ylabel("million characters / s")
    axes.set_ylim(bottom=0)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
