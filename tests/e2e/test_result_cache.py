"""The result cache through a real server of its own: a seeded call served twice gets the
second time from the cache, with identical records and no engine work; unseeded calls never
touch it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..paths import REPO
from .cache_calls import assert_served_from_cache, call
from .serverproc import ServerProcess, free_port, serving


@pytest.fixture(scope="module")
def cached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    cache = tmp_path_factory.mktemp("cache") / "results.sqlite"
    process = ServerProcess(port=free_port(), log_path=REPO / "out" / "test-cache-server.log",
                            extra_args=["--cache-path", str(cache), "--cache-max-mb", "16"])
    yield from serving(process)
    assert cache.exists()


def test_a_seeded_call_served_twice_hits_the_cache_the_second_time(
    cached_server: ServerProcess,
) -> None:
    first = call(cached_server, seed=21)
    assert first.cached_chunks == 0
    assert all(not cached for _, cached in first.records.values())
    second = call(cached_server, seed=21)
    assert_served_from_cache(first, second)
    for records in (first.records, second.records):
        for text, _ in records.values():
            assert set(json.loads(text)) == {"question", "answer"}
    # Another seed is other work.
    assert call(cached_server, seed=22).cached_chunks == 0


def test_unseeded_calls_are_never_cached(cached_server: ServerProcess) -> None:
    for _ in range(2):
        assert call(cached_server).cached_chunks == 0


def test_cache_file_is_where_it_was_asked_for(cached_server: ServerProcess) -> None:
    log = Path(cached_server.log_path).read_text(errors="replace")
    assert "result cache at" in log
