"""`python -m synthqa_bench.chunker_bench`: synthqa's chunker (tokenize, then window) against
the fast tokenizer's own encode with offsets, on documents from 10 thousand characters up to
the largest the server accepts. `--baseline CHECKOUT` also runs another checkout's chunker,
interleaved with this one's, and compares their CPU seconds. Writes JSON and a plot of
throughput against size."""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from synthqa.server.pipeline.limits import ServiceLimits
from synthqa.server.text import chunker

from .runner import load_tokenizer
from .workload import CORPUS, build_workload, sample_document, sentences

SIZES = (10_000, 100_000, 1_000_000, 4_000_000, ServiceLimits().max_document_chars)
JAPANESE = "灯台守は毎晩、灯心を整えて時計仕掛けを巻いた。霧の夜には鐘を鳴らした。"
JAPANESE_CHARS = 300_000


def raw_encode(tokenizer: Any, text: str) -> int:
    """The Rust tokenizer alone: ids and offsets, as few Python objects as it can make."""
    return len(tokenizer.backend_tokenizer.encode_batch([text], add_special_tokens=False)[0].ids)


def synthqa_chunk(tokenizer: Any, text: str, budget: int, module: ModuleType = chunker) -> int:
    return len(module.chunk_document(module.tokenize_document(tokenizer, text), budget, 0))


def baseline_chunker(checkout: Path) -> ModuleType:
    """Another checkout's chunker module, with the text package it imports from."""
    text = checkout / "server/synthqa/server/text"
    spec = importlib.util.spec_from_file_location(
        "baseline_text", text / "__init__.py", submodule_search_locations=[str(text)])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["baseline_text"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("baseline_text.chunker")


def best_of(repeats: int, work: Any) -> float:
    return best_cpu_and_wall(repeats, work)[0][1]


def best_cpu_and_wall(repeats: int, *works: Any) -> list[tuple[float, float]]:
    """Each work's least CPU seconds (every thread of the process) and wall seconds over
    `repeats`, the works taking turns so the machine's noise falls on all alike."""
    cpu: list[list[float]] = [[] for _ in works]
    wall: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for at, work in enumerate(works):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            work()
            cpu[at].append(time.process_time() - cpu_start)
            wall[at].append(time.perf_counter() - wall_start)
    return [(min(cpu[at]), min(wall[at])) for at in range(len(works))]


def main(argv: list[str] | None = None) -> int:
    import random

    parser = argparse.ArgumentParser(prog="synthqa-bench-chunker", description=__doc__)
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--max-chars", type=int, default=SIZES[-1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another synthqa checkout whose chunker runs beside this one's")
    args = parser.parse_args(argv)
    baseline = baseline_chunker(args.baseline) if args.baseline else None
    tokenizer = load_tokenizer(args.model)
    pool = sentences(CORPUS.read_text(encoding="utf-8"))
    text = sample_document(random.Random(1), pool, args.max_chars)
    cases = [("english", [text[:size]]) for size in SIZES if size <= args.max_chars]
    # Beside the sizes: many small documents (the benchmark's `quick` workload) and a script
    # of three bytes a character.
    cases.append(("quick workload", [d.text for d in build_workload("quick").documents]))
    cases.append(("japanese", [(JAPANESE * (JAPANESE_CHARS // len(JAPANESE) + 1))[
        :JAPANESE_CHARS]]))
    rows = []
    for name, documents in cases:
        size = sum(map(len, documents))
        repeats = args.repeats if size <= 4_000_000 else 1
        raw = best_of(repeats, lambda ds=documents: [raw_encode(tokenizer, d) for d in ds])
        works = [lambda ds=documents: [synthqa_chunk(tokenizer, d, 512) for d in ds]]
        if baseline is not None:
            works.append(lambda ds=documents: [synthqa_chunk(tokenizer, d, 512, baseline)
                                               for d in ds])
        (ours_cpu, ours), *base_figures = best_cpu_and_wall(repeats, *works)
        row = {"text": name, "documents": len(documents), "chars": size,
               "raw_encode_seconds": raw, "synthqa_chunk_seconds": ours,
               "synthqa_cpu_seconds": ours_cpu, "raw_chars_per_second": size / raw,
               "synthqa_chars_per_second": size / ours, "synthqa_vs_raw": raw / ours}
        line = (f"{name:>14} {size:>12,} chars: raw encode {size / raw / 1e6:6.2f} M chars/s, "
                f"synthqa {size / ours / 1e6:6.2f} M chars/s, {raw / ours:.2f}× raw")
        if base_figures:
            base_cpu, base = base_figures[0]
            row.update(baseline_seconds=base, baseline_cpu_seconds=base_cpu,
                       cpu_vs_baseline=ours_cpu / base_cpu)
            line += f"; CPU {ours_cpu / base_cpu:.2f}× the baseline's"
        rows.append(row)
        print(line, flush=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "baseline": str(args.baseline) if args.baseline else None,
              "rows": rows,
              "median_vs_raw": statistics.median(r["synthqa_vs_raw"] for r in rows)}
    (args.out / f"{stamp}-chunker.json").write_text(json.dumps(result, indent=2))
    plot([r for r in rows if r["text"] == "english"], args.out / f"{stamp}-chunker.png")
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
              label="synthqa chunker (tokens, offsets, windows)")
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
