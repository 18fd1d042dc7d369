"""The server's limits on what one call, one document and all calls together may take."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ServiceLimits:
    max_message_bytes: int = 64 * 1024 * 1024
    max_document_chars: int = 16_000_000
    max_num_pairs: int = 50
    # As many sequences as vLLM batches by default on CPU: one call can keep the engine full.
    max_in_flight_chunks_per_call: int = 128
    max_in_flight_chunks: int = 256
    max_chunks_per_document: int = 20_000
    # Bytes of memory documents may hold, over all calls: text by its width, tokens and
    # chunks by measured factors (pipeline/chunking.py). A million characters of English
    # hold about 18 MiB while chunked; of CJK about 250 MiB.
    max_held_document_bytes: int = 4 * 2**30
    max_documents_per_call: int = 100_000
    # Calls one client address may have open at once (GetServerInfo and health not counted).
    max_calls_per_client: int = 64
    # A stream whose client reads nothing for this long is cancelled and its engine work
    # aborted; its events wait in the per-call window meanwhile.
    max_unread_seconds: int = 120
    max_call_seconds: int = 86_400

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
