"""What dedup (synthqa.contract.dedup, the server's per call and the export's per run) costs
and finds, without a server:

- time: milliseconds to check and keep 1,000 distinct questions (best of 5);
- memory: what stays in memory per kept record, 20,000 distinct records of 80 characters
  (tracemalloc), and the time per record without tracing;
- recall: of 3,000 pairs of short questions that differ by one word, the share of pairs at
  or above the threshold whose second record is found a duplicate (exact Jaccard confirms
  every candidate, so nothing below the threshold is ever dropped).

`PYTHONPATH=bench python -m synthqa_bench.dedup_bench` (or `make bench-dedup`): prints the
figures and writes them to bench/results/<time>-dedup.json. `--baseline CHECKOUT` measures that
checkout's dedup module in the same run, side by side."""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

CORPUS = Path(__file__).with_name("corpus.txt")
THRESHOLDS = (0.7, 0.85, 0.95)


def dedup_module(checkout: Path | None) -> ModuleType:
    if checkout is None:
        from synthqa.contract import dedup
        return dedup
    path = checkout / "client/src/synthqa/contract/dedup.py"
    spec = importlib.util.spec_from_file_location("baseline_dedup", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _words() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").split()


def ms_per_1000(dedup: ModuleType, repeats: int = 5) -> float:
    words = _words()
    questions = [" ".join(words[i:i + 9]) + "?" for i in range(0, 9000, 9)]
    best = float("inf")
    for _ in range(repeats):
        deduplicator = dedup.Deduplicator(0.85)
        began = time.perf_counter()
        for question in questions:
            deduplicator.keep(question)
        best = min(best, time.perf_counter() - began)
    return best * 1000


def memory_per_kept(dedup: ModuleType, records: int = 20_000) -> dict[str, float]:
    rng = random.Random(1)
    words = _words()
    texts = [(f"Q{n}: " + " ".join(rng.choice(words) for _ in range(14)))[:80]
             for n in range(records)]
    tracemalloc.start()
    deduplicator = dedup.Deduplicator(0.85)
    kept = sum(deduplicator.keep(text) for text in texts)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    deduplicator = dedup.Deduplicator(0.85)
    began = time.perf_counter()
    for text in texts:
        deduplicator.keep(text)
    seconds = time.perf_counter() - began
    return {"records": records, "kept": kept, "kb_per_kept_record": held / kept / 1024,
            "mb_held": held / 2**20, "ms_per_record": seconds / records * 1000,
            "seconds": seconds}


def recall(dedup: ModuleType, pairs: int = 3000) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    words = _words()
    made = []
    for _ in range(pairs):
        chosen = [rng.choice(words) for _ in range(rng.randint(6, 16))]
        changed = list(chosen)
        changed[rng.randrange(len(changed))] = rng.choice(words)
        made.append((" ".join(chosen), " ".join(changed)))
    found: dict[str, dict[str, float]] = {}
    for threshold in THRESHOLDS:
        near = caught = wrongly = 0
        for first, second in made:
            a = dedup.shingles(dedup.normalise(first))
            b = dedup.shingles(dedup.normalise(second))
            deduplicator = dedup.Deduplicator(threshold)
            deduplicator.keep(first)
            dropped = not deduplicator.keep(second)
            if len(a & b) / len(a | b) >= threshold:
                near += 1
                caught += dropped
            else:
                wrongly += dropped
        found[str(threshold)] = {"near_pairs": near, "found": caught,
                                 "recall": caught / near if near else 0.0,
                                 "dropped_below_threshold": wrongly}
    return found


def measure(dedup: ModuleType) -> dict[str, Any]:
    return {"ms_per_1000_records": ms_per_1000(dedup), "memory": memory_per_kept(dedup),
            "recall": recall(dedup)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthqa-bench-dedup", description=__doc__)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout whose dedup module is measured beside this one's")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    arms = {"this checkout": dedup_module(None)}
    if args.baseline is not None:
        arms = {"baseline": dedup_module(args.baseline), **arms}
    figures = {name: measure(module) for name, module in arms.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}-dedup.json"
    path.write_text(json.dumps({"baseline": str(args.baseline) if args.baseline else None,
                                "figures": figures}, indent=2))
    print(f"\ndedup run {stamp}\n")
    print("| | ms per 1,000 records | KB per kept record | ms per record (20,000) | "
          + " | ".join(f"recall at {t}" for t in THRESHOLDS) + " |")
    print("|---|---|---|---|" + "---|" * len(THRESHOLDS))
    for name, f in figures.items():
        recalls = " | ".join(f"{f['recall'][str(t)]['recall']:.2f} "
                             f"({f['recall'][str(t)]['near_pairs']} pairs)" for t in THRESHOLDS)
        print(f"| {name} | {f['ms_per_1000_records']:.1f} | "
              f"{f['memory']['kb_per_kept_record']:.2f} | {f['memory']['ms_per_record']:.3f} | "
              f"{recalls} |")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
