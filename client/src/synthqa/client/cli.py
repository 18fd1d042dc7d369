"""The `synthqa` command: generate pairs from files, show chunks, describe the server."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from tqdm import tqdm

from synthqa.contract.options import OPTIONS

from .documents import Document
from .errors import SynthQAError
from .events import pair_record
from .sync import SynthQAClient


class CliError(Exception):
    """A problem with the command's input, reported without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthqa", description=__doc__)
    parser.add_argument("--target", default="localhost:50051", help="server host:port")
    parser.add_argument("--timeout", type=float, default=None, help="call deadline in seconds")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate pairs from files into JSONL")
    generate.add_argument("files", nargs="+", type=Path)
    generate.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    generate.add_argument("--show", type=int, default=0, metavar="N",
                          help="print the first N pairs to the terminal")
    generate.add_argument("--no-progress", action="store_true",
                          help="no progress bar (the default when stderr is not a terminal)")
    chunk = commands.add_parser("chunk", help="show how the server chunks a file")
    chunk.add_argument("file", type=Path)
    chunk.add_argument("--json", action="store_true", help="print the full response as JSON")
    for sub in (generate, chunk):
        options = sub.add_argument_group("generation options (unset: the server's default)")
        for spec in OPTIONS:
            options.add_argument(spec.flag, type=spec.kind, default=None, help=spec.help)
    commands.add_parser("info", help="describe the server")
    wait = commands.add_parser("wait", help="wait until the server reports SERVING")
    wait.add_argument("--for", dest="wait_for", type=float, default=600.0, metavar="SECONDS")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with SynthQAClient(args.target, timeout=args.timeout) as client:
            if args.command == "wait":
                client.wait_ready(args.wait_for)
                return 0
            if args.command == "info":
                print(_to_json(client.server_info()))
                return 0
            options = {spec.name: getattr(args, spec.name) for spec in OPTIONS}
            if args.command == "chunk":
                return _chunk(client, args, options)
            return _generate(client, args, options)
    except SynthQAError as error:
        print(f"synthqa: {error}", file=sys.stderr)
        for violation in error.field_violations + error.quota_violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, CliError) as error:
        print(f"synthqa: {error}", file=sys.stderr)
        return 1


def _chunk(client: SynthQAClient, args: argparse.Namespace, options: dict[str, Any]) -> int:
    response = client.chunk(_read_text(args.file), **options)
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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CliError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def _documents(files: list[Path]) -> Iterator[Document]:
    for index, path in enumerate(files):
        # Two files may share a name; the index keeps document ids unique in the call.
        yield Document(f"{index}:{path}", _read_text(path))


class _Progress:
    def __init__(self, total_documents: int, enabled: bool) -> None:
        self.bar = tqdm(total=total_documents, unit="doc", disable=not enabled, file=sys.stderr)
        self.chunks_done = self.chunks_failed = self.pairs = 0
        self.started = time.monotonic()

    def update(self) -> None:
        rate = self.pairs / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(
            f"chunks {self.chunks_done} ({self.chunks_failed} failed), pairs {self.pairs}, "
            f"{rate:.1f} pairs/s", refresh=False)
        self.bar.refresh()


def _generate(client: SynthQAClient, args: argparse.Namespace, options: dict[str, Any]) -> int:
    # Files are streamed lazily from gRPC's sending thread, where an error would only cancel
    # the call: check them all first, so a bad one is named before any work starts.
    for path in args.files:
        _read_text(path)
    progress = _Progress(len(args.files), enabled=not args.no_progress and sys.stderr.isatty())
    shown = 0
    failures: list[str] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for event in client.generate(_documents(args.files), **options):
            kind = event.WhichOneof("event")
            if kind == "qa_pair":
                out.write(json.dumps(pair_record(event.qa_pair), ensure_ascii=False) + "\n")
                progress.pairs += 1
                if shown < args.show:
                    shown += 1
                    _print_pair(event.qa_pair, progress.bar)
            elif kind == "chunk_completed":
                progress.chunks_done += 1
            elif kind == "chunk_failed":
                progress.chunks_done += 1
                progress.chunks_failed += 1
                failed = event.chunk_failed
                failures.append(f"{failed.document_id} chunk {failed.chunk_index}: "
                                f"{failed.error.message}")
            elif kind == "document_completed":
                progress.bar.update(1)
            progress.update()
    progress.bar.close()
    print(f"wrote {progress.pairs} pairs from {len(args.files)} document(s), "
          f"{progress.chunks_done} chunk(s), to {args.out}", file=sys.stderr)
    for failure in failures:
        print(f"  failed: {failure}", file=sys.stderr)
    return 0


def _print_pair(pair: Any, bar: tqdm, stream: TextIO = sys.stdout) -> None:
    bar.write(f"[{pair.document_id} #{pair.chunk_index}.{pair.pair_index}] Q: {pair.question}",
              file=stream)
    bar.write(f"    A: {pair.answer}", file=stream)


def _to_json(message: Any) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


if __name__ == "__main__":
    sys.exit(main())
