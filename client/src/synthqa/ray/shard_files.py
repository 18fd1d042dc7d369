"""A shard's output file, there whole or not at all: the lines go to `.<name>.partial` beside
it, are synced to disk, and the file is renamed into place. A task that dies half-way leaves
only the partial file, which its retry overwrites, so a retry never duplicates records and an
existing shard file is always complete. Parquet holds the Parquet export's rows
(line_rows.py); JSONL the CLI's lines."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synthqa.client.export.writers import PARQUET_ROWS_PER_GROUP

from .batches import LINE_SCHEMA, lines_table

SHARD_FORMATS = ("parquet", "jsonl")


def shard_path(out: Path, key: str, fmt: str) -> Path:
    if fmt not in SHARD_FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(SHARD_FORMATS)}")
    return out / f"{key}.{fmt}"


def write_shard(path: Path, lines: Iterable[dict[str, Any]]) -> int:
    """Writes the lines as `path` (its suffix names the format); the number written. If
    `lines` raises, nothing is left behind."""
    partial = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.suffix == ".parquet":
            written = _write_parquet(partial, lines)
        else:
            written = _write_jsonl(partial, lines)
        _sync(partial)
        # Only a synced file is renamed: after a crash, a shard file that exists is whole.
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


def records_in(path: Path) -> int:
    """The records of a finished shard file."""
    if path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open(encoding="utf-8") as lines:
        return sum(1 for text in lines if text.strip())


def _write_jsonl(partial: Path, lines: Iterable[dict[str, Any]]) -> int:
    written = 0
    with partial.open("w", encoding="utf-8") as sink:
        for line in lines:
            sink.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    return written


def _write_parquet(partial: Path, lines: Iterable[dict[str, Any]]) -> int:
    written = 0
    # A shard without records still gets its file (the schema, no rows): it is done.
    with pq.ParquetWriter(partial, LINE_SCHEMA) as writer:
        for group in _groups(lines, PARQUET_ROWS_PER_GROUP):
            writer.write_table(lines_table(group))
            written += len(group)
    return written


def _groups(lines: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(lines)
    while group := list(islice(iterator, size)):
        yield group


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
