"""gRPC's own retries in the client's channel, against a stand-in server on a free port: a
call turned away with UNAVAILABLE is tried again after the server's pushback; other errors
are not retried. Each test runs with both clients."""

from __future__ import annotations

import grpc
import pytest

from synthqa.client import SynthQAError
from synthqa.server.grpc_api.status import RETRY_PUSHBACK_KEY, to_grpc_status
from synthqa.server.pipeline.errors import InvalidArgument, ResourceExhausted, Unavailable
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc


class TurnsAway(pb_grpc.SynthQAServiceServicer):
    """Answers GetServerInfo only after `refusals` calls failed with `error`."""

    def __init__(self, refusals: int, error: Exception) -> None:
        self.refusals = refusals
        self.error = error
        self.attempts = 0

    def GetServerInfo(self, request: pb.GetServerInfoRequest,  # noqa: N802 - the proto's name
                      context: grpc.ServicerContext) -> pb.GetServerInfoResponse:
        self.attempts += 1
        if self.attempts <= self.refusals:
            assert isinstance(self.error, Unavailable | InvalidArgument)
            context.abort_with_status(to_grpc_status(self.error))
        return pb.GetServerInfoResponse(model="stand-in")


def test_unavailable_is_retried_after_the_servers_pushback(serve, connect) -> None:  # noqa: ANN001
    servicer = TurnsAway(2, Unavailable("the engine is warming up", retry_after_seconds=0.2))
    with connect(serve(servicer), timeout=30) as client:
        assert client.server_info().model == "stand-in"
    assert servicer.attempts == 3


def test_other_errors_are_not_retried(serve, connect) -> None:  # noqa: ANN001
    servicer = TurnsAway(1, InvalidArgument.single("options", "bad"))
    with connect(serve(servicer), timeout=30) as client, \
            pytest.raises(SynthQAError) as refused:
        client.server_info()
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert servicer.attempts == 1


def test_the_server_sends_retry_info_as_pushback_only_for_unavailable() -> None:
    unavailable = to_grpc_status(Unavailable("restarting", retry_after_seconds=5))
    assert (RETRY_PUSHBACK_KEY, "5000") in unavailable.trailing_metadata
    exhausted = to_grpc_status(ResourceExhausted("server memory", "full", 10))
    assert RETRY_PUSHBACK_KEY not in dict(exhausted.trailing_metadata)

