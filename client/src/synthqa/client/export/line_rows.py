"""A record line (record_lines.py) as a Parquet row and back: the line's columns, `record` as
JSON text (a caller's schema can be anything; one column type serves every run), and
`messages`, the turns chat trainers read (null for custom records). `synthqa export --format
parquet` and synthqa.ray's shard files write these rows; `read_lines` reads them back."""

from __future__ import annotations

import json
from typing import Any

from .formats import messages

# Columns a row has that its line does not: derived from the line, so dropped on the way back.
DERIVED_COLUMNS = ("messages",)


def line_row(line: dict[str, Any]) -> dict[str, Any]:
    return {**line, "record": json.dumps(line["record"], ensure_ascii=False),
            "messages": messages(line)}


def row_line(row: dict[str, Any]) -> dict[str, Any]:
    """The line a row was made from (the row as pyarrow gives it: `to_pylist()`)."""
    line = {name: value for name, value in row.items() if name not in DERIVED_COLUMNS}
    line["record"] = json.loads(row["record"])
    return line


def line_schema(pa: Any) -> Any:
    """A record line (schemas/record-line-v1.json) as Arrow columns, and `messages`."""
    integers = pa.list_(pa.int32())
    return pa.schema([
        ("schema_version", pa.int32()),
        ("document_id", pa.string()),
        ("source", pa.struct([("path", pa.string()), ("sha256", pa.string()),
                              ("pages", integers), ("slides", integers)])),
        ("chunk_index", pa.int32()),
        ("pass_index", pa.int32()),
        ("record_index", pa.int32()),
        ("shape", pa.string()),
        ("question", pa.string()),
        ("reasoning", pa.string()),
        ("answer", pa.string()),
        ("summary", pa.string()),
        ("record", pa.string()),
        ("rating", pa.int32()),
        ("rating_reason", pa.string()),
        ("evidence", pa.list_(pa.struct([
            ("sentence", pa.int32()), ("text", pa.string()), ("char_start", pa.int64()),
            ("char_end", pa.int64()), ("page", pa.int32()), ("slide", pa.int32())]))),
        ("cached", pa.bool_()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ])
