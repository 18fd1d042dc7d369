"""The grpc.aio server: the synthqa handlers, grpc.health.v1, reflection, message caps and
keepalive, and the health status the lifecycle sets."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..pipeline.service import GenerationService
from .parsing import LenientRegistration
from .rpc_scope import RpcScope
from .servicer import SynthQAHandlers

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SynthQAService"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class Health:
    """grpc.health.v1 in two parts, as liveness and readiness probes want them: the whole
    server ("") is SERVING from the moment it listens until it shuts down, engine restarts
    included (the process is alive and recovering); the synthqa service is SERVING only while
    the engine is up and warm (ready for work)."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()

    async def listening(self) -> None:
        await self.servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.not_serving()

    async def serving(self) -> None:
        await self.servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

    async def not_serving(self) -> None:
        await self.servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def shutting_down(self) -> None:
        """NOT_SERVING for both, for good: later status changes are ignored."""
        await self.servicer.enter_graceful_shutdown()


def build_grpc_server(
    service: GenerationService, health_status: Health, options: list[tuple[str, int]],
    *, interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    rpc_scope: RpcScope | None = None,
) -> grpc.aio.Server:
    server = grpc.aio.server(options=[*options, ("grpc.so_reuseport", 0)],
                             interceptors=list(interceptors) or None)
    pb_grpc.add_SynthQAServiceServicer_to_server(
        SynthQAHandlers(service, rpc_scope), LenientRegistration(server))  # type: ignore[arg-type]
    health_pb2_grpc.add_HealthServicer_to_server(health_status.servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], server)
    return server


def build_health_server(health_status: Health) -> grpc.aio.Server:
    """A plaintext listener with grpc.health.v1 alone, for probes that speak neither TLS nor
    tokens (kubelet's gRPC probes). It reveals only the serving status."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_status.servicer, server)
    return server


def message_size_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
