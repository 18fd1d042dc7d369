"""What the data-quality features cost, on a real server: records per second with the judge
off and on (and with dedup), a seeded call served from the result cache against the engine,
and the deduplicator's own cost per thousand records.

`PYTHONPATH=bench python -m synthqa_bench.quality_bench` (or `make bench-quality`). Runs are
interleaved and repeated; ratios within the run are what to quote. Writes a JSON file to
bench/results/ and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from synthqa.client import Document, SynthQAClient

from .dedup_bench import dedup_module, ms_per_1000
from .servers import BenchServer, _grpc_serving, free_port

CORPUS = Path(__file__).with_name("corpus.txt")


def documents(count: int, chars: int) -> list[Document]:
    """Consecutive slices of the corpus, taken round again when it runs out."""
    text = CORPUS.read_text(encoding="utf-8")
    text *= -(-count * chars // len(text))
    return [Document(f"q{n}", text[n * chars:(n + 1) * chars]) for n in range(count)]


def timed_call(target: str, docs: list[Document], **options: Any) -> dict[str, float]:
    with SynthQAClient(target, timeout=3600, retries=0) as client:
        began = time.monotonic()
        records = dropped = cached = 0
        for event in client.generate(docs, **options):
            kind = event.WhichOneof("event")
            if kind in ("record", "qa_pair"):
                records += 1
            elif kind == "document_completed":
                counts = event.document_completed.record_counts
                dropped += counts.dropped_by_judge + counts.duplicates
                cached += event.document_completed.cached_chunk_count
        seconds = time.monotonic() - began
    return {"seconds": seconds, "records": records, "records_per_s": records / seconds,
            "dropped": dropped, "cached_chunks": cached}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthqa-bench-quality", description=__doc__)
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--documents", type=int, default=12)
    parser.add_argument("--chars", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--cache-url", default=None,
                        help="the server's result cache in this Redis instead of a SQLite file")
    args = parser.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cache_dir = Path(tempfile.mkdtemp(prefix="synthqa-bench-cache-"))
    cache_flags = (["--cache-url", args.cache_url] if args.cache_url
                   else ["--cache-path", str(cache_dir / "results.sqlite")])
    port = free_port()
    target = f"127.0.0.1:{port}"
    server = BenchServer(
        "synthqa-quality",
        [sys.executable, "-m", "synthqa.server", "--model", args.model, "--port", str(port),
         "--max-model-len", "2048", "--enforce-eager", "--no-enable-prefix-caching",
         *cache_flags],
        lambda: _grpc_serving(target), args.out / "logs" / stamp / "quality-server.log")
    docs = documents(args.documents, args.chars)
    base = dict(record_shape="qa", num_pairs=2, max_generation_tokens=256,
                max_chunk_tokens=256, chunk_overlap_tokens=0)
    arms = {
        "plain": base,
        "judge": {**base, "judge": True, "min_rating": 1},
        "dedup": {**base, "dedup": True},
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    cache_runs: list[dict[str, dict[str, float]]] = []
    server.start()
    try:
        timed_call(target, docs[:1], **base)  # warm-up: grammars compiled
        timed_call(target, docs[:1], **arms["judge"])
        for repeat in range(args.repeats):
            for name, options in arms.items():
                runs[name].append(timed_call(target, docs, **options))
            seed = 1000 + repeat
            miss = timed_call(target, docs, seed=seed, **base)
            hit = timed_call(target, docs, seed=seed, **base)
            cache_runs.append({"miss": miss, "hit": hit})
    finally:
        server.stop()
    dedup_ms = ms_per_1000(dedup_module(None))

    def median(values: list[float]) -> float:
        return statistics.median(values)

    figures: dict[str, Any] = {
        name: {"records_per_s": median([r["records_per_s"] for r in rs]),
               "seconds": median([r["seconds"] for r in rs]),
               "records": median([r["records"] for r in rs]), "runs": rs}
        for name, rs in runs.items()}
    figures["cache"] = {
        "backend": "redis" if args.cache_url else "sqlite",
        "miss_seconds": median([c["miss"]["seconds"] for c in cache_runs]),
        "hit_seconds": median([c["hit"]["seconds"] for c in cache_runs]),
        "hit_cached_chunks": median([c["hit"]["cached_chunks"] for c in cache_runs]),
        "runs": cache_runs}
    figures["dedup_ms_per_1000_records"] = dedup_ms
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}-quality.json"
    path.write_text(json.dumps({"documents": args.documents, "chars": args.chars,
                                "repeats": args.repeats, "options": base,
                                "figures": figures}, indent=2))
    plain = figures["plain"]["records_per_s"]
    print(f"\nquality run {stamp}: {args.documents} documents of {args.chars} characters, "
          f"{args.repeats} repeats, medians\n")
    print("| arm | records/s | × plain | records | wall s |\n|---|---|---|---|---|")
    for name in arms:
        f = figures[name]
        print(f"| {name} | {f['records_per_s']:.1f} | {f['records_per_s'] / plain:.2f}× | "
              f"{f['records']:.0f} | {f['seconds']:.2f} |")
    c = figures["cache"]
    print(f"\nseeded call: {c['miss_seconds']:.2f} s from the engine, {c['hit_seconds']:.3f} s "
          f"from the {c['backend']} cache ({c['hit_cached_chunks']:.0f} chunks cached); "
          f"dedup: {dedup_ms:.0f} ms per 1,000 records\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
