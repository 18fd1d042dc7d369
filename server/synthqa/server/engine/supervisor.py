"""Keeps an engine running: notices its death, lets the requests that were in it fail, starts
a new one after a backoff, and gives up after too many restarts within a window, so that a
crash loop still ends the server and an orchestrator sees it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .types import EngineDead, EngineDelta, EngineLayout, GenerationEngine, SamplingRequest

log = logging.getLogger(__name__)

HEALTH_CHECK_SECONDS = 0.5


class ManagedEngine(GenerationEngine, Protocol):
    """What the supervisor needs of an engine beyond generating."""

    async def check_health(self) -> None: ...

    async def shutdown(self) -> None: ...


class EngineGaveUp(EngineDead):
    """The engine died once too often; the server is going down."""


@dataclass(frozen=True)
class RestartPolicy:
    # Restarts allowed within `window_seconds`; one more death and the server exits.
    max_restarts: int = 3
    window_seconds: float = 300.0
    first_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0

    def backoff(self, recent_restarts: int) -> float:
        """The wait before a restart: none for the first in the window, then doubling."""
        if recent_restarts == 0:
            return 0.0
        cap = max(self.max_backoff_seconds, self.first_backoff_seconds)
        return min(self.first_backoff_seconds * 2.0 ** (recent_restarts - 1), cap)


class EngineSupervisor:
    """A `GenerationEngine` that outlives the engines behind it. Requests made while a new
    engine starts wait for it; requests that were in a dying engine fail with EngineDead."""

    def __init__(
        self,
        start_engine: Callable[[], ManagedEngine],
        policy: RestartPolicy,
        *,
        health_check_seconds: float = HEALTH_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._start_engine = start_engine
        self._policy = policy
        self._health_check_seconds = health_check_seconds
        self._clock = clock
        self._engine: ManagedEngine | None = None
        # Set while an engine runs, or once the supervisor gave up; clear while restarting.
        self._settled = asyncio.Event()
        self._death_noticed = asyncio.Event()
        self._gave_up = False
        # Until supervise() is cancelled: a death is then final.
        self._supervised = True
        self._restart_times: deque[float] = deque()
        self.restarts = 0

    async def start(self) -> None:
        """Start the first engine. A failure here is the operator's to fix: it is raised, not
        retried."""
        self._engine = await asyncio.to_thread(self._start_engine)
        self._settled.set()

    @property
    def engine(self) -> ManagedEngine:
        if self._engine is None:
            raise RuntimeError("the engine has not been started")
        return self._engine

    # GenerationEngine: the model's facts do not change across restarts.

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    @property
    def max_model_len(self) -> int:
        return self.engine.max_model_len

    @property
    def layout(self) -> EngineLayout:
        return self.engine.layout

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def unfinished_requests(self) -> int:
        return self.engine.unfinished_requests if self._settled.is_set() else 0

    async def generate(
        self, prompt_ids: list[int], request: SamplingRequest, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[EngineDelta, None]:
        await self._settled.wait()
        if self._gave_up:
            raise EngineGaveUp("the engine stopped and the server is shutting down")
        engine = self.engine
        try:
            stream = engine.generate(prompt_ids, request, request_id, trace_headers)
            async with contextlib.aclosing(stream):
                async for delta in stream:
                    yield delta
        except EngineDead:
            self._notice_death(engine)
            raise

    async def abort(self, request_ids: Iterable[str]) -> None:
        if self._settled.is_set() and not self._gave_up:
            with contextlib.suppress(EngineDead):
                await self.engine.abort(request_ids)

    async def check_health(self) -> None:
        await self.engine.check_health()

    # Supervision --------------------------------------------------------------------------

    async def supervise(
        self,
        on_down: Callable[[], Awaitable[None]],
        on_up: Callable[[], Awaitable[None]],
    ) -> None:
        """Watch the engine and replace it when it dies. Returns only by raising
        EngineGaveUp, once the restarts within the window are used up. Cancelled (the server
        is shutting down), it restarts nothing more: a death from then on fails the requests
        in the engine and those waiting for one, rather than leaving them to wait for an
        engine that will not come."""
        try:
            while True:
                await self._wait_for_death()
                self._settled.clear()
                log.error("the engine died (vLLM's log above says why); requests that were in "
                          "it fail, later ones wait for a new engine")
                await on_down()
                await self._shut_down_quietly(self.engine)
                await self._restart()
                self._death_noticed.clear()
                self._settled.set()
                await on_up()
        except asyncio.CancelledError:
            self._supervised = False
            if not self._settled.is_set():
                self._give_up()
            raise

    async def shutdown(self) -> None:
        if self._engine is not None:
            await self._engine.shutdown()

    def _notice_death(self, engine: ManagedEngine) -> None:
        """The first request to see the engine die holds back the ones after it at once,
        instead of letting them fail on the dead engine until the next health check."""
        if engine is self._engine:
            if not self._supervised:
                log.error("the engine died while the server is shutting down: the requests "
                          "still in flight fail")
                self._give_up()
                return
            self._settled.clear()
            self._death_noticed.set()

    def _give_up(self) -> None:
        self._gave_up = True
        self._settled.set()  # wake the waiting requests: they fail now

    async def _wait_for_death(self) -> None:
        while not self._death_noticed.is_set():
            try:
                await self.engine.check_health()
            except EngineDead:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._death_noticed.wait(), self._health_check_seconds)

    async def _restart(self) -> None:
        policy = self._policy
        while True:
            now = self._clock()
            while self._restart_times and now - self._restart_times[0] > policy.window_seconds:
                self._restart_times.popleft()
            recent = len(self._restart_times)
            if recent >= policy.max_restarts:
                self._give_up()
                raise EngineGaveUp(
                    f"the engine died again after {recent} restart(s) within "
                    f"{policy.window_seconds:g} s; not restarting it")
            delay = policy.backoff(recent)
            log.warning("starting a new engine in %.1f s (restart %d of at most %d within %g s)",
                        delay, recent + 1, policy.max_restarts,
                      policy.window_seconds)
            await asyncio.sleep(delay)
            self._restart_times.append(self._clock())
            try:
                self._engine = await self._start_in_thread()
            except Exception as error:
                log.error("starting a new engine failed: %s: %s", type(error).__name__, error)
                continue
            self.restarts += 1
            log.info("a new engine is running (restart %d)", self.restarts)
            return

    async def _start_in_thread(self) -> ManagedEngine:
        starting = asyncio.ensure_future(asyncio.to_thread(self._start_engine))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            # A thread cannot be stopped: let the engine come up, then shut it down, so that
            # the server's exit leaves no engine behind.
            with contextlib.suppress(Exception):
                engine = await starting
                await engine.shutdown()
            raise

    @staticmethod
    async def _shut_down_quietly(engine: ManagedEngine) -> None:
        """A dead engine's shutdown only cleans up; its errors change nothing."""
        try:
            await engine.shutdown()
        except Exception as error:
            log.warning("shutting down the dead engine: %s: %s", type(error).__name__, error)
