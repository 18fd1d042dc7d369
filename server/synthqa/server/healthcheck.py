"""A container health probe: `python -m synthqa.server.healthcheck [--port 50051]` (also the
`synthqa-healthcheck` command).

Asks a server's grpc.health.v1 service, in plaintext, for the status of one service and exits 0
only when that is SERVING, 1 otherwise (Docker's HEALTHCHECK reads these codes and reserves 2,
so bad arguments exit 1 too). Each check says its verdict in one line on stderr, which
`docker inspect` shows.

Against a server with TLS on its main port, start the server with `--health-port N` as well:
a second, plaintext listener with grpc.health.v1 alone (tokens alone need no such port: health
checks never need a token). Point this probe at that port (`--port N`, or
SYNTHQA_HEALTHCHECK_PORT=N in the container's environment, since an exec-form HEALTHCHECK has no
shell to expand variables in its arguments).

Imports grpc and the health stubs only, never vLLM or torch, so a check starts in well under a
second.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.v1 import synthqa_pb2

DEFAULT_PORT = 50051
PORT_VARIABLE = "SYNTHQA_HEALTHCHECK_PORT"
SERVICE_NAME = synthqa_pb2.DESCRIPTOR.services_by_name["SynthQAService"].full_name

HEALTHY = 0
UNHEALTHY = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(UNHEALTHY, f"{self.prog}: error: {message}\n")


def _default_port() -> int:
    value = os.environ.get(PORT_VARIABLE, "").strip()
    if not value:
        return DEFAULT_PORT
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"unhealthy: {PORT_VARIABLE}={value!r} is not a port number") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="synthqa-healthcheck",
        description="Exit 0 when the server's grpc.health.v1 reports SERVING for the service, "
        "1 otherwise. Plaintext only: against a TLS server, check its --health-port.",
    )
    parser.add_argument("--host", default="localhost",
                        help="server address (default %(default)s)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port of the server's health service (default ${PORT_VARIABLE}, "
                        f"else {DEFAULT_PORT})")
    parser.add_argument("--service", default=SERVICE_NAME,
                        help="service whose status counts; '' for the whole server "
                        "(default %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the answer (default %(default)s)")
    return parser


def check(target: str, service: str, timeout: float) -> tuple[int, str]:
    """The exit code and the one-line verdict for `service` at `target`."""
    shown = service or "the server"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
            details = " ".join(details.split())
            if code == grpc.StatusCode.NOT_FOUND:
                return UNHEALTHY, f"unhealthy: {target} does not know the service {shown}"
            name = code.name if code is not None else "error"
            return UNHEALTHY, f"unhealthy: {target} did not answer: {name}: {details}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return HEALTHY, f"healthy: {shown} is SERVING at {target}"
    return UNHEALTHY, f"unhealthy: {shown} is {status} at {target}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    port = args.port if args.port is not None else _default_port()
    host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    code, verdict = check(f"{host}:{port}", args.service, args.timeout)
    print(verdict, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
