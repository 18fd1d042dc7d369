"""The result cache over Redis, for replicas that share one: the same keys and values as the
SQLite cache, under a prefix.

Redis bounds it: its `maxmemory` with `maxmemory-policy allkeys-lru` evicts the least recently
used entries, as the SQLite cache does. A cache is an optimisation, so an unreachable Redis
never fails a chunk: reads miss and writes are skipped, and after a failure the cache rests for
a few seconds rather than making every chunk wait out a timeout.
"""

from __future__ import annotations

import logging
import time
import urllib.parse

import redis.asyncio
from redis.exceptions import RedisError, ResponseError

from .cache import CachedOutput

log = logging.getLogger(__name__)

KEY_PREFIX = "synthqa:result:"
# Short: a cache that answers slowly costs more than it saves.
TIMEOUT_SECONDS = 0.5
REST_SECONDS = 5.0


def describe_url(url: str) -> str:
    """The URL without its credentials, for logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, where, parts.path, "", ""))


class RedisResultCache:
    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS,
                 rest_seconds: float = REST_SECONDS) -> None:
        self.where = describe_url(url)
        self._client = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._rest_seconds = rest_seconds
        self._resting_until = 0.0
        self._down = False

    async def get(self, key: str) -> CachedOutput | None:
        if self._resting():
            return None
        try:
            stored = await self._client.get(KEY_PREFIX + key)
        except RedisError as error:
            self._failed(error)
            return None
        self._answered()
        return None if stored is None else CachedOutput.from_json(stored)

    async def put(self, key: str, output: CachedOutput) -> None:
        if self._resting():
            return
        try:
            await self._client.set(KEY_PREFIX + key, output.to_json())
        except RedisError as error:
            self._failed(error)
            return
        self._answered()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check(self) -> None:
        """Logs at start-up whether Redis answers, and warns when nothing bounds its memory."""
        try:
            await self._client.ping()
        except RedisError as error:
            self._failed(error)
            return
        log.info("result cache in Redis at %s (seeded calls)", self.where)
        try:
            config = await self._client.config_get("maxmemory*")
        except ResponseError:
            return  # managed Redis services often refuse CONFIG; their operators set the bound
        maxmemory = int(config.get("maxmemory") or 0)
        policy = config.get("maxmemory-policy") or ""
        if maxmemory == 0 or not policy.startswith("allkeys-"):
            log.warning("Redis at %s has maxmemory %d and maxmemory-policy %s: the cache is not "
                        "bounded, or writes fail when it is full; set maxmemory and "
                        "maxmemory-policy allkeys-lru", self.where, maxmemory, policy)

    def _resting(self) -> bool:
        return time.monotonic() < self._resting_until

    def _failed(self, error: RedisError) -> None:
        self._resting_until = time.monotonic() + self._rest_seconds
        if not self._down:
            self._down = True
            log.warning("result cache in Redis at %s does not answer (%s: %s); chunks go to the "
                        "engine, retrying every %g s", self.where, type(error).__name__, error,
                        self._rest_seconds)

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("result cache in Redis at %s answers again", self.where)
