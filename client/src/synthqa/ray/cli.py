"""`python -m synthqa.ray`: generate_dataset from the command line, as a Ray job's entrypoint.
It joins the cluster `ray.init()` finds (RAY_ADDRESS, which a Ray job sets, or a running local
cluster; otherwise it starts one), runs the corpus to the end and prints the shards' summary on
stderr. The connection, security and generation-option flags are the `synthqa` command's own.
Exit 0, 3 if some files had no text (skipped, named with their reasons), 1 on an error."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import ray

from synthqa.client.cli_args import (
    add_connection_arguments,
    add_generation_options,
    check_connection,
    credentials,
    generation_options,
)
from synthqa.client.cli_generate import (
    EXIT_CALL_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
)
from synthqa.client.errors import SynthQAError

from .pipeline import DEFAULT_SHARD_RETRIES, generate_dataset
from .records import DEFAULT_MAX_IN_FLIGHT
from .shard_files import SHARD_FORMATS

PROG = "python -m synthqa.ray"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="PATH_OR_URI",
                        help="files and folders (hidden ones left out, as synthqa generate "
                        "walks them) or URIs such as s3://bucket/corpus (with --root)")
    add_connection_arguments(parser, target_default=None)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder of the shard files, one per shard, on storage every Ray "
                        "node mounts (files are renamed into place: not an object store)")
    parser.add_argument("--num-shards", type=int, required=True, metavar="N",
                        help="shards the corpus is cut into: the unit of work, retry and resume")
    parser.add_argument("--root", default=None, metavar="R",
                        help="the folder document ids are relative to (default: the folder "
                        "given, or the files' common folder; needed with URIs)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="C",
                        help="generating actors, one client each (default %(default)s)")
    parser.add_argument("--streams", type=int, default=1, metavar="S",
                        help="Generate calls at once per actor (default %(default)s)")
    parser.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT, metavar="N",
                        help="documents sent and not completed per actor (default %(default)s)")
    parser.add_argument("--format", choices=SHARD_FORMATS, default="parquet",
                        help="shard files: the Parquet export's columns or the CLI's JSON "
                        "lines (default %(default)s)")
    parser.add_argument("--extract-concurrency", type=int, default=None, metavar="N",
                        help="at most N extracting actors (default: as many as Ray scales to)")
    parser.add_argument("--max-shard-retries", type=int, default=DEFAULT_SHARD_RETRIES,
                        metavar="N", help="Ray's retries of a shard whose documents still had "
                        "failed chunks after the client's --retries (default %(default)s)")
    add_generation_options(parser)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked; a problem ends with usage (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_connection(parser, args)
    for flag, least in (("num_shards", 1), ("concurrency", 1), ("streams", 1),
                        ("max_in_flight", 1), ("max_shard_retries", 0)):
        if getattr(args, flag) < least:
            parser.error(f"--{flag.replace('_', '-')} must be at least {least}")
    if args.extract_concurrency is not None and args.extract_concurrency < 1:
        parser.error("--extract-concurrency must be at least 1")
    if "://" in args.out:
        parser.error(f"--out {args.out}: shard files are written beside their final name and "
                     "renamed into place, which an object store cannot do; give a folder "
                     "every Ray node mounts (a shared volume)")
    if args.root is None and any("://" in path for path in args.inputs):
        parser.error("with URIs, give --root: the folder the document ids are relative to")
    for flag in ("ca_file", "cert_file", "key_file"):
        path = getattr(args, flag)
        if path is not None:
            if not path.is_file():
                parser.error(f"--{flag.replace('_', '-')} {path}: no such file")
            # Read by the actors, whose working directory is not the driver's.
            setattr(args, flag, path.absolute())
    return args


def dataset_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """generate_dataset's keyword arguments (all but the inputs) from parsed arguments. Reads
    the @FILE texts of generation options."""
    options = {name: value for name, value in generation_options(args).items()
               if value is not None}
    return {
        "target": args.target, "out": args.out, "options": options,
        "num_shards": args.num_shards, "credentials": credentials(args),
        "concurrency": args.concurrency, "format": args.format, "root": args.root,
        "streams": args.streams, "max_in_flight": args.max_in_flight,
        "timeout": args.timeout, "retries": args.retries,
        "extract_concurrency": args.extract_concurrency,
        "max_shard_retries": args.max_shard_retries,
    }


def summary_lines(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """The run in a few lines: shards written and already there, documents, records, and
    every file skipped with its reason."""
    existing = sum(bool(summary["skipped_existing"]) for summary in summaries)
    skipped = sorted((item["document_id"], item["reason"])
                     for summary in summaries for item in summary["skipped"] or ())
    lines = [
        f"{len(summaries)} shards: {len(summaries) - existing} written, {existing} already "
        f"there (skipped); {sum(s['documents'] for s in summaries)} documents, "
        f"{sum(s['records'] for s in summaries)} records",
    ]
    if skipped:
        lines.append(f"{len(skipped)} files skipped (no text):")
        lines += [f"  {document_id}: {reason}" for document_id, reason in skipped]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        arguments = dataset_arguments(args)
        ray.init()
        summaries = generate_dataset(args.inputs, **arguments)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SynthQAError, OSError, ValueError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_CALL_FAILED
    except Exception:  # a failed Ray job: its traceback is what the job's log needs
        traceback.print_exc()
        print(f"{PROG}: the run failed; shards already written stay, and running it again "
              "finishes the rest", file=sys.stderr)
        return EXIT_CALL_FAILED
    for line in summary_lines(summaries):
        print(f"{PROG}: {line}", file=sys.stderr)
    written = os.path.abspath(args.out)
    print(f"{PROG}: shard files in {written}", file=sys.stderr)
    return EXIT_SOME_FAILED if any(summary["skipped"] for summary in summaries) else EXIT_OK
