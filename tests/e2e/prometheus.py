"""A real Prometheus server for the tests, from Debian's `prometheus` package (tests/debian.py
fetches and unpacks it when it is not on PATH)."""

from __future__ import annotations

import functools
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..debian import debian_program
from .serverproc import free_port

JOB = "synthqa"


@functools.cache
def prometheus_binary() -> Path:
    """The prometheus executable: from PATH, else unpacked from Debian's package. The Debian
    binary is a Go build that links only libc, so the unpacked copy runs as is."""
    return debian_program("prometheus", ["prometheus"]).binary


class PrometheusServer:
    """Prometheus scraping `targets` (host:port) under job "synthqa", on a free loopback port.

    Use as a context manager, or call start() and stop(). Its log is workdir/prometheus.log.
    """

    def __init__(self, targets: list[str], *, workdir: Path, scrape_interval: str = "1s") -> None:
        self.targets = list(targets)
        self.workdir = workdir
        self.scrape_interval = scrape_interval
        self.port = 0
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        binary = prometheus_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML, so no YAML library is needed. scrape_timeout may not exceed the
        # interval, and the 10 s default would with a 1 s interval.
        config = {
            "global": {"scrape_interval": self.scrape_interval},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.process.returncode}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"prometheus not ready on {self.url} within {timeout} s\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:  # refused while starting, or 503 until the TSDB is open
            return False

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.log_path} (tail)\n" + "\n".join(text.splitlines()[-lines:])

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a GET on the HTTP API, e.g. api("targets")."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's series: [{"metric": {labels}, "value": [ts, "7"]}, ...].
        A scalar or string result comes back as one series without labels."""
        data = self.api("query", query=promql)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Polls query(promql) until predicate(result) holds (scrapes are periodic, so a value
        shows up a scrape interval or so late). Returns that result; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{promql!r} did not satisfy the predicate within {timeout} s; last result:\n"
                    f"{json.dumps(result, indent=1)}\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def targets_up(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Waits until every target's last scrape succeeded (up == 1); returns the `up` series.
        Allow about 6 s after start: Prometheus applies discovered targets on a 5 s tick."""
        wanted = set(self.targets)

        def all_up(result: list[dict[str, Any]]) -> bool:
            up = {s["metric"]["instance"] for s in result if s["value"][1] == "1"}
            return up >= wanted

        return self.wait_for(f'up{{job="{JOB}"}}', all_up, timeout)


def value(result: list[dict[str, Any]]) -> float:
    """The sample value of a single-series instant query result."""
    assert len(result) == 1, f"expected one series, got {result}"
    return float(result[0]["value"][1])


def scraped(target: str, name: str, *labels: str, timeout: float = 10.0) -> float:
    """The sum of a metric's samples read straight from a /metrics endpoint (host:port): those
    whose labels include every one of `labels` (each as `key="value"`)."""
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=timeout) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + " ", name + "{"))
               and all(label in line for label in labels))
