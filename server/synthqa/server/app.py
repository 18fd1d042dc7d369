"""Server lifecycle: engine first, then gRPC with health and reflection, warm-up, SERVING;
on a signal, drain, stop, shut the engine down and leave no child process behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from vllm.engine.arg_utils import AsyncEngineArgs

from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from .config import ServerSettings
from .engine import Engine
from .events import ChunkFailed, FailureCode
from .process_tree import terminate_children
from .service import QAService
from .servicer import SynthQAServicer

log = logging.getLogger("synthqa.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SynthQAService"].full_name
ENGINE_CHECK_SECONDS = 0.5
DEAD_ENGINE_GRACE_SECONDS = 5.0
_WARM_UP_TEXT = "Lighthouses guide ships at night with bright, distinctive lights."


class SynthQAServer:
    def __init__(self, engine_args: AsyncEngineArgs, settings: ServerSettings) -> None:
        self._engine_args = engine_args
        self._settings = settings
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._engine_died = False
        self.health = HealthServicer()

    def request_stop(self) -> None:
        if self._stop.is_set():
            log.warning("second stop signal: not waiting for in-flight calls")
            self._force.set()
        self._stop.set()

    async def run(self) -> None:
        settings = self._settings
        log.info("starting the engine for %s", self._engine_args.model)
        # The engine exists before the gRPC server: its core process is spawned first.
        engine = Engine.start(self._engine_args)
        service = QAService(engine, settings.defaults, settings.limits)
        server = self._build_grpc_server(service)
        address = f"{settings.host}:{settings.port}"
        try:
            server.add_insecure_port(address)
        except RuntimeError as error:
            engine.shutdown()
            terminate_children(os.getpid())
            raise RuntimeError(f"cannot listen on {address}: {error}") from None
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.start()
        log.info("listening on %s; warming up", address)
        watchdog = asyncio.create_task(self._watch_engine(engine))
        try:
            await _warm_up(service)
            service.ready = True
            if not self._engine_died:
                await self._set_health(health_pb2.HealthCheckResponse.SERVING)
                log.info("serving %s (max_model_len %d)", engine.model_name,
                         engine.max_model_len)
            await self._stop.wait()
        finally:
            watchdog.cancel()
            await self._shut_down(server, service, engine)
        if self._engine_died:
            raise RuntimeError("the engine died; exiting so that a supervisor can restart us")

    async def _watch_engine(self, engine: Engine) -> None:
        """A dead engine cannot recover: report NOT_SERVING and exit non-zero."""
        while not engine.is_dead:  # noqa: ASYNC110 - vLLM offers no event to wait on
            await asyncio.sleep(ENGINE_CHECK_SECONDS)
        log.error("the engine died; shutting down")
        self._engine_died = True
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._stop.set()

    def _build_grpc_server(self, service: QAService) -> grpc.aio.Server:
        limit = self._settings.limits.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        pb_grpc.add_SynthQAServiceServicer_to_server(SynthQAServicer(service), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            server,
        )
        return server

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def _shut_down(self, server: grpc.aio.Server, service: QAService, engine: Engine) -> None:
        log.info("shutting down: refusing new calls, draining in-flight ones")
        service.draining = True
        await self.health.enter_graceful_shutdown()
        grace = self._settings.shutdown_grace
        if self._engine_died:
            # Calls in flight fail fast now; give them a moment to send their chunk_failed events.
            grace = min(grace, DEAD_ENGINE_GRACE_SECONDS)
        idle = asyncio.create_task(service.wait_idle())
        forced = asyncio.create_task(self._force.wait())
        done, _ = await asyncio.wait({idle, forced}, timeout=grace,
                                     return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        forced.cancel()
        if not done:
            log.warning("grace period over: cancelling calls still in flight")
        # Cancels what is left; each cancelled call aborts its engine requests.
        await server.stop(0)
        engine.shutdown()
        stopped = terminate_children(os.getpid())
        if stopped:
            log.info("stopped %d leftover child process(es)", stopped)
        log.info("stopped")


async def _warm_up(service: QAService) -> None:
    """One real generation: compiles the default grammar and proves the engine works before the
    server reports SERVING."""
    plan = service.default_plan
    chunk = (await service.chunk(_WARM_UP_TEXT, plan, "warm-up")).chunks[0]
    async for event in service.generator.generate("warm-up", chunk, plan, "synthqa-warm-up"):
        # A random model may run out of tokens (RESOURCE_EXHAUSTED); anything else means the
        # engine or its grammar backend is broken.
        if isinstance(event, ChunkFailed) and event.code is not FailureCode.RESOURCE_EXHAUSTED:
            raise RuntimeError(f"warm-up generation failed: {event.message}")


def install_signal_handlers(server: SynthQAServer) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_stop)
