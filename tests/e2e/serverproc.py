"""Starts and stops real synthqa server processes for the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..paths import TINY_MODEL

SERVICE = "synthqa.v1.SynthQAService"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health_status(target: str, timeout: float = 1.0,
                  credentials: grpc.ChannelCredentials | None = None) -> int | None:
    """The server's health for the synthqa service, or None when it does not answer."""
    channel = (grpc.secure_channel(target, credentials) if credentials is not None
               else grpc.insecure_channel(target))
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout
            )
            return reply.status
        except grpc.RpcError:
            return None


def assert_all_gone(processes: list[psutil.Process], within: float = 10.0) -> None:
    """The processes exit soon after the server (multiprocessing's resource tracker leaves
    once the server's end of its pipe closes)."""
    deadline = time.monotonic() + within
    while leftovers := [p for p in processes if alive(p)]:
        assert time.monotonic() < deadline, f"processes outlived the server: {leftovers}"
        time.sleep(0.1)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class ServerProcess:
    port: int
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    # Added to this process's environment (OTEL_* variables, say).
    extra_env: dict[str, str] = field(default_factory=dict)
    # For a server that serves TLS: how the health checks reach it.
    credentials: grpc.ChannelCredentials | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                   **self.extra_env)
        command = [
            sys.executable, "-m", "synthqa.server",
            "--model", str(TINY_MODEL),
            "--max-model-len", "2048",
            # Eager mode skips torch.compile warm-up: about 40 s to SERVING instead of 75 s here.
            # `make run` covers the compiled default.
            "--enforce-eager",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            # Tests that repeat a seeded call expect the engine to run it; the cache's own
            # tests give a --cache-path or a --cache-url.
            *([] if {"--cache-path", "--cache-url"} & set(self.extra_args) else ["--no-cache"]),
            *self.extra_args,
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        # A process group of its own: signals sent to it reach nothing of the test run. Not a
        # session of its own: Linux's autogroup scheduler shares the CPUs between sessions, and
        # a spinning CPU engine in another session held the tests' own threads (and the CLI's)
        # off a core for up to a second on a two-core machine (docs/performance.md).
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        process_group=0)

    def wait_serving(self, timeout: float = 600.0) -> list[int | None]:
        """Poll health until SERVING; return every status seen on the way."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        seen: list[int | None] = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}; see {self.log_path}")
            status = health_status(self.target, timeout=0.5, credentials=self.credentials)
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == health_pb2.HealthCheckResponse.SERVING:
                return seen
            time.sleep(0.05)
        raise TimeoutError(f"server not SERVING after {timeout} s; see {self.log_path}")

    def descendants(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for child in self.descendants():
                child.kill()
            self.process.kill()
            raise


def serving(process: ServerProcess) -> Iterator[ServerProcess]:
    """For a fixture: the server started and SERVING; afterwards stopped cleanly (exit 0) with
    no process of its tree left."""
    yield from _served(process, may_be_killed=False)


def serving_until_killed(process: ServerProcess) -> Iterator[ServerProcess]:
    """For a fixture whose test may kill the server: started and SERVING; afterwards stopped
    if still alive, and no process of its tree left either way."""
    yield from _served(process, may_be_killed=True)


def serving_all(*processes: ServerProcess) -> Iterator[tuple[ServerProcess, ...]]:
    """For a fixture or a test that needs several servers: all started at once, then each
    stopped as `serving` stops one. Two starts at once took 0.86-0.90 of the time of two in a
    row here (2026-12-07): a start keeps about one vCPU busy on average, and this machine's
    two vCPUs do not run two starts at twice the speed."""
    for process in processes:
        process.start()
    try:
        with contextlib.ExitStack() as stack:
            for process in processes:
                stack.enter_context(contextlib.contextmanager(serving)(process))
            yield processes
    finally:
        # Those whose wait failed before the others were taken over.
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                stop_with_its_tree(process)


def stop_with_its_tree(process: ServerProcess) -> None:
    """Stops a server nobody used, and every process it started."""
    children = process.descendants()
    process.stop()
    assert_all_gone(children)


def _served(process: ServerProcess, may_be_killed: bool) -> Iterator[ServerProcess]:
    if process.process is None:  # else started ahead of its fixture
        process.start()
    try:
        process.wait_serving()
        yield process
    finally:
        children = process.descendants()
        alive_now = process.process is not None and process.process.poll() is None
        if alive_now or not may_be_killed:
            code = process.stop()
            assert may_be_killed or code == 0, \
                f"server exited with {code}; see {process.log_path}"
        assert_all_gone(children)
