"""One shard at a time on Ray: `GenerateShards` takes a shard's ExtractDocuments rows (a group
of `groupby("shard").map_groups`) and, unless the shard's file is already there, generates
its records and writes them whole (shard_files.py). It returns the shard's summary row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from synthqa.client.channel import Credentials, Target

from .batches import Batch, batch_rows
from .records import DOCUMENT_COLUMNS, GenerateRecords
from .shard_files import records_in, shard_path, write_shard
from .shards import Options, options_hash, shard_key

# `skipped_existing`: the shard's file was there when the group was taken, from an earlier
# run or from an earlier attempt of this task (a retried task finds the shards it finished).
SUMMARY_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.int32()),
    ("file", pa.string()),
    ("documents", pa.int64()),
    ("records", pa.int64()),
    ("skipped", pa.list_(pa.struct([("document_id", pa.string()), ("reason", pa.string())]))),
    ("skipped_existing", pa.bool_()),
])
SHARD_COLUMNS = (*DOCUMENT_COLUMNS, "shard")


class GenerateShards:
    """A callable class for `groupby("shard").map_groups` over ExtractDocuments rows
    (batch_format "pyarrow" or "numpy"), writing `out/<key>.<format>` per shard.

    `records` holds GenerateRecords' arguments (target, credentials, streams, retries...);
    its client is made when the first shard needs generating, so a rerun whose shards are all
    done needs no server.
    """

    def __init__(self, target: Target, *, out: str, options: Options | None = None,
                 format: str = "parquet", credentials: Credentials | None = None,
                 **records: Any) -> None:
        self._out = Path(out)
        self._format = format
        shard_path(self._out, "", format)  # refuses an unknown format now, not per shard
        self._options = options
        self._options_digest = options_hash(options)
        self._client_arguments = {"target": target, "credentials": credentials, **records}
        self._records: GenerateRecords | None = None

    def __call__(self, group: Batch) -> pa.Table:
        rows = batch_rows(group, SHARD_COLUMNS)
        key = shard_key(self._options_digest, [row["sha256"] for row in rows])
        path = shard_path(self._out, key, self._format)
        documents = sum(row["skipped"] is None for row in rows)
        existing = path.exists()
        if existing:
            records = records_in(path)
        else:
            # A shard of skipped files only is written too (empty): it is done.
            records = write_shard(path, self._generator().lines(rows) if documents else ())
        summary = {
            "key": key, "shard": rows[0]["shard"], "file": str(path),
            "documents": documents, "records": records,
            "skipped": [{"document_id": row["document_id"], "reason": row["skipped"]}
                        for row in rows if row["skipped"] is not None],
            "skipped_existing": existing,
        }
        return pa.Table.from_pylist([summary], schema=SUMMARY_SCHEMA)

    def _generator(self) -> GenerateRecords:
        if self._records is None:
            self._records = GenerateRecords(options=self._options, **self._client_arguments)
        return self._records
