"""Record the real engine's outputs for the replay engine, one file per feature:
`PYTHONPATH=bench python -m synthqa_bench.record_replay` (or `make bench-record`).

One server on the model (`replay_server --record`, every finished engine request appended to a
raw file), then, feature by feature, the bench workload's documents through it with that
feature's options (one call per set of the workload's options). What the raw file gained
during a feature's calls, after the header and the server's warm-up request (which every
replay server makes before it serves), goes to `OUT/<feature>.jsonl.gz`. The workload, its
options and the server's flags are the benchmark's own, so a benchmark run on the same
workload against a replay server finds every request's own output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthqa.client import Document, SynthQAClient
from synthqa.server.engine.replay import read_lines, write_recording

from .servers import TINY_MODEL_ENGINE_ARGS, BenchServer, _grpc_serving, engine_flags, free_port
from .workload import SHAPES, Workload, build_workload

# A custom record shape small enough for the tiny model's budget.
CUSTOM_SCHEMA = {"type": "object",
                 "properties": {"term": {"type": "string", "maxLength": 40},
                                "definition": {"type": "string", "maxLength": 160}},
                 "required": ["term", "definition"], "additionalProperties": False}
# Options each feature adds to the workload's. dedup sends every document twice (under
# another id), so that the call has repeats to drop.
FEATURES: dict[str, dict[str, Any]] = {
    "qa": {"record_shape": "qa"},
    "cot": {"record_shape": "cot"},
    "custom": {"record_schema": json.dumps(CUSTOM_SCHEMA)},
    "evidence": {"record_shape": "qa", "evidence": True},
    "judge": {"record_shape": "qa", "judge": True, "min_rating": 1},
    "dedup": {"record_shape": "qa", "dedup": True},
}
TWICE = {"dedup"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthqa-bench-record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--engine-args", default=None,
                        help="vLLM engine flags (default for the tiny model: "
                        f"{TINY_MODEL_ENGINE_ARGS!r}, plus --no-enable-prefix-caching as in "
                        "the benchmark)")
    parser.add_argument("--workload", choices=sorted(SHAPES), default="quick")
    parser.add_argument("--features", default=",".join(FEATURES),
                        help=f"comma-separated, of {', '.join(FEATURES)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench/replay"))
    return parser


def feature_calls(workload: Workload, feature: str) -> Iterator[tuple[dict[str, Any],
                                                                      list[Document]]]:
    """The calls of one feature: documents and options, a call per set of options."""
    for options, documents in workload.option_groups():
        docs = [Document(d.document_id, d.text) for d in documents]
        if feature in TWICE:
            docs += [Document(d.document_id + "-again", d.text) for d in documents]
        yield {**options, **FEATURES[feature]}, docs


def run_call(target: str, documents: list[Document], options: dict[str, Any]) -> dict[str, int]:
    counts = {"records": 0, "chunks_completed": 0, "chunks_failed": 0}
    with SynthQAClient(target, timeout=3600, retries=0) as client:
        for event in client.generate(documents, **options):
            kind = event.WhichOneof("event")
            if kind in ("record", "qa_pair"):
                counts["records"] += 1
            elif kind == "chunk_completed":
                counts["chunks_completed"] += 1
            elif kind == "chunk_failed":
                counts["chunks_failed"] += 1
    return counts


def lines_after(raw: Path, offset: int) -> list[dict[str, Any]]:
    """The raw file's request lines from byte `offset` on."""
    with open(raw, "rb") as file:
        file.seek(offset)
        return [json.loads(line) for line in file.read().decode("utf-8").splitlines()
                if line.strip()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown feature(s): {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(FEATURES)}")
    workload = build_workload(args.workload)
    work = Path(tempfile.mkdtemp(prefix="synthqa-record-"))
    raw = work / "raw.jsonl"
    port = free_port()
    target = f"127.0.0.1:{port}"
    server = BenchServer(
        "synthqa-record",
        [sys.executable, "-m", "synthqa_bench.replay_server", "--record", str(raw),
         "--model", args.model, "--host", "127.0.0.1", "--port", str(port), "--no-cache",
         *engine_flags(args.model, args.engine_args)],
        lambda: _grpc_serving(target), work / "server.log")
    print(f"recording {', '.join(features)} on {args.model}, workload {args.workload} "
          f"({len(workload.documents)} documents); server log {server.log_path}")
    server.start()
    try:
        header, *warm_up = list(read_lines(raw))  # the server is warm: SERVING
        summary = []
        for feature in features:
            offset = raw.stat().st_size
            began = time.monotonic()
            totals: dict[str, int] = {}
            for options, documents in feature_calls(workload, feature):
                for name, value in run_call(target, documents, options).items():
                    totals[name] = totals.get(name, 0) + value
            outputs = lines_after(raw, offset)
            path = args.out / f"{feature}.jsonl.gz"
            write_recording(path, {**header, "feature": feature, "workload": args.workload},
                            [*warm_up, *outputs])
            summary.append((feature, len(outputs), totals, time.monotonic() - began, path))
            print(f"{feature}: {len(outputs)} outputs, {totals}, "
                  f"{time.monotonic() - began:.1f} s -> {path}", flush=True)
    finally:
        server.stop()
    shutil.rmtree(work, ignore_errors=True)
    print("\n| feature | outputs | records | chunks completed | chunks failed | s | file |\n"
          "|---|---|---|---|---|---|---|")
    for feature, count, totals, seconds, path in summary:
        print(f"| {feature} | {count} | {totals.get('records', 0)} | "
              f"{totals.get('chunks_completed', 0)} | {totals.get('chunks_failed', 0)} | "
              f"{seconds:.1f} | {path} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
