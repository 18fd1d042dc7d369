"""Command-line flags: every vLLM engine flag, plus synthqa's own. The `--default-*` flags come
from the option declarations and the limit flags from `ServiceLimits`, so neither list is
written out here."""

from __future__ import annotations

import argparse
import dataclasses
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.utils.argparse_utils import FlexibleArgumentParser

from synthqa.contract.options import INT32_MAX, OPTIONS, GenerationOptions

from .engine.supervisor import RestartPolicy
from .engine.types import Adapter
from .grpc_api.security import SecuritySettings, TlsFiles
from .observability import ObservabilitySettings
from .observability.logs import LOG_FORMATS
from .observability.tracing import TracingConfigError, TracingSettings, tracing_settings
from .pipeline.limits import ServiceLimits

INT64_MAX = 2**63 - 1

LIMIT_HELP = {
    "max_message_bytes": "gRPC send and receive cap per message (larger documents go in parts)",
    "max_document_chars": "largest document after its parts are joined",
    "max_num_pairs": "largest num_pairs a call may ask for",
    "max_in_flight_chunks_per_call": "chunks of one call in the engine at once",
    "max_in_flight_chunks": "chunks of all calls in the engine at once",
    "max_chunks_per_document": "most chunks one document may make",
    "max_held_document_bytes": "bytes of memory documents of all calls together may hold at "
                               "once (unfinished, being tokenized, or waiting for the engine; "
                               "about 18 MiB per million characters of English, 250 MiB of "
                               "CJK); past it a document gets RESOURCE_EXHAUSTED with "
                               "RetryInfo",
    "max_documents_per_call": "documents one call may send; past it the call takes no more, "
                              "finishes those it has and ends RESOURCE_EXHAUSTED",
    "max_calls_per_client": "calls one client address may have open at once (health and "
                            "GetServerInfo not counted)",
    "max_unread_seconds": "seconds a client may leave its stream unread before the call is "
                          "cancelled and its engine work aborted",
    "max_call_seconds": "longest a call may last",
}


@dataclass(frozen=True)
class Keepalive:
    """HTTP/2 keepalive: the server pings idle connections so a vanished client's calls are
    cancelled (and their engine requests aborted) instead of running to the end."""

    time_seconds: float = 60.0
    timeout_seconds: float = 20.0
    # How often a client may ping; faster pings are tolerated, not punished with GOAWAY
    # (max_ping_strikes 0), since a long stream can go quiet while the engine works.
    min_client_ping_interval_seconds: float = 10.0

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", int(self.time_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.timeout_seconds * 1000)),
            ("grpc.http2.min_ping_interval_without_data_ms",
             int(self.min_client_ping_interval_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_ping_strikes", 0),
        ]


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    shutdown_grace: float
    defaults: GenerationOptions
    limits: ServiceLimits
    log_level: str
    observability: ObservabilitySettings
    security: SecuritySettings = SecuritySettings()
    log_format: str = "text"
    keepalive: Keepalive = Keepalive()
    # A health-only plaintext listener; port 0 for none.
    health_host: str = ""
    health_port: int = 0
    restarts: RestartPolicy = RestartPolicy()
    # The result cache's SQLite file, or None with --no-cache or --cache-url; its size bound
    # in bytes. cache_url: a Redis that replicas share instead.
    cache_path: Path | None = None
    cache_max_bytes: int = 1024 * 1024 * 1024
    cache_url: str | None = None
    # LoRA adapters a call may name (--lora-modules).
    adapters: tuple[Adapter, ...] = ()


CACHE_URL_VARIABLE = "SYNTHQA_CACHE_URL"


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synthqa" / "results.sqlite"


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = FlexibleArgumentParser(
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
    own.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                     help="synthqa's log lines as text or one JSON object each, with the "
                     "trace_id and span_id of the call they belong to (default %(default)s)")
    own.add_argument("--metrics-port", type=int, default=0,
                     help="serve Prometheus metrics (synthqa's and the engine's vllm: ones) "
                     "on this port at /metrics; 0 for none (default %(default)s)")
    own.add_argument("--metrics-host", default=None,
                     help="address for the metrics endpoint (default: --host)")
    own.add_argument("--health-port", type=int, default=0,
                     help="also serve grpc.health.v1 alone, in plaintext and without tokens, on "
                     "this port, for probes that cannot do TLS (kubelet's); 0 for none "
                     "(default %(default)s)")
    own.add_argument("--health-host", default=None,
                     help="address for the health-only port (default: --host)")
    security = parser.add_argument_group("synthqa security (files are read again on SIGHUP)")
    security.add_argument("--tls-cert-file", type=Path, default=None,
                          help="serve TLS with this PEM certificate chain (with --tls-key-file)")
    security.add_argument("--tls-key-file", type=Path, default=None,
                          help="the PEM private key of --tls-cert-file")
    security.add_argument("--tls-client-ca-file", type=Path, default=None,
                          help="mutual TLS: require client certificates signed by this PEM CA")
    security.add_argument("--auth-token-file", type=Path, default=None,
                          help="require 'authorization: Bearer <token>' on every call but "
                          "health checks; one token per line")
    keepalive = Keepalive()
    own.add_argument("--keepalive-time", type=float, default=keepalive.time_seconds,
                     help="seconds between the server's pings on a quiet connection "
                     "(default %(default)s)")
    own.add_argument("--keepalive-timeout", type=float, default=keepalive.timeout_seconds,
                     help="seconds to wait for a ping's answer before closing the connection "
                     "(default %(default)s)")
    own.add_argument("--keepalive-min-client-ping-interval", type=float,
                     default=keepalive.min_client_ping_interval_seconds,
                     help="shortest interval between client pings the server expects "
                     "(default %(default)s)")
    restarts = RestartPolicy()
    own.add_argument("--engine-max-restarts", type=int, default=restarts.max_restarts,
                     help="times a dead engine is replaced within --engine-restart-window; one "
                     "more death and the server exits 1 (0: exit on the first death; default "
                     "%(default)s)")
    own.add_argument("--engine-restart-window", type=float, default=restarts.window_seconds,
                     help="seconds over which engine restarts are counted (default %(default)s)")
    own.add_argument("--engine-restart-backoff", type=float,
                     default=restarts.first_backoff_seconds,
                     help="seconds before the second restart within the window, doubling for "
                     f"each further one up to {restarts.max_backoff_seconds:g} (the first is "
                     "immediate; default %(default)s)")
    own.add_argument("--lora-modules", nargs="+", default=[], metavar="NAME=PATH",
                     help="LoRA adapters a call may name in its options (as vLLM's flag); "
                     "turns on --enable-lora")
    cache = parser.add_argument_group("synthqa result cache (seeded calls only)")
    cache.add_argument("--cache-path", type=Path, default=None,
                       help="the SQLite file of cached chunk outputs (default "
                       "$XDG_CACHE_HOME/synthqa/results.sqlite, or ~/.cache/...)")
    cache.add_argument("--cache-url", default=None, metavar="redis://HOST:PORT/DB",
                       help="a Redis that several replicas share instead of the SQLite file "
                       "(redis://, rediss:// or unix://); bound it with Redis's maxmemory and "
                       "maxmemory-policy allkeys-lru; default $SYNTHQA_CACHE_URL, if set")
    cache.add_argument("--no-cache", action="store_true",
                       help="no result cache: every chunk goes to the engine")
    cache.add_argument("--cache-max-mb", type=int, default=1024,
                       help="size bound of the cache; the least recently used entries go "
                       "first (default %(default)s)")
    limits = parser.add_argument_group("synthqa limits")
    for field in dataclasses.fields(ServiceLimits):
        limits.add_argument("--" + field.name.replace("_", "-"), type=int, default=field.default,
                            help=f"{LIMIT_HELP[field.name]} (default %(default)s)")
    defaults = parser.add_argument_group("synthqa default generation options")
    for spec in OPTIONS:
        spec.add_flag(defaults, f"--default{spec.flag[1:]}", spec.default,
                      f"default {spec.help} (default %(default)s)")
    AsyncEngineArgs.add_cli_args(parser)
    return parser


def parse(argv: list[str] | None = None) -> tuple[AsyncEngineArgs, ServerSettings]:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Each check reports through parser.error, which exits with the usage line.
    _check_limits(parser, args)
    _check_timings(parser, args)
    _check_listeners(parser, args)
    adapters = _adapters(parser, args)
    _resolve_cache(parser, args)
    try:
        # The standard OTEL_* variables, plus vLLM's own --otlp-traces-endpoint flag.
        tracing = tracing_settings(os.environ, args.otlp_traces_endpoint)
    except TracingConfigError as error:
        parser.error(str(error))
    # The engine's spans follow the same configuration as synthqa's.
    args.otlp_traces_endpoint = tracing.engine_endpoint
    return AsyncEngineArgs.from_cli_args(args), _settings(args, tracing, adapters)


def _check_limits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for field in dataclasses.fields(ServiceLimits):
        # The limits travel in int32 fields of GetServerInfo (the byte budget in an int64).
        most = INT64_MAX if field.name == "max_held_document_bytes" else INT32_MAX
        if not 1 <= getattr(args, field.name) <= most:
            parser.error(f"--{field.name.replace('_', '-')} must be between 1 and {most}")
    if args.max_held_document_bytes < 4 * args.max_document_chars:
        parser.error("--max-held-document-bytes must be at least 4 bytes per character of "
                     "--max-document-chars, or the largest documents could never be taken")


def _check_timings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("keepalive_time", "keepalive_timeout", "keepalive_min_client_ping_interval",
                 "engine_restart_window"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("engine_max_restarts", "engine_restart_backoff"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")


def _check_listeners(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """TLS files, and the ports of the health and metrics listeners."""
    if (args.tls_cert_file is None) != (args.tls_key_file is None):
        parser.error("--tls-cert-file and --tls-key-file go together")
    if args.tls_client_ca_file is not None and args.tls_cert_file is None:
        parser.error("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
    for name in ("metrics_port", "health_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} must be between 0 (off) and 65535")
    if args.health_port and args.health_port == args.port:
        parser.error("--health-port must differ from --port")


def _adapters(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Adapter]:
    """--lora-modules NAME=PATH, checked; the engine's LoRA flags set to serve them."""
    adapters: list[Adapter] = []
    for number, module in enumerate(args.lora_modules, 1):
        name, found, path = module.partition("=")
        if not found or not name or not path:
            parser.error(f"--lora-modules takes NAME=PATH, got {module!r}")
        if not Path(path, "adapter_config.json").is_file():
            parser.error(f"--lora-modules {name}: {path} has no adapter_config.json")
        if any(adapter.name == name for adapter in adapters):
            parser.error(f"--lora-modules names {name!r} twice")
        adapters.append(Adapter(name, number, str(Path(path).resolve())))
    if adapters:
        args.enable_lora = True
        args.max_loras = max(args.max_loras or 1, len(adapters))
    return adapters


def _resolve_cache(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.cache_max_mb < 1:
        parser.error("--cache-max-mb must be at least 1")
    if args.cache_url is None and not args.no_cache and args.cache_path is None:
        # From the environment, a password in the URL stays out of the process list.
        args.cache_url = os.environ.get(CACHE_URL_VARIABLE) or None
    if args.cache_url is not None:
        if args.no_cache or args.cache_path is not None:
            parser.error("--cache-url is a cache of its own: not with --cache-path or --no-cache")
        if urllib.parse.urlsplit(args.cache_url).scheme not in ("redis", "rediss", "unix"):
            parser.error("--cache-url takes redis://HOST:PORT/DB, rediss://... or unix://PATH")


def _settings(args: argparse.Namespace, tracing: TracingSettings,
              adapters: list[Adapter]) -> ServerSettings:
    default_options: dict[str, Any] = {
        spec.name: spec.from_flag(getattr(args, f"default_{spec.name}")) for spec in OPTIONS}
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        shutdown_grace=args.shutdown_grace,
        health_host=args.health_host or args.host,
        health_port=args.health_port,
        log_level=args.server_log_level,
        log_format=args.log_format,
        security=SecuritySettings(
            tls=TlsFiles(args.tls_cert_file, args.tls_key_file, args.tls_client_ca_file)
            if args.tls_cert_file else None,
            token_file=args.auth_token_file),
        observability=ObservabilitySettings(
            tracing=tracing, metrics_host=args.metrics_host or args.host,
            metrics_port=args.metrics_port),
        defaults=GenerationOptions(**default_options),
        limits=ServiceLimits(
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(ServiceLimits)}),
        keepalive=Keepalive(args.keepalive_time, args.keepalive_timeout,
                            args.keepalive_min_client_ping_interval),
        cache_path=None if args.no_cache or args.cache_url
        else (args.cache_path or default_cache_path()),
        cache_url=args.cache_url,
        cache_max_bytes=args.cache_max_mb * 1024 * 1024,
        adapters=tuple(adapters),
        restarts=RestartPolicy(
            max_restarts=args.engine_max_restarts,
            window_seconds=args.engine_restart_window,
            first_backoff_seconds=args.engine_restart_backoff,
        ),
    )
    return settings
