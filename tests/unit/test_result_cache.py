"""The result cache on its own: keys, hits, a size bound with the least recently used going
first, and the server running on without a cache it cannot open."""

from __future__ import annotations

import asyncio
from pathlib import Path

from synthqa.server.results.cache import CachedOutput, SqliteResultCache, cache_key


def output(text: str) -> CachedOutput:
    return CachedOutput(text, 10, len(text), "stop")


def test_keys_differ_by_everything_that_decides_an_output() -> None:
    base = cache_key("m", [1, 2, 3], "{}", {"seed": 1})
    assert base == cache_key("m", [1, 2, 3], "{}", {"seed": 1})
    others = {cache_key("m2", [1, 2, 3], "{}", {"seed": 1}),
              cache_key("m", [1, 2, 4], "{}", {"seed": 1}),
              cache_key("m", [12, 3], "{}", {"seed": 1}),
              cache_key("m", [1, 2, 3], "{ }", {"seed": 1}),
              cache_key("m", [1, 2, 3], "{}", {"seed": 2})}
    assert base not in others and len(others) == 5


def test_hits_survive_a_restart_and_the_oldest_go_first(tmp_path: Path) -> None:
    path = tmp_path / "c" / "results.sqlite"

    async def scenario() -> None:
        cache = SqliteResultCache(path, max_bytes=1000)
        await cache.put("a", output("x" * 300))
        await cache.put("b", output("y" * 300))
        assert await cache.get("a") == output("x" * 300)  # "a" is now the more recent
        await cache.put("c", output("z" * 300))  # past 1000 bytes: "b" goes
        assert await cache.get("b") is None
        assert await cache.get("c") is not None and cache.stored_bytes <= 1000
        await cache.put("huge", output("w" * 5000))  # larger than the bound: not kept
        assert await cache.get("huge") is None
        cache.close()
        reopened = SqliteResultCache(path, max_bytes=1000)
        assert await reopened.get("a") == output("x" * 300)
        assert reopened.stored_bytes == cache.stored_bytes
        reopened.close()

    asyncio.run(scenario())


def test_a_cache_that_cannot_be_opened_is_left_out(tmp_path: Path) -> None:
    from synthqa.server import config
    from synthqa.server.lifecycle import open_result_cache

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    _, settings = config.parse(["--model", "m", "--cache-path", str(blocked / "r.sqlite")])
    assert asyncio.run(open_result_cache(settings)) is None
    _, off = config.parse(["--model", "m", "--no-cache"])
    assert off.cache_path is None and asyncio.run(open_result_cache(off)) is None
