"""Who may call: TLS or mutual TLS with grpcio's own credentials, and bearer tokens checked by a
server interceptor. Both re-read their files on SIGHUP; open connections and calls go on."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

# Probes must work without a token; everything else needs one.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
REFUSAL = "this server needs a valid bearer token: send metadata 'authorization: Bearer <token>'"


class SecurityConfigError(ValueError):
    """A certificate, key or token file that cannot be used."""


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path
    # Set: clients must present a certificate signed by this CA (mutual TLS).
    client_ca_file: Path | None = None


class ServerTls:
    """The server's TLS credentials. `reload()` reads the files again; gRPC asks for the new
    configuration at the next handshake, so new connections get it and open ones keep theirs."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._initial = self._read()
        self._pending: grpc.ServerCertificateConfiguration | None = None

    @property
    def mutual(self) -> bool:
        return self.files.client_ca_file is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._next_configuration,  # type: ignore[arg-type] # gRPC takes None: no change
            require_client_authentication=self.mutual)

    def reload(self) -> None:
        """Raises SecurityConfigError (and keeps serving the old files) if the new ones are bad."""
        configuration = self._read()
        with self._lock:
            self._pending = configuration

    def _next_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each handshake, on its own threads: None keeps the current one.
        with self._lock:
            configuration, self._pending = self._pending, None
        return configuration

    def _read(self) -> grpc.ServerCertificateConfiguration:
        files = self.files
        _check_pair(files.cert_file, files.key_file, files.client_ca_file)
        client_ca = files.client_ca_file.read_bytes() if files.client_ca_file else None
        return grpc.ssl_server_certificate_configuration(
            [(files.key_file.read_bytes(), files.cert_file.read_bytes())],
            root_certificates=client_ca)


def _check_pair(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
    """The files are readable PEM and the key matches the certificate: found now, not at the
    first client's handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
        if client_ca_file is not None:
            context.load_verify_locations(client_ca_file)
    except (OSError, ssl.SSLError) as error:
        raise SecurityConfigError(
            f"cannot use {cert_file}, {key_file}"
            + (f" and {client_ca_file}" if client_ca_file else "") + f": {error}") from None


class BearerTokens:
    """The tokens in a file, one per line (blank lines and '#' comments skipped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tokens = self._read()

    def reload(self) -> None:
        self._tokens = self._read()

    def accepts(self, presented: str) -> bool:
        # Every token is compared, in constant time each, so the time taken says nothing about
        # which token (or how much of one) matched.
        candidate = presented.encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(token, candidate)
        return matched

    def _read(self) -> tuple[bytes, ...]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise SecurityConfigError(f"cannot read tokens from {self.path}: {error}") from None
        tokens = tuple(line.strip().encode() for line in lines
                       if line.strip() and not line.lstrip().startswith("#"))
        if not tokens:
            raise SecurityConfigError(f"{self.path} holds no token")
        return tokens


def bearer_token(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED, with no hint of a valid token, for any call without one; health
    checking stays open for probes."""

    def __init__(self, tokens: BearerTokens) -> None:
        self._tokens = tokens

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        token = bearer_token(handler_call_details.invocation_metadata)
        if token is not None and self._tokens.accepts(token):
            return handler
        log.info("refused %s: %s bearer token", method, "no" if token is None else "a wrong")
        return _refusing(handler)


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


def _refusing(handler: Any) -> Any:
    """The same kind of handler as `handler`, refusing before it reads anything."""
    kind = ("stream_stream" if handler.request_streaming else "unary_stream") \
        if handler.response_streaming else \
        ("stream_unary" if handler.request_streaming else "unary_unary")
    return handler._replace(**{kind: _refuse})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SecuritySettings:
    tls: TlsFiles | None = None
    token_file: Path | None = None


class ServerSecurity:
    """What the flags ask for, read and checked at start-up (before the engine loads)."""

    def __init__(self, settings: SecuritySettings) -> None:
        self.tls = ServerTls(settings.tls) if settings.tls else None
        self.tokens = BearerTokens(settings.token_file) if settings.token_file else None

    @property
    def reloadable(self) -> bool:
        return self.tls is not None or self.tokens is not None

    @property
    def authenticates(self) -> bool:
        return self.tokens is not None or (self.tls is not None and self.tls.mutual)

    def describe(self) -> str:
        parts = []
        if self.tls is not None:
            parts.append("mutual TLS" if self.tls.mutual else "TLS")
        if self.tokens is not None:
            parts.append("bearer tokens")
        return " and ".join(parts) or "plaintext, no authentication"

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [TokenAuthInterceptor(self.tokens)] if self.tokens is not None else []

    def add_port(self, server: grpc.aio.Server, address: str) -> None:
        if self.tls is not None:
            server.add_secure_port(address, self.tls.credentials())
        else:
            server.add_insecure_port(address)

    def reload(self) -> None:
        """SIGHUP: read the certificate and token files again. A bad file is reported and
        the old one stays in use."""
        for name, source in (("TLS files", self.tls), ("tokens", self.tokens)):
            if source is None:
                continue
            try:
                source.reload()
            except SecurityConfigError as error:
                log.error("SIGHUP: keeping the old %s: %s", name, error)
            else:
                log.info("SIGHUP: %s read again", name)
