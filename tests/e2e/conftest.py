"""One real server with the real vLLM engine on the tiny model, shared by the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from synthqa.client import SynthQAClient

from ..paths import REPO, TINY_MODEL
from .otlp_receiver import OtlpReceiver, receiving
from .serverproc import ServerProcess, free_port, serving


def tracing_environment(endpoint: str, **more: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100", **more}


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    assert (TINY_MODEL / "config.json").exists(), "run `make setup` to build the tiny model"
    return str(TINY_MODEL)


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Where the session server sends its spans."""
    yield from receiving()


# The session server's budget of memory held by documents: room for any one 200,000-character
# document (about 104 MB for emoji, four tokens a character), not for many.
SESSION_MEMORY_BUDGET = 160_000_000


@pytest.fixture(scope="session")
def server(tiny_model_path: str, otlp_receiver: OtlpReceiver) -> Iterator[ServerProcess]:
    process = ServerProcess(
        port=free_port(),
        log_path=REPO / "out" / "test-server.log",
        # Small limits so the limit tests need no huge inputs.
        extra_args=["--max-document-chars", "200000", "--max-in-flight-chunks-per-call", "8",
                    "--max-chunks-per-document", "1000",
                    "--max-held-document-bytes", str(SESSION_MEMORY_BUDGET)],
        # Tracing on, as a platform team would run it; spans leave within 0.1 s of ending.
        extra_env=tracing_environment(otlp_receiver.endpoint),
    )
    yield from serving(process)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[SynthQAClient]:
    with SynthQAClient(server.target, timeout=300) as c:
        yield c
