"""One small call whose chunks the result cache can serve, summarised for the cache tests."""

from __future__ import annotations

from dataclasses import dataclass

from synthqa.client import Document, SynthQAClient

from .helpers import SAMPLE, by_document
from .serverproc import ServerProcess


@dataclass
class CacheCall:
    # (document, chunk, record) -> (record JSON, served from the cache)
    records: dict[tuple[str, int, int], tuple[str, bool]]
    cached_chunks: int
    chunks: int
    failed: int

    @property
    def completed(self) -> int:
        return self.chunks - self.failed


def call(server: ServerProcess, **options: object) -> CacheCall:
    documents = [Document("a", SAMPLE[:1400]), Document("b", SAMPLE[3000:3900])]
    with SynthQAClient(server.target, timeout=300) as client:
        events = list(client.generate(documents, record_shape="qa", num_pairs=2,
                                      max_generation_tokens=200, max_chunk_tokens=200,
                                      chunk_overlap_tokens=0, **options))  # type: ignore[arg-type]
    grouped = by_document(events)
    return CacheCall(
        records={(d, r.chunk_index, r.record_index): (r.json, r.cached)
                 for d, g in grouped.items() for r in g.records},
        cached_chunks=sum(g.done[0].cached_chunk_count for g in grouped.values()),
        chunks=sum(g.done[0].chunk_count for g in grouped.values()),
        failed=sum(len(g.failed) for g in grouped.values()),
    )


def assert_served_from_cache(first: CacheCall, second: CacheCall) -> None:
    """The second of two identical seeded calls: every chunk the first completed comes from the
    cache (a failed one, the tiny model running out of tokens, is not cached), with the same
    records."""
    assert second.cached_chunks == first.completed > 0
    hits = {key: text for key, (text, cached) in second.records.items() if cached}
    assert hits and all(first.records[key][0] == text for key, text in hits.items())
