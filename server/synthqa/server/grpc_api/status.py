"""Maps the service's errors to gRPC statuses with google.rpc details."""

from __future__ import annotations

import typing

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..pipeline.errors import InvalidArgument, ResourceExhausted, ServiceError, Unavailable

RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_grpc_status(error: ServiceError) -> grpc.Status:
    details = []
    if isinstance(error, InvalidArgument):
        code = code_pb2.INVALID_ARGUMENT
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, ResourceExhausted):
        code = code_pb2.RESOURCE_EXHAUSTED
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=error.subject, description=error.description
                        )
                    ]
                )
            )
        )
    else:
        assert isinstance(error, Unavailable), type(error)
        code = code_pb2.UNAVAILABLE
    pushback: tuple[tuple[str, str], ...] = ()
    if isinstance(error, ResourceExhausted | Unavailable) and error.retry_after_seconds:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        if code == code_pb2.UNAVAILABLE:
            # The same delay as gRPC's retry pushback, which clients' built-in retries obey.
            pushback = ((RETRY_PUSHBACK_KEY, str(int(error.retry_after_seconds * 1000))),)
    status = rpc_status.to_status(
        status_pb2.Status(code=code, message=error.message, details=details))
    return typing.cast(grpc.Status, status._replace(
        trailing_metadata=tuple(status.trailing_metadata) + pushback))


def internal_status(message: str) -> grpc.Status:
    return typing.cast(grpc.Status, rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INTERNAL, message=message)))


def cut_by_client(context: grpc.aio.ServicerContext[typing.Any, typing.Any],
                  ) -> tuple[grpc.StatusCode, str]:
    """Why a call ended before its handler did: its deadline, or the client's cancel."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed"
    return grpc.StatusCode.CANCELLED, "the client cancelled the call"
