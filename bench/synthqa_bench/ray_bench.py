"""`make bench-ray`: a corpus through the CLI and through Ray Data on the same replicas
(issue 24). Records/s of each side by side in one run, and the client side's CPU per 1,000
records.

Per replica count (1, then 2: the tiny model started here with ingest_bench's `--serve` flags,
or the first N of `--target a,b` already running), the same seeded corpus of mixed small
documents (ingest_corpus.py) goes through two arms, alternately over the repeats:

- (a) `synthqa generate FOLDER --target <the replicas>` (streams: one per replica); its CPU is
  the command's and its extraction worker's, the kernel's exact counts once it has exited;
- (b) `generate_dataset(FOLDER, target=<the replicas>, concurrency=<replicas>, streams=1,
  extract_num_cpus=0.5)` on a local Ray (`ray.init(num_cpus=2)`), into a fresh folder each
  time. Ray starts once per replica count, before the runs, untimed (its start-up is
  reported); a run times the call alone. Its CPU is the driver's (this process, less the
  sampler's own thread) and every process of Ray's, read every 0.2 s and counted by kind:
  raylet, gcs_server, Ray's other processes (agents, log monitor), the ExtractDocuments and
  GenerateShards actors (ours), Ray Data's other tasks (reading, the groupby's shuffle) and
  workers starting or idle.

Both arms send the same options: seeded, one pair per chunk, 64 tokens, 256-token chunks.
A warm-up of a few documents through each arm comes first at each replica count (grammar,
imports, Ray's worker pool), untimed.

    make bench-ray                                          # starts 1, then 2 replicas
    make bench-ray BENCH_ARGS="--target HOST:A,HOST:B"      # replicas already running
    make bench-ray BENCH_ARGS="--replicas 2 --repeats 3 --concurrency 2"

Writes bench/results/<time>-ray.json and .md. The machines are shared: ratios from one run
are what to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from .ingest_bench import TINY_SERVER_ARGS, machine, start_server
from .ingest_corpus import SMALL, build_corpus, spread
from .process_tree import TreeCpuByKind, exited_cpu

ARMS = ("cli", "ray")
ARM_NAMES = {"cli": "(a) synthqa generate", "ray": "(b) generate_dataset on Ray"}
# Ray's processes by kind; "ours" are the actors running synthqa's classes, the rest is what
# Ray itself costs.
OURS = ("ExtractDocuments actors", "GenerateShards actors")
RAY_KINDS = ("raylet", "gcs_server", "Ray Data tasks", "workers starting or idle", *OURS)
SAMPLE_SECONDS = 0.2
WARM_DOCUMENTS = 8


def options(args: argparse.Namespace) -> dict[str, int]:
    return {"seed": args.seed_options, "num_pairs": args.num_pairs,
            "max_generation_tokens": args.max_generation_tokens,
            "max_chunk_tokens": args.max_chunk_tokens}


def cli_flags(args: argparse.Namespace) -> list[str]:
    return [flag for name, value in options(args).items()
            for flag in (f"--{name.replace('_', '-')}", str(value))]


def ray_kind(process: psutil.Process) -> str:
    title = " ".join(process.cmdline())
    if title.startswith("ray::"):
        for ours in OURS:
            if ours.split()[0] in title:
                return ours
        # A worker is IDLE while it starts (imports) and between tasks.
        return "workers starting or idle" if title.startswith("ray::IDLE") else "Ray Data tasks"
    name = process.name()
    if name in ("raylet", "gcs_server"):
        return name
    # Ray's Python processes (agents, log monitor) by their script.
    script = next((part for part in process.cmdline() if part.endswith(".py")), name)
    return "Ray's " + "/".join(Path(script).parts[-2:])


class LocalRay:
    """Ray started in this process once per replica count; its processes are the children
    this process gained in `ray.init`, and theirs."""

    def __init__(self, num_cpus: int) -> None:
        import ray

        me = psutil.Process()
        before = {child.pid for child in me.children()}
        began = time.perf_counter()
        cpu = time.process_time()
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        self.start_up_s = time.perf_counter() - began
        self.start_up_driver_cpu_s = time.process_time() - cpu
        self.roots = [child for child in me.children() if child.pid not in before]

    def sampler(self) -> TreeCpuByKind:
        return TreeCpuByKind(lambda: self.roots, ray_kind, SAMPLE_SECONDS)

    def stop(self) -> None:
        import ray

        ray.shutdown()


def cli_run(folder: Path, targets: Sequence[str], work: Path, name: str,
            args: argparse.Namespace, ray_: LocalRay) -> dict[str, Any]:
    out, summary = work / f"{name}.jsonl", work / f"{name}.summary.json"
    command = [sys.executable, "-m", "synthqa.client.cli", "--target", ",".join(targets),
               "--timeout", "3600", "generate", str(folder), "--out", str(out),
               "--summary-json", str(summary), "--no-progress", *cli_flags(args)]
    with (work / f"{name}.log").open("wb") as log, ray_.sampler() as background:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        own, workers = exited_cpu(process.pid)
        wall = time.perf_counter() - began
        code = process.wait()
    # Exit 3: finished with some chunks failed; the summary says how many.
    if code not in (0, 3):
        raise RuntimeError(f"synthqa generate exited with {code}; see {work / name}.log:\n"
                           + (work / f"{name}.log").read_text()[-3000:])
    counts = json.loads(summary.read_text(encoding="utf-8"))
    out.unlink()
    return finish({"wall": wall, "documents": counts["documents_done"],
                   "records": counts["records_written"], "chunks": counts["chunks_done"],
                   "chunks_failed": counts["chunks_failed"],
                   "cpu_by_part": {"synthqa generate": own, "its extraction worker": workers},
                   # Ray left running between its own runs: what it used meanwhile.
                   "ray_idle_cpu": sum(background.cpu_by_kind.values())})


def ray_run(folder: Path, targets: Sequence[str], work: Path, name: str,
            args: argparse.Namespace, ray_: LocalRay) -> dict[str, Any]:
    from synthqa.ray import generate_dataset

    out = work / name
    concurrency = args.concurrency or len(targets)
    with ray_.sampler() as sampler:
        began = time.perf_counter()
        cpu = time.process_time()
        summaries = generate_dataset(
            str(folder), target=list(targets), out=out, options=options(args),
            num_shards=args.num_shards, concurrency=concurrency, streams=1,
            extract_num_cpus=args.extract_num_cpus)
        driver = time.process_time() - cpu
        wall = time.perf_counter() - began
    by_kind = {kind: sampler.cpu_by_kind.get(kind, 0.0) for kind in RAY_KINDS}
    by_kind.update(sampler.cpu_by_kind)
    records = sum(int(summary["records"]) for summary in summaries)
    chunks = count_chunks(out)
    shutil.rmtree(out)
    return finish({"wall": wall, "documents": sum(int(s["documents"]) for s in summaries),
                   "records": records, "chunks_with_records": chunks,
                   "skipped": sum(len(s["skipped"]) for s in summaries),
                   "cpu_by_part": {"driver": max(0.0, driver - sampler.sampler_cpu_seconds),
                                   **by_kind},
                   "ray_processes_by_kind": sampler.processes_by_kind,
                   "ray_processes_exited": sampler.exited,
                   "sampler_cpu": sampler.sampler_cpu_seconds, "concurrency": concurrency})


def count_chunks(out: Path) -> int:
    import pyarrow.parquet as pq

    chunks = set()
    for path in out.glob("*.parquet"):
        table = pq.read_table(path, columns=["document_id", "chunk_index"])
        chunks.update(zip(table["document_id"].to_pylist(), table["chunk_index"].to_pylist(),
                          strict=True))
    return len(chunks)


def finish(run: dict[str, Any]) -> dict[str, Any]:
    run["cpu"] = sum(run["cpu_by_part"].values())
    wall = run["wall"] or 1e-9
    run["records_per_s"] = run["records"] / wall
    run["documents_per_s"] = run["documents"] / wall
    run["cpu_ms_per_1000_records"] = 1e6 * run["cpu"] / max(run["records"], 1)
    return run


RUNS = {"cli": cli_run, "ray": ray_run}
FIGURES = ("records_per_s", "documents_per_s", "wall", "cpu", "cpu_ms_per_1000_records")


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for what in FIGURES:
        values = [run[what] for run in runs]
        figures[what] = {"median": statistics.median(values), "min": min(values),
                         "max": max(values)}
    parts = dict.fromkeys(part for run in runs for part in run["cpu_by_part"])
    figures["cpu_by_part"] = {part: statistics.median(run["cpu_by_part"].get(part, 0.0)
                                                      for run in runs) for part in parts}
    figures["records"] = sorted({run["records"] for run in runs})
    return figures


def marginal(runs: Sequence[dict[str, Any]], warm: dict[str, Any]) -> float | None:
    """CPU ms per 1,000 records beyond what a job of the warm-up's few documents costs: the
    median run's CPU less the warm-up's, over the records more. Rough (the warm-up also pays
    first-time costs), but it leaves out what a job costs whatever its size (Ray's actors
    starting, the CLI's start-up)."""
    records = statistics.median(run["records"] for run in runs) - warm["records"]
    if records <= 0:
        return None
    return 1e6 * (statistics.median(run["cpu"] for run in runs) - warm["cpu"]) / records


def at_replicas(targets: list[str], corpus: Path, warm: Path, work: Path,
                args: argparse.Namespace) -> dict[str, Any]:
    replicas = len(targets)
    ray_ = LocalRay(args.ray_cpus)
    try:
        started = {"start_up_s": ray_.start_up_s,
                   "start_up_driver_cpu_s": ray_.start_up_driver_cpu_s}
        # Also a rough split of each arm's CPU into a part per job and a part per record.
        warm_runs = {arm: RUNS[arm](warm, targets, work, f"warm-{replicas}-{arm}", args, ray_)
                     for arm in ARMS}
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        for repeat in range(args.repeats):
            # a, b then b, a: drift over the run weighs on both arms alike.
            for arm in ARMS if repeat % 2 == 0 else ARMS[::-1]:
                run = RUNS[arm](corpus, targets, work, f"{arm}-{replicas}-{repeat}", args, ray_)
                runs[arm].append(run)
                print(f"{replicas} replica(s), repeat {repeat + 1}/{args.repeats} {arm}: "
                      f"{run['documents']} documents, {run['records']} records in "
                      f"{run['wall']:.1f} s, client CPU {run['cpu']:.1f} s",
                      file=sys.stderr, flush=True)
    finally:
        ray_.stop()
    arms = {arm: summarize(rs) for arm, rs in runs.items()}
    for arm, figures in arms.items():
        figures["marginal_cpu_ms_per_1000_records"] = marginal(runs[arm], warm_runs[arm])
    return {"replicas": replicas, "targets": targets, "ray": started, "arms": arms,
            "warm_up": warm_runs,
            "ray_vs_cli": {what: arms["ray"][what]["median"] / arms["cli"][what]["median"]
                           for what in ("records_per_s", "documents_per_s",
                                        "cpu_ms_per_1000_records")},
            "runs": runs}


def run(args: argparse.Namespace, stamp: str, work: Path,
        targets: list[str] | None) -> dict[str, Any]:
    host = machine()
    files = build_corpus(work / "files", spread(args.documents), SMALL, seed=args.seed,
                         shuffle=True)
    (work / "warm").mkdir()
    for file in files[:WARM_DOCUMENTS]:
        shutil.copy(file.path, work / "warm" / file.path.name)
    servers: list[Any] = []
    counts: list[dict[str, Any]] = []
    try:
        for replicas in args.replicas:
            if targets is None:
                # Started one by one as the count grows; the ones up stay up.
                while len(servers) < replicas:
                    servers.append(start_server(args, stamp, f"ray-replica-{len(servers)}"))
                chosen = [target for _, target in servers]
            else:
                chosen = targets[:replicas]
            counts.append(at_replicas(chosen, work / "files", work / "warm", work, args))
    finally:
        for server, _ in servers:
            server.stop()
    return {
        "run": stamp, "mode": "ray", "label": args.label, "served_here": targets is None,
        "model": args.model if targets is None else None,
        "server_args": args.server_args if targets is None else None,
        "seed": args.seed, "repeats": args.repeats, "options": options(args),
        "ray": {"num_cpus": args.ray_cpus, "num_shards": args.num_shards,
                "concurrency": args.concurrency or "replicas", "streams_per_actor": 1,
                "extract_num_cpus": args.extract_num_cpus,
                "sample_seconds": SAMPLE_SECONDS},
        "corpus": {"documents": len(files), "by_format": spread(args.documents),
                   "pages": sum(f.units for f in files if f.format == "pdf"),
                   "slides": sum(f.units for f in files if f.format == "pptx"),
                   "megabytes": sum(f.size for f in files) / 1e6},
        "machine": {**host, "load_average_at_end": os.getloadavg()},
        "replica_counts": counts,
    }


def _range(figure: dict[str, float], places: int = 1) -> str:
    return (f"{figure['median']:,.{places}f} ({figure['min']:,.{places}f}–"
            f"{figure['max']:,.{places}f})")


def _ms(figures: dict[str, Any]) -> str:
    value = figures.get("marginal_cpu_ms_per_1000_records")
    return "–" if value is None else f"{value:,.0f}"


def table(report: dict[str, Any]) -> str:
    corpus, ray_ = report["corpus"], report["ray"]
    lines = [
        f"A corpus on Ray, run {report['run']}: {corpus['documents']} mixed documents "
        f"({corpus['pages']} PDF pages, {corpus['slides']} slides, "
        f"{corpus['megabytes']:.1f} MB), options {json.dumps(report['options'])}; Ray with "
        f"{ray_['num_cpus']} CPUs, {ray_['num_shards']} shards, generating actors: "
        f"{ray_['concurrency']}, extract_num_cpus {ray_['extract_num_cpus']}. "
        f"{report['repeats']} repeats alternating, medians (min–max).", "",
        "| replicas | arm | records/s | documents/s | wall s | client CPU s | CPU ms per "
        "1,000 records |", "|---|---|---|---|---|---|---|"]
    for count in report["replica_counts"]:
        for arm, f in count["arms"].items():
            lines.append(
                f"| {count['replicas']} | {ARM_NAMES[arm]} | {_range(f['records_per_s'], 2)} "
                f"| {_range(f['documents_per_s'], 2)} | {_range(f['wall'])} | "
                f"{_range(f['cpu'])} | {_range(f['cpu_ms_per_1000_records'], 0)} |")
    lines += ["", "| replicas | (b)/(a) records/s | (b)/(a) documents/s | (b)/(a) CPU per "
              "record | marginal CPU ms per 1,000 records (a); (b) | Ray start-up s "
              "(untimed) | records per run (a); (b) |",
              "|---|---|---|---|---|---|---|"]
    for count in report["replica_counts"]:
        ratios, arms = count["ray_vs_cli"], count["arms"]
        lines.append(
            f"| {count['replicas']} | {ratios['records_per_s']:.2f}× | "
            f"{ratios['documents_per_s']:.2f}× | {ratios['cpu_ms_per_1000_records']:.2f}× | "
            f"{_ms(arms['cli'])}; {_ms(arms['ray'])} | {count['ray']['start_up_s']:.1f} | "
            f"{arms['cli']['records']}; {arms['ray']['records']} |")
    lines += ["", "Client-side CPU s by part (medians):", ""]
    for count in report["replica_counts"]:
        for arm, f in count["arms"].items():
            parts = ", ".join(f"{part} {seconds:.2f}" for part, seconds
                              in f["cpu_by_part"].items())
            ours = (f"; ours (actors) {sum(f['cpu_by_part'].get(k, 0.0) for k in OURS):.2f}, "
                    f"Ray's own (driver and the rest) "
                    f"{f['cpu']['median'] - sum(f['cpu_by_part'].get(k, 0.0) for k in OURS):.2f}"
                    if arm == "ray" else "")
            lines.append(f"- {count['replicas']} replica(s), {ARM_NAMES[arm]}: {parts}{ours}")
    idle = [statistics.median(run["ray_idle_cpu"] for run in count["runs"]["cli"])
            for count in report["replica_counts"]]
    lines += ["", "Ray, left running while (a) ran, used "
              + ", ".join(f"{seconds:.2f} s" for seconds in idle)
              + " of CPU per run of (a) (medians, per replica count; not in (a)'s figures)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthqa-bench-ray", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=None, metavar="HOST:PORT,...",
                        help="replicas already running, instead of starting them (start "
                        "them with --no-cache: the calls are seeded, and a repeat must not "
                        "come from the result cache); replica count N uses the first N")
    parser.add_argument("--replicas", default="1,2",
                        help="replica counts to measure, in order (default %(default)s)")
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--server-args", default=TINY_SERVER_ARGS,
                        help="the started replicas' flags (default: %(default)s)")
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261207, help="the corpus's seed")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed-options", type=int, default=7,
                        help="the generation options' seed (both arms)")
    parser.add_argument("--num-pairs", type=int, default=1)
    parser.add_argument("--max-generation-tokens", type=int, default=64)
    parser.add_argument("--max-chunk-tokens", type=int, default=256)
    parser.add_argument("--ray-cpus", type=int, default=2, help="ray.init(num_cpus=...)")
    parser.add_argument("--num-shards", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=0,
                        help="generating actors (default: one per replica, as many calls "
                        "as the CLI's streams)")
    parser.add_argument("--extract-num-cpus", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--label", default="", help="a name for this run in the results")
    args = parser.parse_args(argv)
    args.replicas = [int(count) for count in args.replicas.split(",")]
    targets = args.target.split(",") if args.target else None
    if targets is not None and max(args.replicas) > len(targets):
        parser.error(f"--replicas {max(args.replicas)} needs that many --target replicas")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synthqa-bench-ray-") as temporary:
        report = run(args, stamp, Path(temporary), targets)
    text = table(report)
    name = args.out / f"{stamp}-ray"
    name.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    name.with_suffix(".md").write_text(text)
    print(f"\n{text}\nwritten to {name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
