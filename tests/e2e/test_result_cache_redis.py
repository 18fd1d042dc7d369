"""The result cache shared by replicas through a real Redis (Debian's redis-server): what one
server process cached, the next one serves; a Redis that stops answering costs misses, never
chunks, and is used again once it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthqa.server.results.cache import CachedOutput
from synthqa.server.results.redis_cache import KEY_PREFIX, RedisResultCache

from ..paths import REPO
from .cache_calls import assert_served_from_cache, call
from .redis_server import RedisServer
from .serverproc import ServerProcess, free_port, serving_all

PASSWORD = "s3cret-in-the-url"


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), password=PASSWORD) as server:
        yield server


def replica(redis: RedisServer, name: str) -> ServerProcess:
    """A server process of its own on the shared Redis."""
    return ServerProcess(port=free_port(), log_path=REPO / "out" / f"test-{name}.log",
                         extra_args=["--cache-url", redis.url])


def assert_logged_redis_without_its_password(process: ServerProcess) -> None:
    log = Path(process.log_path).read_text(errors="replace")
    assert "result cache in Redis at redis://127.0.0.1:" in log
    assert PASSWORD not in log


def test_a_second_replica_serves_what_the_first_cached(shared_redis: RedisServer) -> None:
    # Both start at once; the second is called only after the first has cached its chunks.
    replicas = replica(shared_redis, "redis-replica-1"), replica(shared_redis, "redis-replica-2")
    for first_replica, second_replica in serving_all(*replicas):
        first, unseeded = call(first_replica, seed=31), call(first_replica)
        assert first.cached_chunks == 0 and unseeded.cached_chunks == 0
        stored = shared_redis.client().keys(KEY_PREFIX + "*")
        assert len(stored) == first.completed  # one entry per completed seeded chunk, no others
        second = call(second_replica, seed=31)
        assert_served_from_cache(first, second)
    for process in replicas:
        assert_logged_redis_without_its_password(process)


def output(text: str) -> CachedOutput:
    return CachedOutput(text, 10, len(text), "stop")


def test_caches_on_one_redis_see_each_others_entries(shared_redis: RedisServer) -> None:
    async def scenario() -> None:
        writer, reader = RedisResultCache(shared_redis.url), RedisResultCache(shared_redis.url)
        assert await reader.get("k-shared") is None
        await writer.put("k-shared", output("é and 😀"))
        assert await reader.get("k-shared") == output("é and 😀")
        await writer.aclose()
        await reader.aclose()

    asyncio.run(scenario())


def test_a_redis_that_stops_answering_costs_misses_and_is_used_again(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path)

    async def scenario() -> None:
        cache = RedisResultCache(f"redis://127.0.0.1:{redis.port}/0", rest_seconds=0.2)
        # Nothing listens yet: a miss and a skipped write, no exception.
        assert await cache.get("k") is None
        await cache.put("k", output("lost"))
        redis.start()
        try:
            await asyncio.sleep(0.3)  # past the rest after the failure
            await cache.put("k", output("kept"))
            assert await cache.get("k") == output("kept")
        finally:
            await cache.aclose()
            redis.stop()

    asyncio.run(scenario())
