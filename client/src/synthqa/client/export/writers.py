"""The files of an export, per split, in a staging folder beside the target that replaces it
at the end: an export is there whole or not at all, and a refused record leaves nothing.

JSONL: `<split>.jsonl`. Parquet: the Hugging Face layout, `data/<split>-00000-of-00001.parquet`,
one schema for every split (an empty split included), so `datasets.load_dataset(DIR)` opens
it with its splits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import ExportError
from .line_rows import line_row, line_schema

PARQUET_ROWS_PER_GROUP = 1_000


class SplitWriter(Protocol):
    def write(self, split: str, row: dict[str, Any]) -> None: ...

    def close(self) -> list[str]:
        """Closes every file; their paths relative to the export folder."""


class StagedFolder:
    """`out`'s content is built in `.<name>.partial` beside it and swapped in by `commit`."""

    def __init__(self, out: Path, overwrite: bool) -> None:
        out = out.resolve()  # `--out .` has no name to put the staging folder beside
        check_target(out, overwrite)
        self.out = out
        self.path = out.with_name(f".{out.name}.partial")
        shutil.rmtree(self.path, ignore_errors=True)  # a run killed before its commit
        self.path.mkdir(parents=True)

    def commit(self) -> None:
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.path, self.out)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def check_target(out: Path, overwrite: bool) -> None:
    """Refused before any work: a file, or a folder holding anything but an earlier export."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder")
    entries = list(out.iterdir())
    if not entries:
        return
    foreign = [entry.name for entry in entries if not _export_entry(entry)]
    if foreign:
        raise ExportError(f"--out {out} holds files an export did not write "
                          f"({', '.join(sorted(foreign)[:3])}); give an empty or new folder")
    if not overwrite:
        raise ExportError(f"--out {out} holds an earlier export; pass --overwrite to replace it")


def _export_entry(entry: Path) -> bool:
    if entry.is_dir():
        return entry.name == "data" and all(p.suffix == ".parquet" for p in entry.iterdir())
    return entry.name == "README.md" or entry.suffix == ".jsonl"


class JsonlSplits:
    def __init__(self, folder: Path, splits: list[str]) -> None:
        self._files: dict[str, IO[str]] = {
            name: (folder / f"{name}.jsonl").open("w", encoding="utf-8") for name in splits}

    def write(self, split: str, row: dict[str, Any]) -> None:
        self._files[split].write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> list[str]:
        for sink in self._files.values():
            sink.close()
        return [f"{name}.jsonl" for name in self._files]


def parquet_path(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


class ParquetSplits:
    """The lines as Parquet rows (line_rows.py)."""

    def __init__(self, folder: Path, splits: list[str]) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ExportError("--format parquet needs pyarrow: pip install "
                              "'synthqa-client[dataset]'") from None
        self._pa = pa
        self._schema = line_schema(pa)
        (folder / "data").mkdir()
        self._writers = {name: pq.ParquetWriter(folder / parquet_path(name), self._schema)
                         for name in splits}
        self._pending: dict[str, list[dict[str, Any]]] = {name: [] for name in splits}

    def write(self, split: str, row: dict[str, Any]) -> None:
        pending = self._pending[split]
        pending.append(line_row(row))
        if len(pending) >= PARQUET_ROWS_PER_GROUP:
            self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self._pending[split]
        if rows:
            table = self._pa.Table.from_pylist(rows, schema=self._schema)
            self._writers[split].write_table(table)
            rows.clear()

    def close(self) -> list[str]:
        for split, writer in self._writers.items():
            self._flush(split)
            writer.close()
        return [parquet_path(name) for name in self._writers]
