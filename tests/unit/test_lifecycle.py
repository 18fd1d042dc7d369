"""The server's start when a port it needs is taken: it says which address, and stops the
engine it had already started (the engine and the service are stand-ins; no engine runs)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from synthqa.server import config, lifecycle


class StandInEngine:
    model_name = "stand-in"
    max_model_len = 2048
    started: list[StandInEngine] = []

    def __init__(self, start: Any, restarts: Any) -> None:
        self.running = False
        StandInEngine.started.append(self)

    async def start(self) -> None:
        self.running = True

    async def shutdown(self) -> None:
        self.running = False


class StandInService:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    StandInEngine.started.clear()
    terminated: list[int] = []
    monkeypatch.setattr(lifecycle, "EngineSupervisor", StandInEngine)
    monkeypatch.setattr(lifecycle, "GenerationService", StandInService)
    # Not the test runner's own children.
    monkeypatch.setattr(lifecycle, "terminate_children", terminated.append)
    return terminated


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("taken", ["port", "health-port"])
async def test_a_taken_port_is_named_and_the_engine_stopped(
    taken: str, taken_port: int, stand_ins: list[int]
) -> None:
    ports = {"port": free_port(), "health-port": free_port(), taken: taken_port}
    engine_args, settings = config.parse(["--model", "m", "--host", "127.0.0.1", "--no-cache",
                                          "--port", str(ports["port"]),
                                          "--health-port", str(ports["health-port"])])
    with pytest.raises(RuntimeError, match=rf"^cannot listen on 127\.0\.0\.1:{taken_port}: "):
        await lifecycle.ServerLifecycle(engine_args, settings).run()
    (engine,) = StandInEngine.started
    assert not engine.running and len(stand_ins) == 1
