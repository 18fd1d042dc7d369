"""The container probe (`synthqa.server.healthcheck`) against a small grpc.health.v1 server of
the test's own: grpcio's HealthServicer on a free loopback port, no engine."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from synthqa.server.grpc_api.server import SERVICE_NAME
from synthqa.server.healthcheck import PORT_VARIABLE, main

from ..paths import REPO

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class HealthServer:
    port: int
    servicer: health.HealthServicer


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield HealthServer(port, servicer)
    finally:
        server.stop(grace=None)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(port: int, *extra: str) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--timeout", "5", *extra]


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    return lines[0]


def test_the_default_service_is_the_servers_own() -> None:
    assert SERVICE_NAME == "synthqa.v1.SynthQAService"
    from synthqa.server import healthcheck

    assert healthcheck.SERVICE_NAME == SERVICE_NAME
    assert healthcheck.DEFAULT_PORT == 50051


def test_serving_exits_0(health_server: HealthServer, capsys: pytest.CaptureFixture[str]) -> None:
    health_server.servicer.set(SERVICE_NAME, SERVING)
    assert main(probe(health_server.port)) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err) == (
        f"healthy: {SERVICE_NAME} is SERVING at 127.0.0.1:{health_server.port}")


def test_not_serving_exits_1(health_server: HealthServer,
                             capsys: pytest.CaptureFixture[str]) -> None:
    health_server.servicer.set(SERVICE_NAME, NOT_SERVING)
    assert main(probe(health_server.port)) == 1
    assert one_line(capsys.readouterr().err) == (
        f"unhealthy: {SERVICE_NAME} is NOT_SERVING at 127.0.0.1:{health_server.port}")


def test_the_service_counts_not_the_whole_server(health_server: HealthServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # grpcio's servicer reports "" (the whole server) SERVING from the start.
    assert main(probe(health_server.port, "--service", "")) == 0
    assert "the server is SERVING" in one_line(capsys.readouterr().err)
    health_server.servicer.set(SERVICE_NAME, NOT_SERVING)
    assert main(probe(health_server.port)) == 1
    assert "NOT_SERVING" in one_line(capsys.readouterr().err)


def test_unknown_service_exits_1(health_server: HealthServer,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    health_server.servicer.set(SERVICE_NAME, SERVING)
    assert main(probe(health_server.port, "--service", "no.such.Service")) == 1
    assert one_line(capsys.readouterr().err) == (
        f"unhealthy: 127.0.0.1:{health_server.port} does not know the service no.such.Service")


def test_shutting_down_exits_1(health_server: HealthServer,
                               capsys: pytest.CaptureFixture[str]) -> None:
    health_server.servicer.set(SERVICE_NAME, SERVING)
    health_server.servicer.enter_graceful_shutdown()
    assert main(probe(health_server.port)) == 1
    assert "is NOT_SERVING" in one_line(capsys.readouterr().err)


def test_nothing_listening_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(probe(port)) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"unhealthy: 127.0.0.1:{port} did not answer: UNAVAILABLE: "), line


def test_port_from_the_environment(health_server: HealthServer,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    health_server.servicer.set(SERVICE_NAME, SERVING)
    monkeypatch.setenv(PORT_VARIABLE, str(health_server.port))
    assert main(["--host", "127.0.0.1"]) == 0
    assert f"at 127.0.0.1:{health_server.port}" in one_line(capsys.readouterr().err)
    # --port wins over the variable.
    assert main(["--host", "127.0.0.1", "--port", str(free_port()), "--timeout", "5"]) == 1
    capsys.readouterr()


def test_bad_arguments_exit_1_not_dockers_reserved_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "not-a-port"])
    assert exit_info.value.code == 1
    assert "--port" in capsys.readouterr().err


def test_runs_as_a_module(health_server: HealthServer) -> None:
    """What the images' HEALTHCHECK runs, in a fresh interpreter: exit code and stderr only."""
    health_server.servicer.set(SERVICE_NAME, SERVING)
    command = [sys.executable, "-m", "synthqa.server.healthcheck", *probe(health_server.port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO,
                            check=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert one_line(result.stderr).startswith("healthy: ")

    health_server.servicer.set(SERVICE_NAME, NOT_SERVING)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO,
                            check=False)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert one_line(result.stderr).startswith("unhealthy: ")
