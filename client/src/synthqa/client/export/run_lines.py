"""A run's lines from what wrote them: `generate`'s one JSONL file, a Parquet file of lines
(line_rows.py), or a folder of shard files as synthqa.ray writes them (`*.jsonl` and
`*.parquet`, read in name order). Anything else is refused, naming the file and the line or
row, before a line of it is used."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..record_lines import LINE_SCHEMA_VERSION
from .errors import ExportError
from .line_rows import row_line

SHARD_SUFFIXES = (".jsonl", ".parquet")


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """A run's lines; refused when written in another line schema."""
    if path.is_dir():
        for file in shard_files(path):
            yield from _file_lines(file)
    else:
        yield from _file_lines(path)


def shard_files(folder: Path) -> list[Path]:
    """The folder's shard files in name order. Hidden files are left out: a shard being
    written is `.<key>.<ext>.partial`, and only its rename makes it part of the run."""
    files = sorted(entry for entry in folder.iterdir()
                   if entry.suffix in SHARD_SUFFIXES and not entry.name.startswith(".")
                   and entry.is_file())
    if not files:
        raise ExportError(f"{folder} holds no shard files ({', '.join(SHARD_SUFFIXES)})")
    return files


def _file_lines(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".parquet":
        return _parquet_lines(path)
    return _jsonl_lines(path)


def _jsonl_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as source:
        for number, text in enumerate(source, start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as error:
                raise ExportError(f"{path}:{number} is not JSON ({error.msg})") from None
            _check_version(line, f"{path}:{number}")
            yield line


def _parquet_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(f"{path}: reading Parquet needs pyarrow: pip install "
                          "'synthqa-client[dataset]'") from None
    try:
        batches = pq.ParquetFile(path).iter_batches()
    except pa.ArrowException as error:
        raise ExportError(f"{path} is not a readable Parquet file ({error})") from None
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            _check_version(row, f"{path} row {number}")
            try:
                line = row_line(row)
            except (KeyError, TypeError, json.JSONDecodeError):
                raise ExportError(f"{path} row {number} is not a synthqa record line: its "
                                  "record column is not JSON text") from None
            yield line


def _check_version(line: Any, where: str) -> None:
    version = line.get("schema_version") if isinstance(line, dict) else None
    if version != LINE_SCHEMA_VERSION:
        raise ExportError(f"{where} is not a synthqa record line of schema version "
                          f"{LINE_SCHEMA_VERSION} (schema_version: {version})")
