"""Every RPC's outer layer: the domain's errors become gRPC statuses with details, the status
goes on the RPC's server span and into the metrics, and one access line is logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ..pipeline.errors import ServiceError
from ..pipeline.events import DocumentCompleted, GenerationEvent, RecordGenerated
from .call_limits import CallGuard, WatchedCall, client_address
from .status import cut_by_client, internal_status, to_grpc_status

log = logging.getLogger(__name__)
access_log = logging.getLogger("synthqa.access")


class RpcMetrics(Protocol):
    def rpc_done(self, method: str, code: str, seconds: float) -> None: ...


@dataclass
class AccessEntry:
    """One RPC as its access-log line and metrics tell it: who, how it ended, what it sent."""

    method: str
    peer: str
    started: float = field(default_factory=time.monotonic)
    code: grpc.StatusCode = grpc.StatusCode.OK
    documents: int = 0
    records: int = 0
    # Counted against its client and watched (calls that generate or chunk); None otherwise.
    call: WatchedCall | None = None
    # The handler ran to its end (an error included); False when the call was cut short.
    handler_ended: bool = False

    def handing_over(self) -> None:
        """An event is about to be handed to gRPC: from now, a wait is the client's."""
        if self.call is not None:
            self.call.waiting_since = time.monotonic()

    def handed_over(self) -> None:
        if self.call is not None:
            self.call.waiting_since = None

    def count(self, event: GenerationEvent) -> None:
        if isinstance(event, RecordGenerated):
            self.records += 1
        elif isinstance(event, DocumentCompleted):
            self.documents += 1


# GetServerInfo is cheap and monitoring polls it: it is neither counted nor watched.
GUARDED_METHODS = frozenset({"ChunkDocument", "GenerateDocument", "Generate"})


class RpcScope:
    def __init__(self, metrics: RpcMetrics | None = None,
                 guard: CallGuard | None = None) -> None:
        self._metrics = metrics
        self.guard = guard

    @contextlib.asynccontextmanager
    async def __call__(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[AccessEntry]:
        entry = AccessEntry(method, context.peer())
        # The RPC's server span (a no-op span with tracing off), held here: a cancelled stream's
        # generators may be closed after the call's context is gone.
        span = trace.get_current_span()
        # Fires once the call is over, however it ended: a client's cancellation can land in
        # gRPC's own code, outside these handlers, and then no exception passes through here.
        def done(_: grpc.aio.ServicerContext[Any, Any]) -> None:
            self._finish(entry, span, context)

        context.add_done_callback(done)  # type: ignore[arg-type] # the stubs' nominal type
        try:
            if self.guard is not None and method in GUARDED_METHODS:
                call = WatchedCall(client_address(entry.peer), task=asyncio.current_task(),
                                   context=context)
                self.guard.admit(call)
                entry.call = call
            yield entry
            entry.handler_ended = True
        except ServiceError as error:
            entry.handler_ended = True
            status = to_grpc_status(error)
            # The status says all a client needs. The traceback's finished frames would hold the
            # call's locals (a refused document's tokens, say) until the garbage collector
            # reaches them: grpc.aio keeps the abort below, whose context is this error, on the
            # call, in a reference cycle.
            traceback.clear_frames(error.__traceback__)
            _fail(entry, span, status.code, error.message)
            await context.abort_with_status(status)
        except grpc.aio.AbortError:
            raise
        except (asyncio.CancelledError, GeneratorExit):
            _fail(entry, span, *_why_cut_short(entry, context))
            raise
        except Exception:
            entry.handler_ended = True
            log.exception("unexpected error in a call")
            _fail(entry, span, grpc.StatusCode.INTERNAL, "internal server error")
            await context.abort_with_status(internal_status("internal server error"))

    def _finish(self, entry: AccessEntry, span: trace.Span,
                context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.guard is not None and entry.call is not None:
            self.guard.release(entry.call)
        # Over before its handler ended: cut short, whatever gRPC's own flag says yet (it can
        # still read "not cancelled" when the client's cancellation lands in gRPC's send).
        if entry.code is grpc.StatusCode.OK and (
                not entry.handler_ended or context.cancelled()
                or (entry.call is not None and entry.call.cut)):
            _fail(entry, span, *_why_cut_short(entry, context))
        seconds = time.monotonic() - entry.started
        if self._metrics is not None:
            self._metrics.rpc_done(entry.method, entry.code.name, seconds)
        with trace.use_span(span, end_on_exit=False):  # the line carries the call's trace
            access_log.info(
                "%s peer=%s code=%s duration=%.3fs documents=%d pairs=%d", entry.method,
                entry.peer, entry.code.name, seconds, entry.documents, entry.records,
                extra={"rpc_method": entry.method, "peer": entry.peer,
                       "code": entry.code.name, "duration_seconds": round(seconds, 6),
                       "documents": entry.documents,
                       # "pairs": the access line's field name, kept for log readers.
                       "pairs": entry.records})


def _why_cut_short(entry: AccessEntry, context: grpc.aio.ServicerContext[Any, Any],
                   ) -> tuple[grpc.StatusCode, str]:
    if entry.call is not None and entry.call.cut is not None:
        return entry.call.cut
    return cut_by_client(context)


def _fail(entry: AccessEntry, span: trace.Span, code: grpc.StatusCode, description: str) -> None:
    if entry.code is not grpc.StatusCode.OK:
        return  # the first reason stands
    entry.code = code
    _mark(span, code, description)


def _mark(span: trace.Span, code: grpc.StatusCode, description: str) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    span.set_status(Status(StatusCode.ERROR, f"{code.name}: {description}"))
