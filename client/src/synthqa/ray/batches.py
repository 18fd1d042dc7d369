"""Ray Data batches and Python rows: a batch's rows whichever batch format the caller chose
(pyarrow, or columns of NumPy arrays, Ray's default), and record lines as a pyarrow batch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import pyarrow as pa

from synthqa.client.export.line_rows import line_row, line_schema

Batch: TypeAlias = "pa.Table | Mapping[str, Any]"
LINE_SCHEMA = line_schema(pa)


def batch_rows(batch: Batch, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """The batch's rows, with just `columns` (a missing one raises ValueError naming it)."""
    missing = [name for name in columns
               if name not in (batch.column_names if isinstance(batch, pa.Table) else batch)]
    if missing:
        raise ValueError(f"the batch has no column {', '.join(missing)}; it needs "
                         f"{', '.join(columns)}")
    if isinstance(batch, pa.Table):
        rows: list[dict[str, Any]] = batch.select(list(columns)).to_pylist()
        return rows
    values = {name: _python(batch[name]) for name in columns}
    count = len(next(iter(values.values()))) if values else 0
    return [{name: values[name][index] for name in columns} for index in range(count)]


def _python(column: Any) -> list[Any]:
    """A NumPy column's values as Python objects (None stays None)."""
    return column.tolist() if hasattr(column, "tolist") else list(column)


def lines_table(lines: Iterable[dict[str, Any]]) -> pa.Table:
    """Record lines as Parquet rows (line_rows.py): the columns `synthqa export --format
    parquet` writes, one schema for every batch whatever it holds."""
    return pa.Table.from_pylist([line_row(line) for line in lines], schema=LINE_SCHEMA)
