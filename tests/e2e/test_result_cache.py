"""The result cache through a real server of its own: a seeded call served twice gets the
second time from the cache, with identical records and no engine work; unseeded calls never
touch it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthqa.client import Document, SynthQAClient

from ..paths import REPO
from .helpers import SAMPLE, by_document
from .serverproc import ServerProcess, free_port, serving


@pytest.fixture(scope="module")
def cached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    cache = tmp_path_factory.mktemp("cache") / "results.sqlite"
    process = ServerProcess(port=free_port(), log_path=REPO / "out" / "test-cache-server.log",
                            extra_args=["--cache-path", str(cache), "--cache-max-mb", "16"])
    yield from serving(process)
    assert cache.exists()


def run(server: ServerProcess, **options: object) -> dict[str, object]:
    documents = [Document("a", SAMPLE[:1400]), Document("b", SAMPLE[3000:3900])]
    with SynthQAClient(server.target, timeout=300) as client:
        events = list(client.generate(documents, record_shape="qa", num_pairs=2,
                                      max_generation_tokens=200, max_chunk_tokens=200,
                                      chunk_overlap_tokens=0, **options))  # type: ignore[arg-type]
    grouped = by_document(events)
    records = {(d, r.chunk_index, r.record_index): (r.json, r.cached)
               for d, g in grouped.items() for r in g.records}
    return {
        "records": records,
        "completed": [(c.chunk_index, c.cached, c.generated_token_count)
                      for g in grouped.values() for c in g.completed],
        "cached_chunks": sum(g.done[0].cached_chunk_count for g in grouped.values()),
        "chunks": sum(g.done[0].chunk_count for g in grouped.values()),
        "failed": sum(len(g.failed) for g in grouped.values()),
    }


def test_a_seeded_call_served_twice_hits_the_cache_the_second_time(
    cached_server: ServerProcess,
) -> None:
    first = run(cached_server, seed=21)
    assert first["cached_chunks"] == 0
    assert all(not cached for _, cached in first["records"].values())  # type: ignore[union-attr]
    second = run(cached_server, seed=21)
    completed = first["chunks"] - first["failed"]  # type: ignore[operator]
    # Completed chunks are cached; a failed one (the tiny model may run out of tokens) is not.
    assert second["cached_chunks"] == completed > 0
    hits = {key: text for key, (text, cached) in second["records"].items() if cached}  # type: ignore[union-attr]
    assert hits and all(first["records"][key][0] == text  # type: ignore[index]
                        for key, text in hits.items())
    for records in (first["records"], second["records"]):
        for text, _ in records.values():  # type: ignore[union-attr]
            assert set(json.loads(text)) == {"question", "answer"}
    # Another seed is other work.
    assert run(cached_server, seed=22)["cached_chunks"] == 0


def test_unseeded_calls_are_never_cached(cached_server: ServerProcess) -> None:
    for _ in range(2):
        result = run(cached_server)
        assert result["cached_chunks"] == 0


def test_cache_file_is_where_it_was_asked_for(cached_server: ServerProcess) -> None:
    log = Path(cached_server.log_path).read_text(errors="replace")
    assert "result cache at" in log
