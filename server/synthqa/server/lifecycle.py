"""The server's life: engine first, then the gRPC server (NOT_SERVING), warm-up, SERVING; the
engine supervised (NOT_SERVING while a dead one is replaced); on a signal, drain, stop, shut
the engine down, leave no child behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
from collections.abc import Callable

import grpc
from vllm.engine.arg_utils import AsyncEngineArgs

from .config import ServerSettings
from .engine.process_tree import terminate_children
from .engine.supervisor import EngineGaveUp, EngineSupervisor, ManagedEngine
from .engine.vllm_engine import VllmEngine
from .grpc_api.call_limits import CallGuard, CallLimits
from .grpc_api.rpc_scope import RpcScope
from .grpc_api.security import SecurityConfigError, ServerSecurity, is_loopback
from .grpc_api.server import Health, build_grpc_server, build_health_server, message_size_options
from .heap import HeapTrimmer, freeze_startup_heap, glibc_malloc_trim
from .observability import Observability
from .pipeline.service import GenerationService
from .results.cache import ResultCache, SqliteResultCache
from .results.redis_cache import RedisResultCache

log = logging.getLogger("synthqa.server")

DEAD_ENGINE_GRACE_SECONDS = 5.0


class ServerLifecycle:
    def __init__(self, engine_args: AsyncEngineArgs, settings: ServerSettings, *,
                 start_engine: Callable[[], ManagedEngine] | None = None) -> None:
        """`start_engine` starts (and restarts) the engine, blocking; by default vLLM on
        `engine_args`. Not reachable from the command line: the bench passes another."""
        self._engine_args = engine_args
        self._settings = settings
        self._engine_factory = start_engine or (lambda: VllmEngine.start(engine_args))
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._engine_gone = False
        self._security: ServerSecurity | None = None
        self.health = Health()

    def request_stop(self) -> None:
        if self._stop.is_set():
            log.warning("second stop signal: not waiting for in-flight calls")
            self._force.set()
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        # SIGHUP re-reads certificates and tokens, as daemons do; a server with none to read
        # takes it as its terminal closing and stops. The engine is in a process group of its
        # own and does not get it.
        loop.add_signal_handler(signal.SIGHUP, self._hang_up)

    def _hang_up(self) -> None:
        if self._security is not None and self._security.reloadable:
            self._security.reload()
        else:
            self.request_stop()

    async def run(self) -> None:
        settings = self._settings
        try:
            self._security = ServerSecurity(settings.security)
        except SecurityConfigError as error:
            raise RuntimeError(str(error)) from None
        # Before the engine: its spans then go through synthqa's tracer provider.
        observability = Observability(settings.observability)
        try:
            await self._serve(observability)
        finally:
            observability.shutdown()

    async def _serve(self, observability: Observability) -> None:
        security = self._security
        assert security is not None
        engine = await self._start_engine()
        cache = await open_result_cache(self._settings)
        service = self._generation_service(engine, cache, observability)
        limits = self._settings.limits
        guard = CallGuard(CallLimits(limits.max_calls_per_client, limits.max_unread_seconds,
                                     limits.max_call_seconds))
        server = self._grpc_server(service, guard, security, observability)
        servers = await self._bind(server, security, engine)
        await self._start_listening(servers, security)
        background = [asyncio.create_task(self._supervise(engine, service)),
                      asyncio.create_task(guard.watch())]
        try:
            await self._warm_up_and_serve(engine, service, observability, background)
        finally:
            await _cancel_and_wait(background)
            await self._shut_down(servers, service, engine)
            if cache is not None:
                await cache.aclose()
        if self._engine_gone:
            raise RuntimeError("the engine kept dying; exiting so that a supervisor sees it")

    @property
    def _address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    @property
    def _health_address(self) -> str:
        return f"{self._settings.health_host}:{self._settings.health_port}"

    async def _start_engine(self) -> EngineSupervisor:
        log.info("starting the engine for %s", self._engine_args.model)
        engine = EngineSupervisor(self._engine_factory, self._settings.restarts)
        # The engine exists before the gRPC server: its core process is spawned first.
        await engine.start()
        return engine

    def _generation_service(self, engine: EngineSupervisor, cache: ResultCache | None,
                            observability: Observability) -> GenerationService:
        settings = self._settings
        service = GenerationService(engine, settings.defaults, settings.limits,
                                    telemetry=observability.telemetry(engine.model_name),
                                    cache=cache, adapters=settings.adapters)
        if observability.metrics is not None:
            observability.metrics.watch_load(lambda: service.load.active_calls,
                                             lambda: service.load.in_flight_chunks)
        return service

    def _grpc_server(self, service: GenerationService, guard: CallGuard,
                     security: ServerSecurity, observability: Observability) -> grpc.aio.Server:
        settings = self._settings
        rpc_scope = RpcScope(observability.metrics, guard)
        return build_grpc_server(
            service, self.health,
            message_size_options(settings.limits.max_message_bytes)
            + settings.keepalive.grpc_options(),
            # Outermost first: a refused call is never traced or counted as served.
            interceptors=[*security.interceptors(), *observability.server_interceptors()],
            rpc_scope=rpc_scope)

    async def _bind(self, server: grpc.aio.Server, security: ServerSecurity,
                    engine: EngineSupervisor) -> list[grpc.aio.Server]:
        """The gRPC server on its address and, when asked for, the plaintext health server on
        its own. A port that cannot be had stops the engine first, then raises naming it."""
        servers = [server]
        try:
            security.add_port(server, self._address)
            if self._settings.health_port:
                servers.append(build_health_server(self.health))
                servers[-1].add_insecure_port(self._health_address)
        except RuntimeError as error:
            await engine.shutdown()
            terminate_children(os.getpid())
            where = self._health_address if len(servers) > 1 else self._address
            raise RuntimeError(f"cannot listen on {where}: {error}") from None
        return servers

    async def _start_listening(self, servers: list[grpc.aio.Server],
                               security: ServerSecurity) -> None:
        await self.health.listening()
        for listener in servers:
            await listener.start()
        if self._settings.health_port:
            log.info("health checks alone, in plaintext, on %s", self._health_address)
        log.info("listening on %s (%s); warming up", self._address, security.describe())
        if not security.authenticates and not is_loopback(self._settings.host):
            log.warning(
                "NO AUTHENTICATION on %s, which is not a loopback address: anyone who can reach "
                "this port can run the engine. Set --auth-token-file or --tls-client-ca-file, "
                "or listen on 127.0.0.1.", self._address)

    async def _warm_up_and_serve(self, engine: EngineSupervisor, service: GenerationService,
                                 observability: Observability,
                                 background: list[asyncio.Task[None]]) -> None:
        """Warm up, open the service, say SERVING unless the engine is gone already, and wait
        for a stop. The heap trimmer joins `background`, to be cancelled with it, once it runs."""
        observability.start_metrics_endpoint()
        await service.warm_up()
        freeze_startup_heap()
        # Its floor is the warm server's: no trims for what warming up needed.
        background.append(asyncio.create_task(
            HeapTrimmer(glibc_malloc_trim()).watch(service.load)))
        service.open()
        if not self._engine_gone:
            await self.health.serving()
            log.info("serving %s (max_model_len %d)", engine.model_name, engine.max_model_len)
        await self._stop.wait()

    async def _supervise(self, engine: EngineSupervisor, service: GenerationService) -> None:
        """Replace a dead engine while calls stay open; give up (and exit non-zero) when it
        dies too often."""

        async def down() -> None:
            service.engine_down()
            await self.health.not_serving()

        async def up() -> None:
            service.engine_up()
            if not self._stop.is_set():
                await self.health.serving()

        try:
            await engine.supervise(down, up)
        except EngineGaveUp as error:
            log.error("%s; shutting down", error)
            self._engine_gone = True
            service.engine_died()
            await self.health.not_serving()
            self._stop.set()

    async def _shut_down(
        self, servers: list[grpc.aio.Server], service: GenerationService, engine: EngineSupervisor
    ) -> None:
        log.info("shutting down: refusing new calls, draining in-flight ones")
        await self.health.shutting_down()
        grace = self._settings.shutdown_grace
        if self._engine_gone:
            # Calls in flight fail fast now; give them a moment to send their chunk_failed events.
            grace = min(grace, DEAD_ENGINE_GRACE_SECONDS)
        # The drain happens in the service, not in grpc's stop(grace): stop(grace) closes the
        # port at once, so health checks and GetServerInfo would fail during the drain and new
        # calls would get a bare transport error instead of UNAVAILABLE with a reason.
        if not await service.drain(grace, self._force):
            log.warning("grace period over: cancelling %d call(s) still in flight, %d chunk(s) "
                        "of them in the engine", service.load.active_calls,
                        service.load.in_flight_chunks)
        # Cancels what is left; each cancelled call aborts its engine requests.
        for listener in servers:
            await listener.stop(0)
        await engine.shutdown()
        stopped = terminate_children(os.getpid())
        if stopped:
            log.info("stopped %d leftover child process(es)", stopped)
        log.info("stopped")


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def open_result_cache(settings: ServerSettings) -> ResultCache | None:
    """The result cache, or None when off or when its file cannot be opened (a read-only
    filesystem, say): the server then serves without one rather than not at all. A Redis that
    does not answer yet is kept: it is used once it does."""
    if settings.cache_url is not None:
        shared = RedisResultCache(settings.cache_url)
        await shared.check()
        return shared
    if settings.cache_path is None:
        return None
    try:
        cache = SqliteResultCache(settings.cache_path, settings.cache_max_bytes)
    except (OSError, sqlite3.Error) as error:
        log.warning("no result cache: %s cannot be used (%s); pass --cache-path or --no-cache",
                    settings.cache_path, error)
        return None
    if not cache.enabled:
        return None  # a corrupt file it could not replace; it has said so
    log.info("result cache at %s (seeded calls)", settings.cache_path)
    return cache
