"""Documents as users have them (PDF, HTML, Word, PowerPoint, Markdown, text in any common
encoding, and .gz of any of these) turned into the text synthqa sends, with a source map. The
`ingest` extra: pip install 'synthqa-client[ingest]'. Which library reads which format, and
why: docs/clients.md ("Ingestion")."""

from __future__ import annotations

from .errors import ExtractionError
from .extract import MAX_GZIP_BYTES, extract_bytes, extract_file
from .source_map import Extracted, Region

__all__ = ["MAX_GZIP_BYTES", "Extracted", "ExtractionError", "Region", "extract_bytes",
           "extract_file"]
