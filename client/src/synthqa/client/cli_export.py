"""The CLI's `export` command, and the same export at the end of `generate` (its --export-*
flags): one set of arguments, named with a prefix in generate, where --seed and --format
would be taken."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .export import FORMATS, ExportError, ExportSettings, export_run, parse_split
from .export.corpus_filter import DEFAULT_THRESHOLD
from .export.writers import check_target

EXIT_OK = 0
EXIT_FAILED = 1


def add_export_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """`prefix` is "" for `export` and "export-" for `generate`."""
    group = parser.add_argument_group(f"export{' at the end of the run' if prefix else ''}")

    def flag(name: str) -> str:
        return f"--{prefix}{name}"

    group.add_argument(flag("format"), dest="export_format", default=None if prefix else "jsonl",
                       choices=FORMATS, help="jsonl (lines with lineage), alpaca, sharegpt, "
                       "openai, chatml (rendered with a chat template) or parquet (the Hugging "
                       "Face layout)" + ("" if prefix else " (default %(default)s)"))
    group.add_argument(flag("split"), dest="export_split", default="train=1",
                       metavar="NAME=SHARE,...", help="shares of documents per split, e.g. "
                       "train=0.9,validation=0.1; a document's records all go to one split "
                       "(default %(default)s)")
    group.add_argument(flag("seed"), dest="export_seed", type=int, default=0,
                       help="which documents go to which split (default %(default)s)")
    group.add_argument(flag("dedup"), dest="export_dedup", action="store_true",
                       help="drop records that repeat one kept earlier anywhere in the run")
    group.add_argument(flag("dedup-threshold"), dest="export_dedup_threshold", type=float,
                       default=DEFAULT_THRESHOLD, metavar="SIMILARITY",
                       help="Jaccard similarity of character 4-grams from which two records "
                       "(or a record and an evaluation item) are near duplicates, as the "
                       "server's dedup_threshold (default %(default)s)")
    group.add_argument(flag("exclude-near"), dest="export_exclude_near", type=Path,
                       default=None, metavar="EVAL.jsonl",
                       help="drop records whose question is a near duplicate of an item of "
                       "this evaluation set (question, instruction, prompt, query or text "
                       "keys, or chat messages)")
    group.add_argument(flag("chat-template"), dest="export_chat_template", type=Path,
                       default=None, metavar="FILE", help="Jinja chat template for chatml "
                       "(default: the model's, from the run's manifest)")
    group.add_argument(flag("language"), dest="export_languages", action="append", default=[],
                       metavar="CODE", help="the records' language for the dataset card "
                       "(ISO 639-1, e.g. en; repeatable)")
    group.add_argument(flag("overwrite"), dest="export_overwrite", action="store_true",
                       help="replace an earlier export in the folder")


def settings_from(args: argparse.Namespace) -> ExportSettings:
    return ExportSettings(
        fmt=args.export_format, shares=parse_split(args.export_split), seed=args.export_seed,
        dedup=args.export_dedup, dedup_threshold=args.export_dedup_threshold,
        exclude_near=args.export_exclude_near, chat_template=args.export_chat_template,
        languages=tuple(args.export_languages), overwrite=args.export_overwrite)


def export_problem(args: argparse.Namespace, out: Path) -> str | None:
    """What would refuse the export, found before a generate run does any work."""
    try:
        settings_from(args)
        check_target(out, args.export_overwrite)
    except ExportError as error:
        return str(error)
    return None


def run_export(run: Path, out: Path, args: argparse.Namespace) -> int:
    try:
        result = export_run(run, out, settings_from(args))
    except (ExportError, OSError) as error:
        print(f"synthqa: export: {error}", file=sys.stderr)
        return EXIT_FAILED
    written = ", ".join(f"{name} {count}" for name, count in result.counts.items())
    dropped = []
    if args.export_dedup:
        dropped.append(f"{result.duplicates} duplicates across the run")
    if args.export_exclude_near is not None:
        dropped.append(f"{result.near_eval} near the evaluation set")
    print(f"exported records to {out} as {args.export_format}: {written}"
          + (f" (dropped {', '.join(dropped)})" if dropped else ""), file=sys.stderr)
    return EXIT_OK
