"""The CLI's `extract` command: what `generate` would send, without a server, one JSON line per
document (document_id, source, kind, text, source map), so that extraction can be checked and
fixed before generation is paid for.

Exit codes: 0 every file extracted; 3 some were skipped (named on stderr, with the reason);
1 none had text, or the ingest extra is missing."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .documents_in import INGEST_HINT, document_ids, ingest_available
from .walk import collect_files

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_SOME_SKIPPED = 3


def run_extract(paths: Sequence[str], out: Path | None, include: Sequence[str],
                exclude: Sequence[str]) -> int:
    if not ingest_available():
        print(f"synthqa: {INGEST_HINT}", file=sys.stderr)
        return EXIT_NOTHING
    from .ingest import ExtractionError
    from .ingest.pool import extract_in_order

    files = collect_files(paths, include, exclude)
    if not files:
        print("synthqa: no file to extract", file=sys.stderr)
        return EXIT_NOTHING
    ids = document_ids(files)
    written = skipped = 0
    sink: TextIO = out.open("w", encoding="utf-8") if out is not None else sys.stdout
    try:
        for path, result in extract_in_order(files):
            if isinstance(result, ExtractionError):
                skipped += 1
                print(f"synthqa: skipping {path}: {result}", file=sys.stderr)
                continue
            sink.write(json.dumps({
                "document_id": ids[path],
                "source": {"path": ids[path], "sha256": result.sha256},
                "kind": result.extracted.kind,
                "text": result.extracted.text,
                "source_map": result.extracted.source_map(),
            }, ensure_ascii=False) + "\n")
            written += 1
    finally:
        if out is not None:
            sink.close()
    print(f"extracted {written} of {len(files)} file(s)"
          + (f" to {out}" if out is not None else "") + f"; {skipped} skipped", file=sys.stderr)
    if not written:
        return EXIT_NOTHING
    return EXIT_SOME_SKIPPED if skipped else EXIT_OK
