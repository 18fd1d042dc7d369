"""Files to documents on Ray: `ExtractDocuments` turns rows of
`ray.data.read_binary_files(paths, include_paths=True)` into one row per file, with its text
read by the client's own ingestion (the `ingest` extra: PDF, HTML, Word, PowerPoint, text in
any encoding; without it, UTF-8 text only, as the CLI reads files), its source map, and its
shard. A file with no text to send is kept as a row that says why it was skipped: a bad file
is never dropped silently."""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthqa.client.documents_in import InputError, ingest_available, read_text

from .batches import Batch, batch_rows
from .shards import Options, options_hash, shard_of

# One row per file. `source_map` is the JSON of the extraction's regions (ingest.Region:
# characters [start, end) and their page, slide or headings); `skipped` is null, or why the
# file has no document (and then kind, text and source_map are null).
DOCUMENT_SCHEMA = pa.schema([
    ("document_id", pa.string()),
    ("path", pa.string()),
    ("sha256", pa.string()),
    ("kind", pa.string()),
    ("text", pa.string()),
    ("source_map", pa.string()),
    ("skipped", pa.string()),
    ("shard", pa.int32()),
])
INPUT_COLUMNS = ("bytes", "path")


class ExtractDocuments:
    """A callable class for `Dataset.map_batches` (batch_format "pyarrow" or "numpy"): rows of
    `bytes` and `path` in, DOCUMENT_SCHEMA rows out.

    `root`: the folder the document ids are relative to, as the CLI's ids are relative to the
    inputs' common folder (a path as read_binary_files reports it; a URI's scheme is ignored,
    so `s3://bucket/corpus` matches `bucket/corpus/a.pdf`). `options` and `num_shards` place
    each document in its shard (shards.py); they must be those the records are generated with.
    """

    def __init__(self, root: str, *, options: Options | None = None,
                 num_shards: int = 1) -> None:
        if num_shards < 1:
            raise ValueError("num_shards must be at least 1")
        self._root = _path_part(root)
        self._options_digest = options_hash(options)
        self._num_shards = num_shards
        self._ingest = ingest_available()

    def __call__(self, batch: Batch) -> pa.Table:
        rows = [self.document(row["path"], row["bytes"])
                for row in batch_rows(batch, INPUT_COLUMNS)]
        return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)

    def document(self, path: str, data: bytes) -> dict[str, Any]:
        """One file's row."""
        document_id = document_id_under(path, self._root)
        sha256 = hashlib.sha256(data).hexdigest()
        row: dict[str, Any] = {
            "document_id": document_id, "path": path, "sha256": sha256, "kind": None,
            "text": None, "source_map": None, "skipped": None,
            "shard": shard_of(sha256, self._options_digest, self._num_shards),
        }
        try:
            kind, text, regions = self._extract(document_id, data)
        except InputError as error:
            row["skipped"] = str(error)
            return row
        row.update(kind=kind, text=text, source_map=json.dumps(regions, ensure_ascii=False))
        return row

    def _extract(self, document_id: str, data: bytes) -> tuple[str, str, list[dict[str, Any]]]:
        """The file's kind, text and source map; InputError says why it has none."""
        if not self._ingest:
            return "text", read_text(Path(document_id), data), []
        from synthqa.client.ingest import ExtractionError, extract_bytes

        try:
            extracted = extract_bytes(data, posixpath.basename(document_id))
        except ExtractionError as error:
            # Worded as the CLI words a skipped file.
            raise InputError(f"{document_id}: {error}") from None
        return extracted.kind, extracted.text, extracted.source_map()


def document_id_under(path: str, root: str) -> str:
    """`path` relative to `root`, with / between parts."""
    full, base = _path_part(path), _path_part(root)
    prefix = base.rstrip("/") + "/"
    if not full.startswith(prefix) or full == prefix:
        raise ValueError(f"{path} is not below the root {root}: give the folder the documents "
                         "are read from as root")
    return full[len(prefix):]


def _path_part(location: str) -> str:
    """A path or URI without its scheme, normalized: `s3://bucket/a/../b` → `bucket/b`."""
    _, separator, rest = location.partition("://")
    return posixpath.normpath(rest if separator else location)
