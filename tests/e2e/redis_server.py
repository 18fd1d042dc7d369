"""A real Redis server for the tests, from Debian's `redis-server` package (tests/debian.py
fetches and unpacks it, with the libraries it links, when it is not on PATH)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from ..debian import debian_program
from .serverproc import free_port

# Debian's redis-server is a link to redis-check-rdb, which is in redis-tools; a bare machine
# also lacks the two libraries it links.
PACKAGES = ["redis-server", "redis-tools", "libjemalloc2", "liblzf1"]


class RedisServer:
    """Redis on a free loopback port, with no persistence, bounded as production should be
    (maxmemory, least recently used keys evicted first), and a password when one is given."""

    def __init__(self, workdir: Path, password: str = "") -> None:
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        self.log_path = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self, timeout: float = 30.0) -> None:
        program = debian_program("redis-server", PACKAGES)
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [str(program.binary), "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                   "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru",
                   "--logfile", str(self.log_path)]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, env=program.env(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
