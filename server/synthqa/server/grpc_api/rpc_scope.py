"""Every RPC's outer layer: the domain's errors become gRPC statuses with details, the status
goes on the RPC's server span and into the metrics, and one access line is logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ..pipeline.errors import ServiceError
from ..pipeline.events import DocumentCompleted, GenerationEvent, PairGenerated
from .status import internal_status, to_grpc_status

log = logging.getLogger(__name__)
access_log = logging.getLogger("synthqa.access")


class RpcMetrics(Protocol):
    def rpc_done(self, method: str, code: str, seconds: float) -> None: ...


@dataclass
class RpcRecord:
    method: str
    peer: str
    started: float = field(default_factory=time.monotonic)
    code: grpc.StatusCode = grpc.StatusCode.OK
    documents: int = 0
    pairs: int = 0

    def count(self, event: GenerationEvent) -> None:
        if isinstance(event, PairGenerated):
            self.pairs += 1
        elif isinstance(event, DocumentCompleted):
            self.documents += 1


class RpcScope:
    def __init__(self, metrics: RpcMetrics | None = None) -> None:
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def __call__(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[RpcRecord]:
        record = RpcRecord(method, context.peer())
        try:
            yield record
        except ServiceError as error:
            status = to_grpc_status(error)
            self._fail(record, status.code, error.message)
            await context.abort_with_status(status)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                self._fail(record, grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed")
            else:
                self._fail(record, grpc.StatusCode.CANCELLED, "the client cancelled the call")
            raise
        except Exception:
            log.exception("unexpected error in a call")
            self._fail(record, grpc.StatusCode.INTERNAL, "internal server error")
            await context.abort_with_status(internal_status("internal server error"))
        finally:
            self._finish(record)

    @staticmethod
    def _fail(record: RpcRecord, code: grpc.StatusCode, description: str) -> None:
        record.code = code
        span = trace.get_current_span()
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {description}"))

    def _finish(self, record: RpcRecord) -> None:
        seconds = time.monotonic() - record.started
        if self._metrics is not None:
            self._metrics.rpc_done(record.method, record.code.name, seconds)
        access_log.info(
            "%s peer=%s code=%s duration=%.3fs documents=%d pairs=%d", record.method,
            record.peer, record.code.name, seconds, record.documents, record.pairs,
            extra={"rpc_method": record.method, "peer": record.peer,
                   "code": record.code.name, "duration_seconds": round(seconds, 6),
                   "documents": record.documents, "pairs": record.pairs})
