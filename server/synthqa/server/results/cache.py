"""A chunk's raw model output, cached by a hash of everything that decides it: the model, the
prompt's token ids (the record shape, instructions and chunk text are all in them), the output
grammar and the sampling. Only seeded requests are cached: only they are reproducible.

Embedded by default: one SQLite file, bounded in size, least recently used entries evicted
first. SQLite calls run in a worker thread so the event loop never waits on the disk. A file
found corrupt is moved aside and replaced by an empty cache, once; the cache then turns itself
off rather than fail or warn on every chunk. Replicas that should share one cache use the same
interface over Redis (redis_cache.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

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


Result = TypeVar("Result")
# SQLite's primary result codes for a file that is not a sound database.
_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# The files SQLite keeps beside the database in WAL mode; they belong with it.
_SIDE_FILES = ("-wal", "-shm")


class SqliteResultCache:
    """`max_bytes` bounds the entries' stored size; past it, the least recently used go.

    A file found corrupt, when opened or by a later read or write, is moved aside to
    `<name>.corrupt-<time>` (with its -wal and -shm) and an empty cache is started in its
    place, with one warning naming both. If that cannot be done, or the new file turns corrupt
    too (the disk is then suspect), the cache is off after one warning: every lookup misses
    and nothing is stored. Other SQLite errors are raised as they are."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._stored = 0
        self._replaced = False
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            if not _is_corruption(error):
                raise
            self._replace_corrupt(error)

    @property
    def enabled(self) -> bool:
        """False once the cache has turned itself off."""
        return self._db is not None

    async def get(self, key: str) -> CachedOutput | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, output: CachedOutput) -> None:
        await asyncio.to_thread(self._put, key, output)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    @property
    def stored_bytes(self) -> int:
        return int(self._stored)

    def _open(self) -> None:
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                "size INTEGER NOT NULL, used REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS results_used ON results (used)")
            stored = db.execute("SELECT COALESCE(SUM(size), 0) FROM results").fetchone()[0]
        except BaseException:
            db.close()
            raise
        self._db, self._stored = db, stored

    def _using_db(self, work: Callable[[sqlite3.Connection], Result], otherwise: Result) -> Result:
        """`work` on the database under the lock, or `otherwise` when the cache is off or the
        file turns out corrupt."""
        with self._lock:
            if self._db is None:
                return otherwise
            try:
                return work(self._db)
            except sqlite3.DatabaseError as error:
                if not _is_corruption(error):
                    raise
                self._replace_corrupt(error)
                return otherwise

    def _replace_corrupt(self, error: sqlite3.DatabaseError) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):  # the file is given up either way
                self._db.close()
        self._db, self._stored = None, 0
        if self._replaced:
            log.warning("result cache %s is corrupt again (%s) after it was replaced; "
                        "serving without a result cache", self._path, error)
            return
        self._replaced = True
        try:
            aside = self._move_aside()
            self._open()
        except (OSError, sqlite3.Error) as failure:
            log.warning("result cache %s is corrupt (%s) and cannot be replaced (%s); serving "
                        "without a result cache", self._path, error, failure)
            return
        log.warning("result cache %s is corrupt (%s); moved it to %s and started an empty one",
                    self._path, error, aside)

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        attempt = 1
        while aside.exists():
            attempt += 1
            aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}-{attempt}")
        for suffix in ("", *_SIDE_FILES):
            # A WAL left at the path would be read into the new database.
            if os.path.lexists(f"{self._path}{suffix}"):
                os.replace(f"{self._path}{suffix}", f"{aside}{suffix}")
        return aside

    def _get(self, key: str) -> CachedOutput | None:
        def lookup(db: sqlite3.Connection) -> Any:
            row = db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("UPDATE results SET used = ? WHERE key = ?", (time.time(), key))
            return row

        row = self._using_db(lookup, None)
        return None if row is None else CachedOutput.from_json(row[0])

    def _put(self, key: str, output: CachedOutput) -> None:
        value = output.to_json()
        size = len(value.encode()) + len(key)
        if size > self._max_bytes:
            return

        def store(db: sqlite3.Connection) -> None:
            old = db.execute("SELECT size FROM results WHERE key = ?", (key,)).fetchone()
            db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                       (key, value, size, time.time()))
            self._stored += size - (old[0] if old else 0)
            while self._stored > self._max_bytes:
                oldest = db.execute(
                    "SELECT key, size FROM results ORDER BY used LIMIT 64").fetchall()
                if not oldest:
                    break
                for old_key, old_size in oldest:
                    if self._stored <= self._max_bytes:
                        break
                    db.execute("DELETE FROM results WHERE key = ?", (old_key,))
                    self._stored -= old_size

        self._using_db(store, None)


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _CORRUPTION_CODES
