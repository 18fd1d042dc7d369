"""A chunk's raw model output, cached by a hash of everything that decides it: the model, the
prompt's token ids (the record shape, instructions and chunk text are all in them), the output
grammar and the sampling. Only seeded requests are cached: only they are reproducible.

Embedded by default: one SQLite file, bounded in size, least recently used entries evicted
first. SQLite calls run in a worker thread so the event loop never waits on the disk. Replicas
that should share one cache use the same interface over Redis (redis_cache.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Bumped when what is stored, or how the key is made, changes.
_FORMAT = 1


@dataclass(frozen=True)
class CachedOutput:
    """What the engine returned for a request that completed."""

    text: str
    prompt_token_count: int
    generated_token_count: int
    finish_reason: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)

    @classmethod
    def from_json(cls, stored: str | bytes) -> CachedOutput:
        return cls(**json.loads(stored))


class ResultCache(Protocol):
    async def get(self, key: str) -> CachedOutput | None: ...

    async def put(self, key: str, output: CachedOutput) -> None: ...

    async def aclose(self) -> None: ...


def cache_key(model: str, prompt_ids: list[int], grammar: str, sampling: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    header = json.dumps({"format": _FORMAT, "model": model, "grammar": grammar,
                         "sampling": sampling}, sort_keys=True)
    digest.update(header.encode())
    digest.update(b"\0" + ",".join(map(str, prompt_ids)).encode())
    return digest.hexdigest()


class SqliteResultCache:
    """`max_bytes` bounds the entries' stored size; past it, the least recently used go."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "size INTEGER NOT NULL, used REAL NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS results_used ON results (used)")
        self._stored = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM results").fetchone()[0]

    async def get(self, key: str) -> CachedOutput | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, output: CachedOutput) -> None:
        await asyncio.to_thread(self._put, key, output)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    @property
    def stored_bytes(self) -> int:
        return int(self._stored)

    def _get(self, key: str) -> CachedOutput | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE results SET used = ? WHERE key = ?", (time.time(), key))
        return CachedOutput.from_json(row[0])

    def _put(self, key: str, output: CachedOutput) -> None:
        value = output.to_json()
        size = len(value.encode()) + len(key)
        if size > self._max_bytes:
            return
        with self._lock:
            old = self._db.execute("SELECT size FROM results WHERE key = ?", (key,)).fetchone()
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                             (key, value, size, time.time()))
            self._stored += size - (old[0] if old else 0)
            while self._stored > self._max_bytes:
                oldest = self._db.execute(
                    "SELECT key, size FROM results ORDER BY used LIMIT 64").fetchall()
                if not oldest:
                    break
                for old_key, old_size in oldest:
                    if self._stored <= self._max_bytes:
                        break
                    self._db.execute("DELETE FROM results WHERE key = ?", (old_key,))
                    self._stored -= old_size
