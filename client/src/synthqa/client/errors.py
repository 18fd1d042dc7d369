"""Errors raised by the client: the gRPC status with its google.rpc details unpacked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

# grpc.aio's words when a request message cannot be written because the call has already
# ended, for instance because the server went away (grpc/grpc#36066): the call's real status
# is lost and INTERNAL reported instead. The synthqa server never sends this text.
GRPC_LOCAL_WRITE_FAILURE = "Internal error from Core"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class SynthQAError(Exception):
    """A call failed. `code` is the gRPC status code; `field_violations` lists bad fields for
    INVALID_ARGUMENT, `quota_violations` the limits hit for RESOURCE_EXHAUSTED, and
    `retry_after` the seconds the server asks a client to wait before trying again (None when
    it gives no hint: the same request would fail again, or the server cannot tell)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: tuple[FieldViolation, ...] = (),
        quota_violations: tuple[FieldViolation, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations
        self.quota_violations = quota_violations
        self.retry_after = retry_after
        # grpc.aio lost the call's real status: the server may have refused the call (a
        # missing token, say) while the client was writing, or gone away (grpc/grpc#36066).
        self.cut_while_sending = False

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> SynthQAError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        if code == grpc.StatusCode.INTERNAL and message == GRPC_LOCAL_WRITE_FAILURE:
            # Not the server's INTERNAL: the connection broke while the client was still
            # sending. Reported (and retried) as the lost server it most likely was.
            lost = cls(grpc.StatusCode.UNAVAILABLE,
                       "the call broke while the client was still sending documents, most "
                       f"likely because the server went away (gRPC said: {message})")
            lost.cut_while_sending = True
            return lost
        fields: list[FieldViolation] = []
        quotas: list[FieldViolation] = []
        retry_after: float | None = None
        status = _rich_status(error, code)
        details: list[Any] = list(status.details) if status else []
        for detail in details:
            bad_request = error_details_pb2.BadRequest()
            quota = error_details_pb2.QuotaFailure()
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(bad_request):
                fields += [FieldViolation(v.field, v.description)
                           for v in bad_request.field_violations]
            elif detail.Unpack(quota):
                quotas += [FieldViolation(v.subject, v.description) for v in quota.violations]
            elif detail.Unpack(retry):
                retry_after = retry.retry_delay.ToNanoseconds() / 1e9
        return cls(code, message or "", tuple(fields), tuple(quotas), retry_after)


_DETAILS_KEY = "grpc-status-details-bin"


def _rich_status(error: grpc.RpcError, code: grpc.StatusCode) -> status_pb2.Status | None:
    """The google.rpc.Status the server sent in the trailers, read the same way from a blocking
    call's error and from grpc.aio's AioRpcError (which is no grpc.Call)."""
    trailers = getattr(error, "trailing_metadata", None)
    for key, value in (trailers() if callable(trailers) else None) or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            # Details naming another code than the call ended with: the server failed the
            # call as the deadline passed or the client cancelled. The call's own code stands.
            return status if status.code == code.value[0] else None
    return None
