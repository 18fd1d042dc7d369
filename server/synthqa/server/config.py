"""Command-line flags: every vLLM engine flag, plus synthqa's own."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.utils.argparse_utils import FlexibleArgumentParser

from .options import GenerationOptions
from .service import ServiceLimits

INT32_MAX = 2**31 - 1
_DEFAULTS = GenerationOptions()
_LIMITS = ServiceLimits()


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    shutdown_grace: float
    defaults: GenerationOptions
    limits: ServiceLimits
    log_level: str


def build_parser() -> argparse.ArgumentParser:
    parser = FlexibleArgumentParser(
        prog="synthqa-server",
        description="Serve question-answer generation over gRPC on an embedded vLLM engine. "
        "Takes every vLLM engine flag (--model, --max-model-len, --dtype, ...) and these.",
    )
    own = parser.add_argument_group("synthqa")
    own.add_argument("--host", default="0.0.0.0", help="address to listen on (default %(default)s)")
    own.add_argument("--port", type=int, default=50051, help="port (default %(default)s)")
    own.add_argument("--shutdown-grace", type=float, default=30.0,
                     help="seconds in-flight calls get to finish on SIGTERM (default %(default)s)")
    own.add_argument("--server-log-level", default="INFO",
                     help="log level of synthqa's own logs (default %(default)s)")
    limits = parser.add_argument_group("synthqa limits")
    limits.add_argument("--max-message-bytes", type=int, default=_LIMITS.max_message_bytes)
    limits.add_argument("--max-document-chars", type=int, default=_LIMITS.max_document_chars)
    limits.add_argument("--max-num-pairs", type=int, default=_LIMITS.max_num_pairs)
    limits.add_argument("--max-in-flight-chunks-per-call", type=int,
                        default=_LIMITS.max_in_flight_chunks_per_call,
                        help="chunks of one call in the engine at once")
    limits.add_argument("--max-in-flight-chunks", type=int, default=_LIMITS.max_in_flight_chunks,
                        help="chunks of all calls in the engine at once")
    limits.add_argument("--max-chunks-per-document", type=int,
                        default=_LIMITS.max_chunks_per_document)
    defaults = parser.add_argument_group("synthqa default generation options")
    defaults.add_argument("--default-num-pairs", type=int, default=_DEFAULTS.num_pairs)
    defaults.add_argument("--default-max-generation-tokens", type=int,
                          default=_DEFAULTS.max_generation_tokens)
    defaults.add_argument("--default-temperature", type=float, default=_DEFAULTS.temperature)
    defaults.add_argument("--default-top-p", type=float, default=_DEFAULTS.top_p)
    defaults.add_argument("--default-chunk-overlap-tokens", type=int,
                          default=_DEFAULTS.chunk_overlap_tokens)
    defaults.add_argument("--default-max-chunk-tokens", type=int,
                          default=_DEFAULTS.max_chunk_tokens)
    defaults.add_argument("--default-seed", type=int, default=_DEFAULTS.seed)
    AsyncEngineArgs.add_cli_args(parser)
    return parser


def parse(argv: list[str] | None = None) -> tuple[AsyncEngineArgs, ServerSettings]:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("max_message_bytes", "max_document_chars", "max_num_pairs",
                 "max_in_flight_chunks_per_call", "max_in_flight_chunks",
                 "max_chunks_per_document"):
        # The limits travel in int32 fields of GetServerInfo.
        if not 1 <= getattr(args, name) <= INT32_MAX:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and {INT32_MAX}")
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        shutdown_grace=args.shutdown_grace,
        log_level=args.server_log_level,
        defaults=GenerationOptions(
            num_pairs=args.default_num_pairs,
            max_generation_tokens=args.default_max_generation_tokens,
            temperature=args.default_temperature,
            top_p=args.default_top_p,
            chunk_overlap_tokens=args.default_chunk_overlap_tokens,
            max_chunk_tokens=args.default_max_chunk_tokens,
            seed=args.default_seed,
        ),
        limits=ServiceLimits(
            max_message_bytes=args.max_message_bytes,
            max_document_chars=args.max_document_chars,
            max_num_pairs=args.max_num_pairs,
            max_in_flight_chunks_per_call=args.max_in_flight_chunks_per_call,
            max_in_flight_chunks=args.max_in_flight_chunks,
            max_chunks_per_document=args.max_chunks_per_document,
        ),
    )
    return AsyncEngineArgs.from_cli_args(args), settings
