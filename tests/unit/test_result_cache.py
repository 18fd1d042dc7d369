"""The result cache on its own: keys, hits, a size bound with the least recently used going
first, the server running on without a cache it cannot open, and a corrupt file set aside
and replaced (or the cache turned off) with one warning naming it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

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


def corruption_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno == logging.WARNING and "corrupt" in record.getMessage()]


def set_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


def test_a_corrupt_file_is_set_aside_and_replaced_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.sqlite"
    garbage = b"not a database " * 1000
    path.write_bytes(garbage)

    async def scenario() -> None:
        cache = SqliteResultCache(path, max_bytes=10_000)
        assert await cache.get("a") is None
        await cache.put("a", output("x"))
        assert await cache.get("a") == output("x")
        cache.close()
        reopened = SqliteResultCache(path, max_bytes=10_000)
        assert await reopened.get("a") == output("x"), "the new cache is a working file"
        reopened.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    warnings = corruption_warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert "file is not a database" in warnings[0]
    aside = [p for p in set_aside(path) if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and str(aside[0]) in warnings[0]
    assert aside[0].read_bytes() == garbage


def test_corruption_found_by_a_lookup_is_handled_once_and_the_cache_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.sqlite"

    async def fill() -> None:
        cache = SqliteResultCache(path, max_bytes=1_000_000)
        for n in range(50):
            await cache.put(f"key{n}", output(f"text {n}"))
        cache.close()

    asyncio.run(fill())
    # Garbage over the key index's root page: opening reads none of it, a lookup does.
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND "
                          "tbl_name = 'results' AND sql IS NULL").fetchone()[0]
    db.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)

    async def scenario() -> None:
        cache = SqliteResultCache(path, max_bytes=1_000_000)
        assert corruption_warnings(caplog) == []
        for n in range(3):
            assert await cache.get(f"key{n}") is None
        await cache.put("new", output("y"))
        assert await cache.get("new") == output("y")
        cache.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    warnings = corruption_warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert len([p for p in set_aside(path) if not p.name.endswith(("-wal", "-shm"))]) == 1


def test_a_corrupt_file_that_cannot_be_replaced_turns_the_cache_off_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthqa.server import config
    from synthqa.server.lifecycle import open_result_cache

    path = tmp_path / "results.sqlite"
    path.write_bytes(b"not a database " * 1000)

    def read_only_directory(self: SqliteResultCache) -> Path:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(SqliteResultCache, "_move_aside", read_only_directory)

    async def scenario() -> None:
        cache = SqliteResultCache(path, max_bytes=10_000)
        await cache.put("a", output("x"))
        assert await cache.get("a") is None and await cache.get("b") is None
        cache.close()
        _, settings = config.parse(["--model", "m", "--cache-path", str(path)])
        assert await open_result_cache(settings) is None, "calls go on without a cache"

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    warnings = corruption_warnings(caplog)
    assert len(warnings) == 2, "one for each opening"
    assert str(path) in warnings[0] and "Read-only file system" in warnings[0]
    assert "serving without a result cache" in warnings[0]
