"""The `synthqa` command: generate pairs from files, show chunks, describe the server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from . import tracing
from .cli_args import (
    TOKEN_VARIABLE,
    add_connection_arguments,
    add_generation_options,
    check_connection,
    credentials,
    generation_options,
)
from .cli_export import add_export_arguments, export_problem, run_export
from .cli_extract import run_extract
from .cli_generate import (
    EXIT_CALL_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    run_generate,
)
from .documents_in import InputError, read_document
from .errors import SynthQAError
from .report import ReportError, summary_lines, write_report
from .retry import DEFAULT_RETRY_WAIT_SECONDS
from .sync import SynthQAClient
from .walk import collect_files

TRACED_SERVICE_NAME = "synthqa-cli"
__all__ = ["TOKEN_VARIABLE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthqa", description=__doc__)
    add_connection_arguments(parser)
    parser.add_argument("--retry-wait", type=float, default=DEFAULT_RETRY_WAIT_SECONDS,
                        metavar="SECONDS", help="how long a retry waits for the server to be "
                        "SERVING again (default %(default)s)")
    parser.add_argument("--trace", action="store_true",
                        help="trace the command with OpenTelemetry, configured by the standard "
                        "OTEL_* variables (exporter otlp by default); the server's spans join "
                        "the trace. Needs the otel extra")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate pairs from files into JSONL")
    # As typed: a file named twice is sent once, with a warning naming both spellings.
    generate.add_argument("files", nargs="+", metavar="PATH",
                          help="files and folders (walked recursively), one document per "
                          "file: text or Markdown, and with the ingest extra PDF, HTML, "
                          "Word, PowerPoint, any text encoding and .gz of these")
    generate.add_argument("--out", type=Path, required=True,
                          help="JSON Lines file to write (.jsonl or .ndjson)")
    generate.add_argument("--show", type=int, default=0, metavar="N",
                          help="print the first N pairs to the terminal")
    generate.add_argument("--summary-json", type=Path, default=None, metavar="FILE",
                          help="also write the end-of-run summary (counts, failures, documents "
                          "short of their target) to FILE as JSON")
    generate.add_argument("--no-progress", action="store_true",
                          help="no progress: by default a bar on a terminal, elsewhere a "
                          "plain line every 10 s")
    generate.add_argument("--resume", action="store_true",
                          help="finish the unfinished run into --out (same files and "
                          "options): send only the documents not done, keep their pairs")
    generate.add_argument("--streams", type=int, default=None, metavar="N",
                          help="calls at once, each taking the next document when it has "
                          "room; with replicas each call goes to another one (default: the "
                          "number of --target replicas)")
    generate.add_argument("--strict", action="store_true",
                          help="stop before any work if an input file is unreadable or empty "
                          "(default: skip it, report it, exit 3)")
    generate.add_argument("--export-dir", type=Path, default=None, metavar="DIR",
                          help="at the end of the run, export it into DIR as --export-format "
                          "(the export command's options, prefixed with export-)")
    add_export_arguments(generate, "export-")
    generate.add_argument("--report", nargs="?", const=True, default=None,
                          type=Path, metavar="FILE.html",
                          help="at the end of the run, write its report (as synthqa report "
                          "does) to FILE.html (default: --out with .html for its suffix)")
    extract = commands.add_parser(
        "extract", help="print or write the text generate would send, one JSON line per "
        "document with its source map (no server needed; needs the ingest extra)")
    extract.add_argument("files", nargs="+", metavar="PATH", help="files and folders")
    extract.add_argument("--out", type=Path, default=None,
                         help="JSON Lines file to write (default: standard output)")
    for sub in (generate, extract):
        sub.add_argument("--include", action="append", default=[], metavar="GLOB",
                         help="in folders, take only files matching GLOB (by name or by path "
                         "below the folder; repeatable); hidden files need one")
        sub.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                         help="leave out files matching GLOB (repeatable)")
    export = commands.add_parser(
        "export", help="turn a generate run's JSONL into a dataset a trainer takes, split by "
        "source document, with a dataset card (no server needed)")
    export.add_argument("run", type=Path, metavar="RUN.jsonl", help="what generate wrote, or "
                        "a folder of shard files (*.jsonl, *.parquet) from synthqa.ray")
    export.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the split files and README.md (new, empty, or an "
                        "earlier export with --overwrite)")
    add_export_arguments(export)
    report = commands.add_parser(
        "report", help="one self-contained HTML page of plots and tables on a generate run, "
        "and its gist on stderr (no server needed; needs the dataset extra)")
    report.add_argument("run", type=Path, metavar="RUN.jsonl",
                        help="what generate wrote; <RUN>.manifest.json beside it is read too")
    report.add_argument("--out", type=Path, default=None, metavar="FILE.html",
                        help="the page to write (default: RUN with .html for its suffix)")
    chunk = commands.add_parser("chunk", help="show how the server chunks a file")
    chunk.add_argument("file", type=Path)
    chunk.add_argument("--json", action="store_true", help="print the full response as JSON")
    for sub in (generate, chunk):
        add_generation_options(sub)
    commands.add_parser("info", help="describe the server")
    wait = commands.add_parser("wait", help="wait until the server reports SERVING")
    wait.add_argument("--for", dest="wait_for", type=float, default=600.0, metavar="SECONDS")
    return parser


# What `generate --out` may be called: it writes JSON Lines only.
OUT_SUFFIXES = (".jsonl", ".ndjson")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    if args.command == "extract":
        return run_extract(args.files, args.out, args.include, args.exclude)
    if args.command == "export":
        return run_export(args.run, args.out, args)
    if args.command == "report":
        return _report(args.run, args.out or args.run.with_suffix(".html"))
    if not args.trace:
        return _run(args)
    try:
        provider = tracing.provider_from_environment(TRACED_SERVICE_NAME)
    except (ImportError, ValueError) as error:
        parser.error(str(error))
    try:
        with tracing.command_span(f"synthqa {args.command}") as trace_id:
            print(f"synthqa: trace {trace_id}", file=sys.stderr)
            return _run(args)
    finally:
        if provider is not None:
            provider.shutdown()  # exports what is buffered before the process ends


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot check alone; a problem ends the command with usage (exit 2)."""
    check_connection(parser, args)
    if args.command == "generate":
        if args.streams is None:
            args.streams = len(args.target) if isinstance(args.target, list) else 1
        if args.streams < 1:
            parser.error("--streams must be at least 1")
        if args.out.suffix.lower() not in OUT_SUFFIXES:
            parser.error(f"--out {args.out}: synthqa generate writes JSON Lines, one record a "
                         f"line, and would write them under a {args.out.suffix or 'bare'} name; "
                         "give a .jsonl file; synthqa export turns it into alpaca, sharegpt or "
                         "openai files")
        if (args.export_format is None) != (args.export_dir is None):
            parser.error("--export-format and --export-dir go together")
        if args.export_dir is not None and (problem := export_problem(args, args.export_dir)):
            parser.error(problem)


def _after_run(args: argparse.Namespace, code: int) -> int:
    """The export and the report a finished run asked for; a run cut short makes neither."""
    if code not in (EXIT_OK, EXIT_SOME_FAILED):
        return code
    if args.export_dir is not None and run_export(args.out, args.export_dir, args) != EXIT_OK:
        code = EXIT_CALL_FAILED
    if args.report is not None:
        # `--report` alone is True (argparse converts a string const with `type`).
        page = args.out.with_suffix(".html") if args.report is True else args.report
        if _report(args.out, page) != EXIT_OK:
            code = EXIT_CALL_FAILED
    return code


def _report(run: Path, out: Path) -> int:
    try:
        summary = write_report(run, out)
    except ReportError as error:
        print(f"synthqa: {error}", file=sys.stderr)
        return EXIT_CALL_FAILED
    for line in summary_lines(summary, out):
        print(line, file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        with SynthQAClient(args.target, timeout=args.timeout, retries=args.retries,
                           retry_wait=args.retry_wait, trace=args.trace,
                           credentials=credentials(args)) as client:
            if args.command == "wait":
                client.wait_ready(args.wait_for)
                return 0
            if args.command == "info":
                print(_to_json(client.server_info()))
                return 0
            options = generation_options(args)
            if args.command == "chunk":
                return _chunk(client, args, options)
            files = collect_files(args.files, args.include, args.exclude)
            code = run_generate(
                client, files, args.out, options, show=args.show, strict=args.strict,
                progress_enabled=not args.no_progress,
                resume=args.resume, streams=args.streams, summary_json=args.summary_json)
            return _after_run(args, code)
    except SynthQAError as error:
        print(f"synthqa: {error}", file=sys.stderr)
        for violation in error.field_violations + error.quota_violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        if error.retry_after is not None:
            print(f"  the server asks to retry after {error.retry_after:g} s", file=sys.stderr)
        return EXIT_CALL_FAILED
    except (OSError, TimeoutError, InputError, ValueError) as error:
        print(f"synthqa: {error}", file=sys.stderr)
        return EXIT_CALL_FAILED
    except KeyboardInterrupt:
        print("synthqa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _chunk(client: SynthQAClient, args: argparse.Namespace, options: dict[str, Any]) -> int:
    response = client.chunk(read_document(args.file), **options)
    if args.json:
        print(_to_json(response))
        return 0
    print(f"{len(response.chunks)} chunk(s), {response.token_count} tokens, "
          f"budget {response.chunk_token_budget} tokens per chunk")
    for chunk in response.chunks:
        preview = chunk.text[:60].replace("\n", " ")
        print(f"  #{chunk.index}: {chunk.token_count} tokens, chars "
              f"{chunk.char_start}-{chunk.char_end}: {preview!r}...")
    return 0


def _to_json(message: Any) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


if __name__ == "__main__":
    sys.exit(main())
