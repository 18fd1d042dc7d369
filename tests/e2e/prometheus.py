"""A real Prometheus server for the tests, from Debian's `prometheus` package.

When `prometheus` is not on PATH, the package is fetched with `apt-get download` and unpacked
with `dpkg-deb -x` under .cache/prometheus/ (gitignored): nothing is installed system-wide, so
no postinst runs and no service is started. The Debian binary is a Go build that links only
libc, so the unpacked copy runs as is.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..paths import REPO
from .serverproc import free_port

CACHE = REPO / ".cache" / "prometheus"
JOB = "synthqa"


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _download_deb() -> Path:
    """prometheus_*.deb in CACHE, downloaded by apt-get (root is not needed unless the package
    lists are missing, as on a fresh image: then `apt-get update` runs once and it retries)."""
    result = _run(["apt-get", "download", "prometheus"], cwd=CACHE)
    if result.returncode != 0:
        update = _run(["apt-get", "update"], cwd=CACHE)
        assert update.returncode == 0, f"apt-get update failed:\n{update.stderr}"
        result = _run(["apt-get", "download", "prometheus"], cwd=CACHE)
    debs = sorted(CACHE.glob("prometheus_*.deb"))
    assert result.returncode == 0 and debs, f"apt-get download prometheus failed:\n{result.stderr}"
    return debs[-1]


@functools.cache
def prometheus_binary() -> Path:
    """The prometheus executable: from PATH, else unpacked from the Debian package into CACHE."""
    found = shutil.which("prometheus")
    if found is not None:
        binary = Path(found)
    else:
        binary = CACHE / "root" / "usr" / "bin" / "prometheus"
        if not binary.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            debs = sorted(CACHE.glob("prometheus_*.deb"))
            deb = debs[-1] if debs else _download_deb()
            # Unpack beside the target and rename into place, so an interrupted or concurrent
            # run never leaves a half-extracted tree that looks complete.
            with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
                unpacked = Path(tmp) / "root"
                result = _run(["dpkg-deb", "-x", str(deb), str(unpacked)], cwd=CACHE)
                assert result.returncode == 0, f"dpkg-deb -x {deb} failed:\n{result.stderr}"
                try:
                    unpacked.rename(CACHE / "root")
                except OSError:
                    pass  # another process got there first
    check = _run([str(binary), "--version"], cwd=CACHE, timeout=30)
    assert check.returncode == 0, f"{binary} --version failed:\n{check.stdout}{check.stderr}"
    return binary



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
