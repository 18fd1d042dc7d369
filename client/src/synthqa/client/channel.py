"""What both clients share about the connection: channel options and the readiness check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# gRPC's own retries for the unary calls, on UNAVAILABLE only (an engine warming up or
# restarting, a server shutting down, a lost connection). The server's RetryInfo delay also
# goes out as gRPC's retry pushback, which these retries obey. Not the streaming calls: with
# GenerateDocument retried, a call refused by a draining server hung past its deadline here
# (grpcio 1.85); their lost chunks are retried by the client itself (retry.py).
RETRIED_METHODS = ("GetServerInfo", "ChunkDocument")
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.5s",
    "maxBackoff": "10s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "synthqa.v1.SynthQAService", "method": m} for m in RETRIED_METHODS],
    "retryPolicy": RETRY_POLICY,
}]})

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", SERVICE_CONFIG),
]

# Readiness: the server reports SERVING for its service once the engine is up and warm.
READY_CHECK = health_pb2.HealthCheckRequest(service="synthqa.v1.SynthQAService")
READY_CHECK_TIMEOUT_SECONDS = 2.0
READY_POLL_SECONDS = 0.2


def is_serving(reply: health_pb2.HealthCheckResponse) -> bool:
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def not_ready(target: str, within: float) -> TimeoutError:
    return TimeoutError(f"{target} did not become SERVING within {within} s")


@dataclass(frozen=True)
class Credentials:
    """How the client proves itself and checks the server. `tls` with no `ca_file` trusts the
    system's roots; `cert_file` and `key_file` are the client's certificate for mutual TLS;
    `token` goes with every call as `authorization: Bearer <token>`."""

    tls: bool = False
    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")

    @property
    def secure(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file), private_key=read(self.key_file),
            certificate_chain=read(self.cert_file))

    def call_metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None
