"""Limits that keep one client from hurting the others: calls open per client address, and a
watch over open streams that cancels a call its client has left unread too long, or that has
run too long. A cancelled call's engine work is aborted as for any cancellation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from ..pipeline.errors import ResourceExhausted

log = logging.getLogger(__name__)

# How long a client over its call limit is asked to wait: calls end all the time.
CALLS_RETRY_AFTER_SECONDS = 1.0
WATCH_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class CallLimits:
    max_calls_per_client: int
    max_unread_seconds: float
    max_call_seconds: float


@dataclass(eq=False)
class WatchedCall:
    """A call's state as the watch sees it."""

    client: str
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[object] | None = None
    # Where the watch puts its reason, so the client gets it as the call's status.
    context: grpc.aio.ServicerContext[object, object] | None = None
    # Since when an event has waited for the client to take it; None while nothing waits.
    waiting_since: float | None = None
    # Why the watch cut the call: its status and description.
    cut: tuple[grpc.StatusCode, str] | None = None


def client_address(peer: str) -> str:
    """`ipv4:10.0.0.7:51234` → `ipv4:10.0.0.7`: one client, whatever its ports."""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


class CallGuard:
    def __init__(self, limits: CallLimits) -> None:
        self.limits = limits
        self._open_per_client: Counter[str] = Counter()
        self._watched: set[WatchedCall] = set()
        self._cutting: set[asyncio.Task[None]] = set()

    def admit(self, call: WatchedCall) -> None:
        """Count the call against its client, or raise RESOURCE_EXHAUSTED."""
        if self._open_per_client[call.client] >= self.limits.max_calls_per_client:
            raise ResourceExhausted(
                "calls per client",
                f"{call.client} has {self.limits.max_calls_per_client} calls open, the most "
                "one client may; send more documents on an open Generate stream, or wait for "
                "a call to end", retry_after_seconds=CALLS_RETRY_AFTER_SECONDS)
        self._open_per_client[call.client] += 1
        self._watched.add(call)

    def release(self, call: WatchedCall) -> None:
        if call in self._watched:
            self._watched.discard(call)
            self._open_per_client[call.client] -= 1
            if not self._open_per_client[call.client]:
                del self._open_per_client[call.client]

    def open_calls(self, client: str) -> int:
        return self._open_per_client[client]

    async def watch(self) -> None:
        """Runs for the server's life."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        limits = self.limits
        for call in list(self._watched):
            if call.cut is not None or call.task is None or call.task.done():
                continue
            if call.waiting_since is not None and \
                    now - call.waiting_since > limits.max_unread_seconds:
                call.cut = (grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"the client read nothing for {limits.max_unread_seconds:g} s "
                            "(max_unread_seconds); the call was cancelled")
            elif now - call.started > limits.max_call_seconds:
                call.cut = (grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the call ran past {limits.max_call_seconds:g} s "
                            "(max_call_seconds); it was cancelled")
            else:
                continue
            log.warning("cancelling a call of %s: %s", call.client, call.cut[1])
            self._cutting.add(asyncio.create_task(self._cut(call)))

    async def _cut(self, call: WatchedCall) -> None:
        """The status goes out first (gRPC sends it after the events already queued, so a
        client that reads again learns why), then the handler is cancelled, which aborts the
        call's engine work."""
        assert call.cut is not None and call.task is not None
        if call.context is not None:
            status = asyncio.create_task(call.context.abort(*call.cut))
            status.add_done_callback(_quietly)
            await asyncio.sleep(0)  # let the status be queued before the cancellation
        call.task.cancel()
        self._cutting.discard(asyncio.current_task())



def _quietly(task: asyncio.Task[object]) -> None:
    # abort() raises AbortError in the task that called it, by design; here that is the end.
    if not task.cancelled():
        task.exception()
