"""A request that does not parse is answered as what it is: not a valid message, with
protobuf's reason, whatever the cause (binary garbage, or a string that is not UTF-8)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError

from synthqa.server.grpc_api.parsing import LenientRegistration, parsed
from synthqa.server.pipeline.errors import InvalidArgument
from synthqa.v1 import synthqa_pb2 as pb

from ..helpers import violations


class CapturingServer:
    """Keeps the handlers LenientRegistration registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers.update(handlers)


def chunk_document_deserializer() -> Any:
    server = CapturingServer()
    handler = grpc.unary_unary_rpc_method_handler(
        lambda request, context: None, request_deserializer=pb.ChunkDocumentRequest.FromString)
    LenientRegistration(server).add_registered_method_handlers(  # type: ignore[arg-type]
        "synthqa.v1.SynthQAService", {"ChunkDocument": handler})
    return server.handlers["ChunkDocument"].request_deserializer


@pytest.mark.parametrize("data", [
    b"\xff\xff\xff\xff\xff",  # garbage
    b"\x0a\x02\xff\xfe",  # text: the bytes FF FE, not UTF-8
])
def test_a_request_that_does_not_parse_is_not_a_valid_message(data: bytes) -> None:
    with pytest.raises(DecodeError) as decoding:
        pb.ChunkDocumentRequest.FromString(data)
    with pytest.raises(InvalidArgument) as caught:
        parsed(chunk_document_deserializer()(data))
    description = violations(caught.value)["request"]
    assert description.startswith("the request is not a valid SynthQAService message ("
                                  f"{decoding.value})")
    assert "or hold a string field that is not UTF-8" in description


def test_a_request_that_parses_is_passed_on() -> None:
    request = pb.ChunkDocumentRequest(text="Lighthouses guide ships.")
    assert parsed(chunk_document_deserializer()(request.SerializeToString())) == request
