"""The real synthqa server with the model taken out (`--recording`), or with every engine output
recorded (`--record`): a benchmark and test tool, in the bench on purpose. `synthqa-server`
has no such flag; this module builds the same server through `ServerLifecycle`'s
`start_engine` argument.

    PYTHONPATH=bench python -m synthqa_bench.replay_server --recording bench/replay/qa.jsonl.gz \\
        --model .cache/tiny-model --port 50061 --no-cache
    PYTHONPATH=bench python -m synthqa_bench.replay_server --record /tmp/raw.jsonl \\
        --model .cache/tiny-model --port 50061 --no-cache --max-model-len 2048 --enforce-eager

Every flag but these goes to the server as `synthqa-server`'s. With `--recording`, no engine
starts: the tokenizer is the model's (`--model`, or `--tokenizer`), the served name is the
server's (`--served-model-name`, else `--model`), and max_model_len is the recording's (prompts
and chunks depend on it; a different `--max-model-len` is refused).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from vllm.engine.arg_utils import AsyncEngineArgs

from synthqa.server.__main__ import exit_now, serve
from synthqa.server.config import parse
from synthqa.server.engine.replay import Recording, RecordingEngine, ReplayEngine
from synthqa.server.engine.supervisor import ManagedEngine
from synthqa.server.heap import map_large_blocks
from synthqa.server.lifecycle import ServerLifecycle
from synthqa.server.observability.logs import configure_logging

log = logging.getLogger("synthqa.server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synthqa_bench.replay_server", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)  # a server flag is never taken for one of these
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--recording", type=Path, nargs="+", action="extend", metavar="FILE",
                      help="serve these recordings (JSON Lines, .gz allowed) instead of a model")
    mode.add_argument("--record", type=Path, metavar="FILE",
                      help="run the real engine and append every finished request's output "
                      "to FILE (plain JSON Lines)")
    parser.add_argument("--replay-without-yielding", action="store_true",
                        help="with --recording: never yield to the event loop between a "
                        "request's deltas (each request then runs to its end in one go)")
    return parser


def served_name(engine_args: AsyncEngineArgs) -> str:
    """The model's name as VllmEngine reports it."""
    name = engine_args.served_model_name or engine_args.model
    return str(name[0] if isinstance(name, list) else name)


def replaying(paths: list[Path], engine_args: AsyncEngineArgs,
              yield_between_deltas: bool) -> Callable[[], ManagedEngine]:
    """Loads the recordings and the tokenizer now, so a bad file stops the server before it
    listens; each (re)start gets a fresh engine on them."""
    from transformers import AutoTokenizer

    recording = Recording.load(paths)
    recorded_len = int(recording.header["max_model_len"])
    if engine_args.max_model_len and int(engine_args.max_model_len) != recorded_len:
        raise SystemExit(f"--max-model-len {engine_args.max_model_len}: the recording was made "
                         f"with {recorded_len}, and chunks and prompts depend on it")
    tokenizer = AutoTokenizer.from_pretrained(
        engine_args.tokenizer or engine_args.model, revision=engine_args.tokenizer_revision,
        trust_remote_code=engine_args.trust_remote_code)
    name = served_name(engine_args)
    log.info("replaying %d outputs of %d schemas from %s (recorded on %s)",
             recording.output_count, len(recording.by_kind),
             ", ".join(str(path) for path in paths), recording.header.get("model"))

    def start() -> ManagedEngine:
        return ReplayEngine(recording, tokenizer, model_name=name, max_model_len=recorded_len,
                            yield_between_deltas=yield_between_deltas)

    return start


def recording_to(path: Path, engine_args: AsyncEngineArgs) -> Callable[[], ManagedEngine]:
    from synthqa.server.engine.vllm_engine import VllmEngine

    def start() -> ManagedEngine:
        return RecordingEngine(VllmEngine.start(engine_args), path)

    return start


def main(argv: list[str] | None = None) -> int:
    own, rest = build_parser().parse_known_args(argv)
    engine_args, settings = parse(rest)
    configure_logging(settings.log_level, settings.log_format)
    map_large_blocks()
    if own.recording:
        start = replaying(own.recording, engine_args, not own.replay_without_yielding)
    else:
        start = recording_to(own.record, engine_args)
    return serve(ServerLifecycle(engine_args, settings, start_engine=start))


# With --record, vLLM's engine core starts with `spawn`, which re-imports this module: the
# guard keeps the child from starting a server of its own.
if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
