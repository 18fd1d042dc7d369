"""`synthqa export`: a run's output lines (record_lines.py) as the files a trainer takes, split
by source document so that no document has records in two splits, curated across the whole
run if asked, with a dataset card. The run's lines: run_lines.py; formats: formats.py; files:
writers.py; card: card.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run_manifest import manifest_path
from .card import CardFacts, card
from .chat_template import ChatTemplate, special_tokens_of
from .corpus_filter import DEFAULT_THRESHOLD, CorpusFilter, read_eval_texts
from .errors import ExportError
from .formats import converter
from .run_lines import read_lines
from .writers import JsonlSplits, ParquetSplits, SplitWriter, StagedFolder

DEFAULT_SPLIT = {"train": 1.0}


def parse_split(text: str) -> dict[str, float]:
    """`train=0.9,validation=0.1` → shares that add up to 1."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        try:
            value = float(share)
        except ValueError:
            raise ExportError(f"--split: {part!r} is not NAME=SHARE") from None
        if not name.strip().isidentifier() or value < 0:
            raise ExportError(f"--split: {part!r} is not NAME=SHARE with a share of 0 or more")
        shares[name.strip()] = value
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ExportError(f"--split: the shares add up to {sum(shares.values()):g}, not 1")
    return shares


def split_of(document_id: str, shares: dict[str, float], seed: int) -> str:
    """The split a document belongs to: a seeded hash of its id, so that every record of a
    document goes to one split, the same one in every run with the same seed."""
    digest = hashlib.sha256(f"{seed}\0{document_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = 0.0
    for name, share in shares.items():
        total += share
        if point < total:
            return name
    return next(reversed(shares))


def read_manifest(run: Path) -> dict[str, Any] | None:
    path = manifest_path(run)
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path}: not a readable run manifest ({error})") from None
    if not isinstance(manifest, dict):
        raise ExportError(f"{path}: not a run manifest")
    return manifest


@dataclass
class ExportSettings:
    fmt: str = "jsonl"
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLIT))
    seed: int = 0
    dedup: bool = False
    dedup_threshold: float = DEFAULT_THRESHOLD
    exclude_near: Path | None = None
    chat_template: Path | None = None
    languages: Sequence[str] = ()
    overwrite: bool = False


@dataclass
class ExportResult:
    counts: dict[str, int]
    duplicates: int = 0
    near_eval: int = 0
    files: dict[str, list[str]] = field(default_factory=dict)


def export_run(run: Path, out: Path, settings: ExportSettings) -> ExportResult:
    """`run`'s lines exported into `out`, with the card; everything checked before any file is
    written, and the folder there whole or not at all."""
    manifest = read_manifest(run)
    template = (ChatTemplate.from_file(settings.chat_template, special_tokens_of(manifest))
                if settings.chat_template is not None else
                ChatTemplate.from_manifest(manifest) if settings.fmt == "chatml" else None)
    convert = converter(settings.fmt, template)
    eval_texts = read_eval_texts(settings.exclude_near) if settings.exclude_near else []
    corpus = (CorpusFilter(settings.dedup, settings.dedup_threshold, eval_texts)
              if settings.dedup or eval_texts else None)
    facts = CardFacts(fmt=settings.fmt, files={}, counts={}, shares=settings.shares,
                      seed=settings.seed, shapes=set(), languages=settings.languages,
                      manifest=manifest, run=run.name,
                      dedup_threshold=settings.dedup_threshold if settings.dedup else None,
                      eval_set=settings.exclude_near.name if settings.exclude_near else None)
    staged = StagedFolder(out, settings.overwrite)
    try:
        writer = _writer(settings.fmt, staged.path, list(settings.shares))
        try:
            counts = _write(read_lines(run), writer, convert, settings, corpus, facts)
        finally:
            files = writer.close()
        facts.counts = counts
        facts.files = {name: [path] for name, path in zip(settings.shares, files, strict=True)}
        if corpus is not None:
            facts.duplicates, facts.near_eval = corpus.duplicates, corpus.near_eval
            facts.eval_items = corpus.eval_items
        (staged.path / "README.md").write_text(card(facts), encoding="utf-8")
    except BaseException:
        staged.discard()
        raise
    staged.commit()
    return ExportResult(counts, facts.duplicates, facts.near_eval, facts.files)


def _writer(fmt: str, folder: Path, splits: list[str]) -> SplitWriter:
    return ParquetSplits(folder, splits) if fmt == "parquet" else JsonlSplits(folder, splits)


def _write(lines: Iterable[dict[str, Any]], writer: SplitWriter, convert: Any,
           settings: ExportSettings, corpus: CorpusFilter | None,
           facts: CardFacts) -> dict[str, int]:
    counts = dict.fromkeys(settings.shares, 0)
    for line in lines:
        if corpus is not None and not corpus.admit(line):
            continue
        split = split_of(line["document_id"], settings.shares, settings.seed)
        writer.write(split, convert(line))
        counts[split] += 1
        facts.shapes.add(line["shape"])
        facts.documents.add(line["document_id"])
    return counts
