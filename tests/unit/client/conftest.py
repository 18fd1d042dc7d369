"""A stand-in synthqa server on a free port, for client tests that script the server's side."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from synthqa.client.channel import READY_CHECK
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ...e2e.serverproc import free_port


@pytest.fixture
def serve() -> Iterator[Callable[[pb_grpc.SynthQAServiceServicer], str]]:
    """Starts a servicer (reporting SERVING to health checks); gives its target."""
    servers: list[grpc.Server] = []

    def start(servicer: pb_grpc.SynthQAServiceServicer) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_SynthQAServiceServicer_to_server(servicer, server)
        health_servicer = health.HealthServicer()
        health_servicer.set(READY_CHECK.service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = free_port()
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)
