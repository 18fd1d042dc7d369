"""What both clients share about the connection: channel options and the readiness check."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
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
SERVICE_CONFIG = json.dumps({
    # Calls spread over every address a target resolves to: replicas behind a dns:/// name
    # or a list of targets.
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "synthqa.v1.SynthQAService", "method": m} for m in RETRIED_METHODS],
        "retryPolicy": RETRY_POLICY,
    }],
})

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", SERVICE_CONFIG),
]

Target = str | Sequence[str]


def channel_target(target: Target) -> tuple[str, list[tuple[str, str]]]:
    """The gRPC target and extra channel options for one target (host:port or any gRPC
    target, such as dns:///name:port) or several host:port replicas. Several become one
    ipv4: or ipv6: address list, resolved now; their first host is the name TLS checks, so
    the replicas' certificates must all be valid for it. For replicas that come and go, use
    one dns:/// name instead, which gRPC re-resolves."""
    if isinstance(target, str):
        return target, []
    if not target:
        raise ValueError("no target given")
    if len(target) == 1:
        return target[0], []
    addresses = [_resolve(one) for one in target]
    families = {family for family, _ in addresses}
    if len(families) > 1:
        raise ValueError("the targets mix IPv4 and IPv6 addresses; give one dns:/// name")
    scheme = "ipv6" if socket.AF_INET6 in families else "ipv4"
    authority = target[0]
    return f"{scheme}:{','.join(address for _, address in addresses)}", [
        ("grpc.default_authority", authority)]


def describe_target(target: Target) -> str:
    return target if isinstance(target, str) else ",".join(target)


def _resolve(host_port: str) -> tuple[int, str]:
    host, separator, port = host_port.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ValueError(f"target {host_port!r} is not host:port")
    host = host.strip("[]")
    try:
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"cannot resolve {host}: {error.strerror}") from None
    # IPv4 first: the server's default --host 0.0.0.0 listens on IPv4 only.
    family, _, _, _, sockaddr = min(found, key=lambda entry: entry[0] != socket.AF_INET)
    if family == socket.AF_INET6:
        return family, f"[{sockaddr[0]}]:{port}"
    return family, f"{sockaddr[0]}:{port}"


# Readiness: the server reports SERVING for its service once the engine is up and warm.
READY_CHECK = health_pb2.HealthCheckRequest(service="synthqa.v1.SynthQAService")
READY_CHECK_TIMEOUT_SECONDS = 2.0
READY_POLL_SECONDS = 0.2


def is_serving(reply: health_pb2.HealthCheckResponse) -> bool:
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def not_ready(target: str, within: float) -> TimeoutError:
    return TimeoutError(f"{target} did not become SERVING within {within} s")


_NAMED_CHARACTERS = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}


def token_problem(token: str) -> str | None:
    """Why gRPC cannot send the token, or None. It goes in a metadata value, which only takes
    printable ASCII; gRPC itself would fail every call with a bare INTERNAL "Invalid
    metadata". The message names the character and its place, never the token."""
    for index, character in enumerate(token):
        if not " " <= character <= "~":
            name = _NAMED_CHARACTERS.get(character, f"U+{ord(character):04X}")
            hint = (" (the end of a line read with the token from a file?)"
                    if index == len(token) - 1 and character in "\r\n" else "")
            return (f"the token's character {index + 1} of {len(token)} is {name}{hint}; "
                    "gRPC metadata takes only printable ASCII (0x20-0x7E)")
    return None


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
        if self.token and (problem := token_problem(self.token)):
            raise ValueError(problem)

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
