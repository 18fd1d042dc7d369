"""A stand-in synthqa server on a free port, for client tests that script the server's side,
and both clients behind one set of methods."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from synthqa.client import AsyncSynthQAClient, Document, SynthQAClient
from synthqa.client.channel import READY_CHECK
from synthqa.v1 import synthqa_pb2 as pb
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


class AsyncClientBlocking:
    """The asyncio client behind the blocking client's methods, on a loop of its own, so one
    test body exercises both clients."""

    def __init__(self, target: str, **settings: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = self._runner.run(self._connect(target, settings))

    @staticmethod
    async def _connect(target: str, settings: dict[str, Any]) -> AsyncSynthQAClient:
        return AsyncSynthQAClient(target, **settings)

    def __enter__(self) -> AsyncClientBlocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self._runner.run(self._client.close())
        self._runner.close()

    def server_info(self) -> pb.GetServerInfoResponse:
        return self._runner.run(self._client.server_info())

    def generate(self, documents: Iterable[Document], **options: Any
                 ) -> Iterator[pb.GenerateResponse]:
        async def collect() -> list[pb.GenerateResponse]:
            return [event async for event in self._client.generate(documents, **options)]
        return iter(self._runner.run(collect()))


Connect = Callable[..., SynthQAClient | AsyncClientBlocking]


@pytest.fixture(params=["blocking", "asyncio"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """Opens a client of each kind in turn (as a context manager): SynthQAClient, and
    AsyncSynthQAClient driven through the same methods."""
    return SynthQAClient if request.param == "blocking" else AsyncClientBlocking
