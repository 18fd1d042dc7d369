"""What both clients share about the connection: channel options and the readiness check."""

from __future__ import annotations

from grpc_health.v1 import health_pb2

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
]

# Readiness: the server reports SERVING for its service once the engine is up and warm.
READY_CHECK = health_pb2.HealthCheckRequest(service="synthqa.v1.SynthQAService")
READY_CHECK_TIMEOUT_SECONDS = 2.0
READY_POLL_SECONDS = 0.2


def is_serving(reply: health_pb2.HealthCheckResponse) -> bool:
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def not_ready(target: str, within: float) -> TimeoutError:
    return TimeoutError(f"{target} did not become SERVING within {within} s")
