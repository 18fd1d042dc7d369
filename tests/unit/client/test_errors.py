"""The client's errors: the gRPC status and its details, whatever the call ended with."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, status_pb2

from synthqa.client.errors import SynthQAError


def test_details_naming_another_code_than_the_call_are_left_out() -> None:
    """The server failed the call (INVALID_ARGUMENT, with details) as the deadline passed: the
    client saw DEADLINE_EXCEEDED. The error is the call's, not a ValueError from the details."""
    class Raced(grpc.RpcError, grpc.Call):  # type: ignore[misc]
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.DEADLINE_EXCEEDED

        def details(self) -> str:
            return "Deadline Exceeded"

        def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad")
            return (("grpc-status-details-bin", status.SerializeToString()),)

        def initial_metadata(self) -> None: ...
        def is_active(self) -> bool: return False
        def time_remaining(self) -> None: ...
        def cancel(self) -> bool: return False
        def add_callback(self, callback: object) -> bool: return False

    error = SynthQAError.from_rpc_error(Raced())
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED and not error.field_violations


def test_grpcs_own_internal_error_on_a_broken_write_is_a_lost_server() -> None:
    """grpc.aio reports a request write into a call that already ended (the replica was killed
    while the client still sent documents) as INTERNAL "Internal error from Core": the client
    treats it as UNAVAILABLE, so its retries take over. The server's own INTERNAL stays."""
    class Broken(grpc.RpcError):  # type: ignore[misc]
        def __init__(self, details: str) -> None:
            self._details = details

        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.INTERNAL

        def details(self) -> str:
            return self._details

    lost = SynthQAError.from_rpc_error(Broken("Internal error from Core"))
    assert lost.code == grpc.StatusCode.UNAVAILABLE
    assert "Internal error from Core" in lost.message
    own = SynthQAError.from_rpc_error(Broken("the model's output could not be parsed"))
    assert own.code == grpc.StatusCode.INTERNAL
