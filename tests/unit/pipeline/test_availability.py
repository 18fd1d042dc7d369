"""The service's availability as one state: the moves the lifecycle makes, what a call is
told in each state, and the moves that cannot happen."""

from __future__ import annotations

import pytest

from synthqa.server.pipeline.availability import Availability, AvailabilityState
from synthqa.server.pipeline.errors import Unavailable


def told(state: AvailabilityState) -> tuple[str, float | None] | None:
    try:
        state.check()
    except Unavailable as refused:
        return refused.message, refused.retry_after_seconds
    return None


def test_a_server_warms_up_serves_restarts_its_engine_and_drains() -> None:
    state = AvailabilityState()
    assert told(state) == ("the engine is warming up", 5.0)
    assert state.move("open") is Availability.SERVING and told(state) is None
    assert state.move("engine_down") is Availability.RESTARTING
    assert told(state) == ("the engine failed and is restarting; retry once the server's "
                           "health is SERVING again", 5.0)
    assert state.move("engine_up") is Availability.SERVING and told(state) is None
    assert state.move("drain") is Availability.DRAINING
    assert told(state) == ("the server is shutting down", None)
    # The engine's news no longer matters to a draining server.
    for event in ("engine_down", "engine_up", "engine_died", "open"):
        assert state.move(event) is Availability.DRAINING


def test_a_dead_engine_stays_dead_until_the_drain() -> None:
    state = AvailabilityState()
    state.move("open")
    assert state.move("engine_died") is Availability.ENGINE_DEAD
    assert told(state) == ("the engine has stopped", None)
    for event in ("engine_down", "engine_up", "open"):
        assert state.move(event) is Availability.ENGINE_DEAD
    assert state.move("drain") is Availability.DRAINING


def test_an_engine_replaced_during_warm_up_leaves_the_server_warming_up() -> None:
    state = AvailabilityState()
    assert state.move("engine_down") is Availability.WARMING_UP
    assert state.move("engine_up") is Availability.WARMING_UP
    assert state.move("open") is Availability.SERVING


@pytest.mark.parametrize(("moves", "bad"), [
    (("open",), "open"),  # opened twice
    (("open", "engine_down"), "open"),
])
def test_moves_that_cannot_happen_are_errors(moves: tuple[str, ...], bad: str) -> None:
    state = AvailabilityState()
    for event in moves:
        state.move(event)
    with pytest.raises(RuntimeError, match=f"{bad} is not a move from"):
        state.move(bad)
