"""Two real servers with the real vLLM engine on the tiny model, each shared by the whole
session: the session server most tests use, and a server run as a platform team might
(Prometheus metrics, JSON logs, the trace sampler off, a result cache, a LoRA adapter) for the
tests of those settings.

Each is started as soon as the run is collected, when any chosen test uses it: its minute of
start-up (imports in three processes, one after the other) then overlaps the logic tests, which
run first (tests/conftest.py), and the other's."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthqa.client import SynthQAClient

from ..paths import REPO, TINY_LORA, TINY_MODEL
from .otlp_receiver import OtlpReceiver
from .serverproc import ServerProcess, free_port, serving, stop_with_its_tree

# The session server's budget of memory held by documents: room for any one 200,000-character
# document (about 104 MB for emoji, four tokens a character), not for many.
SESSION_MEMORY_BUDGET = 160_000_000


def tracing_environment(endpoint: str, **more: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", **more}


@dataclass
class TracedServer:
    """A server process, the OTLP receiver its spans go to, and a folder of its files if any."""
    process: ServerProcess
    receiver: OtlpReceiver
    workdir: Path | None = None

    def close(self) -> None:
        self.receiver.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def session_server() -> TracedServer:
    receiver = OtlpReceiver().start()
    process = ServerProcess(
        port=free_port(),
        log_path=REPO / "out" / "test-server.log",
        # Small limits so the limit tests need no huge inputs.
        extra_args=["--max-document-chars", "200000", "--max-in-flight-chunks-per-call", "8",
                    "--max-chunks-per-document", "1000",
                    "--max-held-document-bytes", str(SESSION_MEMORY_BUDGET)],
        # Tracing on, as a platform team would run it; spans leave within 0.1 s of ending.
        extra_env=tracing_environment(receiver.endpoint),
    )
    return TracedServer(process, receiver)


def platform_server() -> TracedServer:
    receiver = OtlpReceiver().start()
    workdir = Path(tempfile.mkdtemp(prefix="synthqa-platform-"))
    process = ServerProcess(
        port=free_port(), log_path=REPO / "out" / "test-platform-server.log",
        extra_args=["--metrics-port", str(free_port()), "--log-format", "json",
                    "--cache-path", str(workdir / "results.sqlite"), "--cache-max-mb", "16",
                    "--lora-modules", f"tiny={TINY_LORA}"],
        # The exporter points at a real receiver, and the sampler says no.
        extra_env=tracing_environment(receiver.endpoint, OTEL_TRACES_SAMPLER="always_off"))
    return TracedServer(process, receiver, workdir)


# The fixture each is served by, and how it is made.
SHARED_SERVERS: dict[str, Callable[[], TracedServer]] = {
    "server": session_server, "platform_server": platform_server}
# Those started at collection, until their fixtures take them over.
_started_early: dict[str, TracedServer] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    for name, make in SHARED_SERVERS.items():
        if any(name in getattr(item, "fixturenames", ()) for item in session.items):
            traced = make()
            traced.process.start()
            _started_early[name] = traced


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Those of a run stopped before any test used them.
    for traced in _started_early.values():
        stop_with_its_tree(traced.process)
        traced.close()
    _started_early.clear()


def shared(name: str) -> Iterator[TracedServer]:
    traced = _started_early.pop(name, None) or SHARED_SERVERS[name]()
    try:
        yield traced
    finally:
        traced.close()


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    assert (TINY_MODEL / "config.json").exists(), "run `make setup` to build the tiny model"
    return str(TINY_MODEL)


@pytest.fixture(scope="session")
def session_traced(tiny_model_path: str) -> Iterator[TracedServer]:
    yield from shared("server")


@pytest.fixture(scope="session")
def otlp_receiver(session_traced: TracedServer) -> OtlpReceiver:
    """Where the session server sends its spans."""
    return session_traced.receiver


@pytest.fixture(scope="session")
def server(session_traced: TracedServer) -> Iterator[ServerProcess]:
    yield from serving(session_traced.process)


@pytest.fixture(scope="session")
def platform_traced(tiny_model_path: str) -> Iterator[TracedServer]:
    assert (TINY_LORA / "adapter_config.json").is_file(), "run `make setup` (the tiny LoRA)"
    yield from shared("platform_server")


@pytest.fixture(scope="session")
def quiet_receiver(platform_traced: TracedServer) -> OtlpReceiver:
    """Where the platform server would send its spans: its sampler says no to all."""
    return platform_traced.receiver


@pytest.fixture(scope="session")
def platform_server(platform_traced: TracedServer) -> Iterator[ServerProcess]:
    yield from serving(platform_traced.process)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[SynthQAClient]:
    with SynthQAClient(server.target, timeout=300) as c:
        yield c
