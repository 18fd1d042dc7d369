"""Whether the service takes calls, as one state with the moves allowed between states.

    WARMING_UP ──open──▶ SERVING ──engine_down──▶ RESTARTING ──engine_up──▶ SERVING
    any but DRAINING ──engine_died──▶ ENGINE_DEAD        any ──drain──▶ DRAINING

DRAINING is final: the server is on its way out, whatever the engine does meanwhile; a dead
engine stays dead. News of the engine that a state has no use for is ignored (an engine
replaced while the server still warms up keeps it warming up). Any other move is a
programming error."""

from __future__ import annotations

import enum

from .errors import Unavailable

# What a client that was turned away while the engine (re)starts is told to wait.
RETRY_AFTER_SECONDS = 5.0


class Availability(enum.Enum):
    WARMING_UP = "warming up"
    SERVING = "serving"
    RESTARTING = "restarting"
    ENGINE_DEAD = "engine dead"
    DRAINING = "draining"


W, S, R, D, X = (Availability.WARMING_UP, Availability.SERVING, Availability.RESTARTING,
                 Availability.ENGINE_DEAD, Availability.DRAINING)
_MOVES: dict[str, dict[Availability, Availability]] = {
    "open": {W: S},
    "engine_down": {S: R, R: R},
    "engine_up": {R: S},
    "engine_died": {W: D, S: D, R: D},
    "drain": {W: X, S: X, R: X, D: X, X: X},
}
_IGNORED: dict[str, set[Availability]] = {
    "open": {D, X},
    "engine_down": {W, D, X},
    "engine_up": {W, S, D, X},
    "engine_died": {D, X},
    "drain": set(),
}


class AvailabilityState:
    def __init__(self) -> None:
        self.state = Availability.WARMING_UP

    def move(self, event: str) -> Availability:
        moves = _MOVES[event]
        if self.state in moves:
            self.state = moves[self.state]
        elif self.state not in _IGNORED[event]:
            raise RuntimeError(f"{event} is not a move from {self.state.value}")
        return self.state

    def check(self) -> None:
        """Raise Unavailable, with why and when to retry, unless calls are taken now."""
        if self.state is Availability.DRAINING:
            raise Unavailable("the server is shutting down")
        if self.state is Availability.ENGINE_DEAD:
            raise Unavailable("the engine has stopped")
        if self.state is Availability.RESTARTING:
            raise Unavailable("the engine failed and is restarting; retry once the server's "
                              "health is SERVING again", retry_after_seconds=RETRY_AFTER_SECONDS)
        if self.state is Availability.WARMING_UP:
            raise Unavailable("the engine is warming up", retry_after_seconds=RETRY_AFTER_SECONDS)
