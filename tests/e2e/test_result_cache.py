"""The result cache through a real server, the platform server (tests/e2e/conftest.py): a
seeded call served twice gets the second time from the cache, with identical records and no
engine work; unseeded calls never touch it. No other module's test makes a seeded call there."""

from __future__ import annotations

import json
from pathlib import Path

from .cache_calls import assert_served_from_cache, call
from .serverproc import ServerProcess


def test_a_seeded_call_served_twice_hits_the_cache_the_second_time(
    platform_server: ServerProcess,
) -> None:
    first = call(platform_server, seed=21)
    assert first.cached_chunks == 0
    assert all(not cached for _, cached in first.records.values())
    second = call(platform_server, seed=21)
    assert_served_from_cache(first, second)
    for records in (first.records, second.records):
        for text, _ in records.values():
            assert set(json.loads(text)) == {"question", "answer"}
    # Another seed is other work.
    assert call(platform_server, seed=22).cached_chunks == 0


def test_unseeded_calls_are_never_cached(platform_server: ServerProcess) -> None:
    for _ in range(2):
        assert call(platform_server).cached_chunks == 0


def test_cache_file_is_where_it_was_asked_for(platform_server: ServerProcess) -> None:
    cache = Path(platform_server.extra_args[platform_server.extra_args.index("--cache-path") + 1])
    assert cache.is_file()
    log = Path(platform_server.log_path).read_text(errors="replace")
    assert f"result cache at {cache}" in log
