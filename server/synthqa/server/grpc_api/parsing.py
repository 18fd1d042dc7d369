"""Request parsing that cannot fail inside grpc.

grpc parses a request before the handler runs; a message that does not parse (bytes that are
corrupt or not protobuf, or a string field that is not UTF-8 from a client in another
language) would end the call with UNKNOWN and a traceback in the log. Registered through
`LenientRegistration`, such a message reaches the handler as an `UnparsableRequest`, which the
handler answers with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from ..pipeline.errors import InvalidArgument

Message = TypeVar("Message")


@dataclass(frozen=True)
class UnparsableRequest:
    reason: str


def parsed(request: Message | UnparsableRequest) -> Message:
    """The request, or INVALID_ARGUMENT (field `request`) if it did not parse."""
    if isinstance(request, UnparsableRequest):
        # Not UTF-8 is only one cause among several; protobuf's reason says which it was.
        raise InvalidArgument.single(
            "request", f"the request is not a valid SynthQAService message ({request.reason}); "
            "it may be corrupt or not protobuf at all, or hold a string field that is not UTF-8")
    return request


def _lenient(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as error:
            return UnparsableRequest(str(error))

    return deserialize


class LenientRegistration:
    """Stands in for the server in a generated `add_*Servicer_to_server` call and registers
    the same handlers with lenient parsing."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: the lenient generic handler is built from the registered handlers."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        lenient = {
            name: handler._replace(  # type: ignore[attr-defined]
                request_deserializer=_lenient(handler.request_deserializer))
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, lenient),))
        self._server.add_registered_method_handlers(service, lenient)
